//! `inference`: the inference service as a node — `evospike run inference` —
//! with the name, health and liveliness of every node, serving HTTP on
//! `SERVICE_PORT` (default [`DEFAULT_PORT`]) and its operations on the bus.

use evospike_schemas::contract::NodeTopics;
use std::sync::Arc;
use std::time::Duration;

use evospike_http::ServiceConfig;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::{NodeError, OrFail};
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::batch::BatchSettings;
use crate::distributed::PipelineSettings;
use crate::neurons::Neurons;
use crate::service::Settings;
use crate::Inference;

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "inference";

/// The inference service's documented port.
pub const DEFAULT_PORT: u16 = 8002;

/// The documented default of `MODEL_CACHE_SIZE`.
pub const DEFAULT_CACHE_SIZE: usize = 5;

/// The `inference` kind.
#[derive(Debug)]
pub struct InferenceKind;

/// Parameters of an `inference` node. Host and port come from `SERVICE_HOST` and
/// `SERVICE_PORT` (default 0.0.0.0:8002), the cache size from
/// `MODEL_CACHE_SIZE` (default 5), the device from `DEVICE`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferenceParams {
    /// Dynamic batching: queued requests of a model are stepped together. Off,
    /// every sample runs alone.
    #[serde(default = "yes")]
    pub batching: bool,
    /// Most samples stepped together.
    #[serde(default = "default_max_batch")]
    pub max_batch_size: u32,
    /// Longest the oldest queued sample waits for its batch to fill, in ms.
    #[serde(default = "default_max_delay_ms")]
    pub max_queue_delay_ms: f64,
    /// Most samples queued per model; past it requests get 503 with `Retry-After`.
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// Worker threads per model (0: one per core).
    #[serde(default)]
    pub compute_threads: u32,
    /// Time limit of a call to the registry, in seconds.
    #[serde(default = "default_registry_timeout_s")]
    pub registry_timeout_s: f64,
    /// Longest a distributed model's layer nodes may take to start, in seconds.
    #[serde(default = "default_node_start_timeout_s")]
    pub node_start_timeout_s: f64,
    /// Longest a sample of a distributed model waits for its answer, in seconds
    /// (past it the model's nodes count as stuck and are restarted).
    #[serde(default = "default_node_answer_timeout_s")]
    pub node_answer_timeout_s: f64,
}

fn yes() -> bool {
    true
}
fn default_max_batch() -> u32 {
    32
}
fn default_max_delay_ms() -> f64 {
    2.0
}
fn default_max_queue() -> u32 {
    1024
}
fn default_registry_timeout_s() -> f64 {
    30.0
}
fn default_node_start_timeout_s() -> f64 {
    30.0
}
fn default_node_answer_timeout_s() -> f64 {
    30.0
}

impl Params for InferenceParams {
    fn check(&self, check: &mut Check<'_>) {
        check.at_least("max_batch_size", self.max_batch_size.into(), 1);
        check.at_least("max_queue", self.max_queue.into(), 1);
        check.seconds("max_queue_delay_ms", self.max_queue_delay_ms / 1e3);
        for (key, value) in [
            ("registry_timeout_s", self.registry_timeout_s),
            ("node_start_timeout_s", self.node_start_timeout_s),
            ("node_answer_timeout_s", self.node_answer_timeout_s),
        ] {
            check.positive(key, value);
            check.seconds(key, value);
        }
    }
}

impl InferenceParams {
    /// The batching these parameters ask for.
    pub fn batch_settings(&self) -> BatchSettings {
        let workers = match self.compute_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        BatchSettings {
            max_batch: if self.batching {
                self.max_batch_size as usize
            } else {
                1
            },
            max_delay: if self.batching {
                Duration::from_secs_f64(self.max_queue_delay_ms / 1e3)
            } else {
                Duration::ZERO
            },
            max_queue: self.max_queue as usize,
            workers,
        }
    }
}

/// `MODEL_CACHE_SIZE` through `lookup`: a positive integer, default 5.
///
/// # Errors
/// The variable is set but is not a positive integer.
pub fn cache_size(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<usize, evospike_http::HttpError> {
    match lookup("MODEL_CACHE_SIZE").filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_CACHE_SIZE),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(evospike_http::HttpError::Env {
                var: "MODEL_CACHE_SIZE",
                value,
                expected: "a positive integer (models kept loaded)",
            }),
        },
    }
}

impl NodeKind for InferenceKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the inference service: models from the registry, cached and batched, over HTTP (port 8002)";
    type Params = InferenceParams;

    /// It fetches models from the registry.
    fn topics(_params: &InferenceParams, _node: &str) -> NodeTopics {
        NodeTopics {
            serves: vec!["inference".into()],
            calls: vec!["registry".into()],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: InferenceParams) -> Result<(), NodeError> {
        let config = ServiceConfig::from_env(DEFAULT_PORT).or_fail(SERVICE, "read its settings")?;
        let cache_size =
            cache_size(|name| std::env::var(name).ok()).or_fail(SERVICE, "read its settings")?;
        let backend: Arc<dyn evospike_compute::Backend> = evospike_compute::backend_from_env()
            .or_fail(SERVICE, "open its compute device (DEVICE)")?
            .into();
        let neurons =
            Neurons::new(node.plugin_dirs()).or_fail(SERVICE, "discover the NEURON plugins")?;
        // The nodes of distributed models run on this executable (as the
        // launcher's `kind:` nodes do), or on `EVOSPIKE_EXE`.
        let exe = match std::env::var_os(evospike_schemas::contract::env::EXE) {
            Some(exe) => Some(std::path::PathBuf::from(exe)),
            None => std::env::current_exe().ok(),
        };
        let distributed = exe.map(|exe| PipelineSettings {
            exe,
            prefix: node.name().to_owned(),
            start_timeout: Duration::from_secs_f64(params.node_start_timeout_s),
            answer_timeout: Duration::from_secs_f64(params.node_answer_timeout_s),
        });
        let settings = Settings {
            cache_size,
            batch: params.batch_settings(),
            registry_timeout: Duration::from_secs_f64(params.registry_timeout_s),
            distributed,
        };
        let bus = node.bus().clone();
        let (service, inference) = crate::api::service_with(config.clone(), |metrics| {
            Arc::new(Inference::new(
                bus,
                backend.clone(),
                Arc::new(neurons),
                settings.clone(),
                Some(metrics),
            ))
        });
        inference.publish_metrics();
        let (listener, addr) = evospike_http::listen(&config)
            .await
            .or_fail(SERVICE, "open its HTTP port")?;
        let _queryables = crate::bus::serve_all(node.bus(), node.name(), &inference)?;
        tracing::info!(
            device = backend.name(),
            cache_size,
            max_batch = settings.batch.max_batch,
            max_delay_ms = settings.batch.max_delay.as_secs_f64() * 1e3,
            max_queue = settings.batch.max_queue,
            workers = settings.batch.workers,
            "node {} (inference) serving http://{addr}",
            node.name()
        );
        node.set_state(HealthState::Active);
        // Requests refresh the metrics as they go; this catches what changes
        // between them (a batch finishing, a lease ending).
        let refresh = {
            let inference = inference.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    inference.publish_metrics();
                }
            })
        };
        let node = Arc::new(node);
        let stop = {
            let node = node.clone();
            async move { node.stopped().await }
        };
        let result =
            evospike_http::serve_service(node.bus(), node.name(), service, listener, stop).await;
        refresh.abort();
        inference.shutdown().await;
        result.or_fail(SERVICE, "serve HTTP")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_size_defaults_to_five_and_refuses_nonsense() {
        assert_eq!(cache_size(|_| None).unwrap(), 5);
        assert_eq!(cache_size(|_| Some("2".into())).unwrap(), 2);
        for bad in ["0", "-1", "five", "1.5"] {
            let err = cache_size(|_| Some(bad.into())).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("MODEL_CACHE_SIZE=`{bad}` is not a positive integer (models kept loaded)")
            );
        }
    }

    #[test]
    fn batching_off_runs_every_sample_alone() {
        let mut params: InferenceParams = serde_json::from_str("{}").unwrap();
        assert_eq!(params.batch_settings().max_batch, 32);
        params.batching = false;
        let off = params.batch_settings();
        assert_eq!((off.max_batch, off.max_delay), (1, Duration::ZERO));
        assert!(serde_json::from_str::<InferenceParams>(r#"{"max_batch": 4}"#).is_err());
    }
}
