//! `train_worker`: one worker of data-parallel training (see
//! `evospike_dataparallel`): it loads the training data, builds the same
//! `SurrogateGradient` network as the coordinator (a `train` node with
//! `workers: K`, or `evospike train --workers K`), and computes its shard of every
//! batch the coordinator publishes until training is over. Parameters:
//! [`TrainWorkerParams`] (`evospike run train_worker --list-params`).

use std::time::Duration;

use evospike_dataparallel::wire;
use evospike_dataparallel::worker::{self, WorkerSettings};
use evospike_learning::data::{self, Data};
use evospike_learning::fit;
use evospike_learning::surrogate::SurrogateGradient;
use evospike_plugin_api::Params as PluginParams;
use evospike_schemas::contract::NodeTopics;
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::NodeKind;
use crate::node::Node;
use crate::params::{Check, Params};
use crate::{stimulus, NodeError};

/// The `train_worker` kind.
#[derive(Debug)]
pub struct TrainWorkerKind;

/// Parameters of a `train_worker` node: the coordinator's data, learner
/// parameters and seed, and which worker of how many this is.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainWorkerParams {
    /// Training data: `builtin:digits`, or a CSV or IDX file (as `evospike train --data`).
    #[serde(default = "default_data")]
    pub data: String,
    /// IDX labels for `data` (default: the sibling labels file).
    #[serde(default)]
    pub labels: Option<String>,
    /// The fraction the coordinator holds out of `data` (as `evospike train --holdout`).
    #[serde(default)]
    pub holdout: Option<f64>,
    /// Classes of the network (default: as many as the labels name, at least 2).
    #[serde(default)]
    pub classes: Option<usize>,
    /// `SurrogateGradient` parameters (`hidden`, `batch`, …), as the coordinator's.
    #[serde(default)]
    pub learner_params: PluginParams,
    /// The coordinator's seed.
    #[serde(default)]
    pub seed: u64,
    /// The job (topics `train/<job>/…`), as the coordinator's.
    #[serde(default = "default_job")]
    pub job: String,
    /// This worker's index, from 0.
    pub index: usize,
    /// Workers in the job.
    pub workers: usize,
    /// Give up when the coordinator is silent this long (seconds).
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: f64,
}

fn default_data() -> String {
    data::BUILTIN_DIGITS.to_owned()
}

pub(crate) fn default_job() -> String {
    "train".to_owned()
}

fn default_idle_timeout_s() -> f64 {
    600.0
}

impl Params for TrainWorkerParams {
    fn check(&self, check: &mut Check<'_>) {
        if self.data != data::BUILTIN_DIGITS {
            check.file("data", &self.data);
        }
        if let Some(labels) = &self.labels {
            check.file("labels", labels);
        }
        if let Some(holdout) = self.holdout {
            check.fraction("holdout", holdout);
        }
        if let Some(classes) = self.classes {
            check.at_least("classes", classes as u64, 2);
        }
        check.at_least("workers", self.workers as u64, 1);
        if self.index >= self.workers {
            check.fail(
                "index",
                self.index.into(),
                format!("must be below workers ({})", self.workers),
            );
        }
        if self.job.is_empty() || self.job.contains(['/', '*', '$', '?', '#']) {
            check.fail("job", self.job.as_str().into(), "must be a plain name");
        }
        if !(self.idle_timeout_s > 0.0 && self.idle_timeout_s.is_finite()) {
            check.fail("idle_timeout_s", self.idle_timeout_s.into(), "must be > 0");
        }
    }
}

impl NodeKind for TrainWorkerKind {
    const NAME: &'static str = "train_worker";
    const SUMMARY: &'static str =
        "one worker of data-parallel training: computes its shard of each batch's gradient";
    type Params = TrainWorkerParams;

    fn topics(params: &TrainWorkerParams, _node: &str) -> NodeTopics {
        NodeTopics {
            publishes: vec![wire::grads_topic(&params.job, params.index)],
            subscribes: vec![wire::params_topic(&params.job)],
            ..Default::default()
        }
    }

    async fn run(node: Node, params: TrainWorkerParams) -> Result<(), NodeError> {
        let train = training_set(&params)?;
        let mut spec = fit::learner_spec(&train, None, params.learner_params.clone(), params.seed);
        if let Some(classes) = params.classes {
            spec.classes = (0..classes).map(|c| c.to_string()).collect();
        }
        let training_error =
            |source: Box<dyn std::error::Error + Send + Sync>| NodeError::Training {
                learner: "SurrogateGradient".into(),
                source,
            };
        let mut learner = SurrogateGradient::new(&spec).map_err(|e| training_error(Box::new(e)))?;
        let fingerprint = wire::fingerprint(&spec, &train);
        let view = train
            .view(spec.classes.len())
            .map_err(|e| training_error(e.into()))?;
        let settings = WorkerSettings {
            job: params.job.clone(),
            index: params.index,
            workers: params.workers,
            idle_timeout: Duration::from_secs_f64(params.idle_timeout_s),
        };
        node.set_state(HealthState::Active);
        // The worker computes and blocks on its subscription: off the runtime's
        // other tasks (health replies, metrics).
        let computed = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(worker::run(
                node.bus(),
                &settings,
                &mut learner,
                &view,
                &fingerprint,
                &|| node.stop_requested(),
            ))
        })
        .map_err(|e| training_error(Box::new(e)))?;
        node.metrics()
            .steps
            .fetch_add(computed, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The data the coordinator trains on: `data` (with `labels`), less the held-out part.
fn training_set(params: &TrainWorkerParams) -> Result<Data, NodeError> {
    let all = match &params.labels {
        None => stimulus::load_data(&params.data)?,
        Some(labels) => data::load(params.data.as_ref(), Some(labels.as_ref()))
            .map_err(stimulus::StimulusError::from)?,
    };
    Ok(match params.holdout {
        Some(fraction) => stimulus::split(&params.data, &all, fraction)?.0,
        None => all,
    })
}
