use evospike_bus::BusError;
use evospike_compute::{BackendError, ShapeError};

use crate::args::ArgsError;
use crate::params::ParamErrors;
use crate::stimulus::StimulusError;

/// Why a node could not start or had to stop. Each variant keeps its cause as
/// [`source`](std::error::Error::source), so a caller sees the whole chain.
///
/// The first three variants are the user's input (nothing ran); the others
/// happened while the node was starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node's parameters are invalid; every problem names node, key and value.
    #[error(transparent)]
    Params(#[from] ParamErrors),
    /// A flag or an `EVOSPIKE_*` variable is malformed.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// No node kind has this name.
    #[error("unknown node kind `{kind}` (kinds: {})", known.join(", "))]
    UnknownKind {
        /// The name asked for.
        kind: String,
        /// The kinds there are.
        known: Vec<String>,
    },
    /// The bus failed (cannot open, declare, publish, …).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A tensor could not be built (bad shape or size).
    #[error(transparent)]
    Schema(#[from] evospike_schemas::SchemaError),
    /// A plugin could not be set up, or refused what it was asked to build.
    #[error("cannot {action}")]
    Plugin {
        /// What the node tried, e.g. ``build a layer with plugin `LIFNeuron` ``.
        action: String,
        /// What the plugin host or the plugin said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The compute backend could not be chosen or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A projection could not be built from an input's settings.
    #[error("cannot connect input `{topic}`")]
    Projection {
        /// The input topic.
        topic: String,
        /// What was wrong.
        #[source]
        source: ShapeError,
    },
    /// The stimulus of an encoder, or a train node's data, could not be read.
    #[error(transparent)]
    Stimulus(#[from] StimulusError),
    /// A trained model could not be loaded, written, or run as the node's
    /// parameters and inputs ask.
    #[error("model {model}: {problem}")]
    Model {
        /// The model directory.
        model: String,
        /// What does not fit, or what failed.
        problem: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A service node (registry, inference, …) could not start or failed.
    #[error("{service}: cannot {action}")]
    Service {
        /// The service.
        service: &'static str,
        /// What it tried, e.g. `open its data directory /var/lib/registry`.
        action: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Training failed.
    #[error("training with `{learner}` failed")]
    Training {
        /// The LEARNING plugin.
        learner: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl NodeError {
    /// Whether the error is about the user's input (parameters, flags, kind) —
    /// found before anything ran — rather than about running.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            NodeError::Params(_) | NodeError::Args(_) | NodeError::UnknownKind { .. }
        )
    }

    /// A [`NodeError::Model`] about `model` without an underlying error.
    pub(crate) fn model(model: &str, problem: impl Into<String>) -> NodeError {
        NodeError::Model {
            model: model.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    pub(crate) fn plugin(
        action: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> NodeError {
        NodeError::Plugin {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// Turns a service node's start-up failure into [`NodeError::Service`]:
/// `store.open().or_fail("registry", "open its store")?`.
pub trait OrFail<T> {
    /// The error of `service` failing to do `action` (e.g. `open its store in /var/lib/registry`).
    ///
    /// # Errors
    /// [`NodeError::Service`] with the original error as its source.
    fn or_fail(self, service: &'static str, action: impl Into<String>) -> Result<T, NodeError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> OrFail<T> for Result<T, E> {
    fn or_fail(self, service: &'static str, action: impl Into<String>) -> Result<T, NodeError> {
        self.map_err(|source| NodeError::Service {
            service,
            action: action.into(),
            source: Box::new(source),
        })
    }
}
