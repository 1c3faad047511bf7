//! `train`: trains a network with a LEARNING plugin and writes the model, then
//! exits 0 — the step a launch file's pipeline `depends_on` when it should run a
//! freshly trained model (the demo does).
//!
//! Progress goes to the node's log (one line per epoch) and metrics (`epoch`,
//! `loss`, `accuracy`, `test_accuracy`); a stop request ends training after the
//! current batch, without writing a model. Parameters: [`TrainParams`]
//! (`evospike run train --list-params`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evospike_dataparallel::{wire, Coordinator, DataParallel, Event, Settings, Stats};
use evospike_learning::surrogate::SurrogateGradient;
use evospike_schemas::contract::NodeTopics;

use evospike_learning::data::{self, Data};
use evospike_learning::fit::{self, FitEvent};
use evospike_learning::model::{Model, Provenance};
use evospike_plugin_api::{Params as PluginParams, PluginType};
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::NodeKind;
use crate::node::Node;
use crate::params::{Check, Params};
use crate::plugins::{self, PluginSettings};
use crate::{stimulus, NodeError};

/// The `train` kind.
#[derive(Debug)]
pub struct TrainKind;

/// Parameters of a `train` node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// Training data: `builtin:digits`, or a CSV or IDX file (as `evospike train --data`).
    #[serde(default = "default_data")]
    pub data: String,
    /// Hold out this fraction, in (0, 1), as `evospike train --holdout`; it is scored after every epoch.
    #[serde(default)]
    pub holdout: Option<f64>,
    /// The model directory to write.
    pub out: String,
    /// LEARNING plugin that trains the network.
    #[serde(default = "default_learner")]
    pub learner: String,
    /// Parameters of the learner (`hidden`, `epochs`, …; checked by the plugin).
    #[serde(default)]
    pub learner_params: PluginParams,
    /// Seed of the learner.
    #[serde(default)]
    pub seed: u64,
    /// Train even when `out` already holds a valid model.
    #[serde(default)]
    pub retrain: bool,
    /// Settings of plugins by name.
    #[serde(default)]
    pub plugins: PluginSettings,
    /// Train data-parallel with this many `train_worker` nodes (0: in this
    /// process). Only `SurrogateGradient` trains data-parallel.
    #[serde(default)]
    pub workers: usize,
    /// The data-parallel job (topics `train/<job>/…`), as the workers'.
    #[serde(default = "super::train_worker::default_job")]
    pub job: String,
    /// Seconds a data-parallel step waits for a worker before going on without it.
    #[serde(default = "default_step_timeout_s")]
    pub step_timeout_s: f64,
    /// Seconds data-parallel training waits for its workers to be ready.
    #[serde(default = "default_start_timeout_s")]
    pub start_timeout_s: f64,
}

fn default_step_timeout_s() -> f64 {
    30.0
}

fn default_start_timeout_s() -> f64 {
    120.0
}

fn default_data() -> String {
    data::BUILTIN_DIGITS.to_owned()
}

fn default_learner() -> String {
    "SurrogateGradient".to_owned()
}

impl Params for TrainParams {
    fn check(&self, check: &mut Check<'_>) {
        if self.data != data::BUILTIN_DIGITS {
            check.file("data", &self.data);
        }
        if let Some(holdout) = self.holdout {
            check.fraction("holdout", holdout);
        }
        if self.out.is_empty() {
            check.fail("out", self.out.as_str().into(), "must name a directory");
        }
        if self.workers > 0 && self.learner != SURROGATE {
            check.fail(
                "workers",
                self.workers.into(),
                format!(
                    "only {SURROGATE} trains data-parallel, not {}",
                    self.learner
                ),
            );
        }
        for (key, value) in [
            ("step_timeout_s", self.step_timeout_s),
            ("start_timeout_s", self.start_timeout_s),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                check.fail(key, value.into(), "must be > 0");
            }
        }
    }
}

impl NodeKind for TrainKind {
    const NAME: &'static str = "train";
    const SUMMARY: &'static str =
        "trains a network with a LEARNING plugin, writes the model directory, and exits";
    type Params = TrainParams;

    fn topics(params: &TrainParams, _node: &str) -> NodeTopics {
        if params.workers == 0 {
            return NodeTopics::default();
        }
        NodeTopics {
            publishes: vec![wire::params_topic(&params.job)],
            // Each worker's own topic: an ACL names keys, not patterns.
            subscribes: (0..params.workers)
                .map(|index| wire::grads_topic(&params.job, index))
                .collect(),
            ..Default::default()
        }
    }

    async fn run(node: Node, params: TrainParams) -> Result<(), NodeError> {
        run(node, params).await
    }
}

/// The plugin name of the one learner that trains data-parallel.
const SURROGATE: &str = evospike_learning::surrogate::NAME;

/// `SurrogateGradient` trained by `params.workers` `train_worker` nodes, once
/// they are ready. Worker faults go to the log and the `dp_worker_faults` gauge.
async fn data_parallel(
    node: &Node,
    params: &TrainParams,
    spec: &evospike_plugin_api::LearnerSpec,
    train: &Data,
) -> Result<(Box<dyn evospike_plugin_api::Learner>, Arc<Mutex<Stats>>), NodeError> {
    let training_error = |source: Box<dyn std::error::Error + Send + Sync>| NodeError::Training {
        learner: SURROGATE.into(),
        source,
    };
    let learner = SurrogateGradient::new(spec).map_err(|e| training_error(Box::new(e)))?;
    let mut settings = Settings::new(params.job.clone(), params.workers);
    settings.step_timeout = Duration::from_secs_f64(params.step_timeout_s);
    settings.start_timeout = Duration::from_secs_f64(params.start_timeout_s);
    let faults = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&faults);
    let metrics = node.metrics_handle();
    let on_event = Box::new(move |event: &Event| match event {
        Event::Joined { .. } | Event::Respawned { .. } => {
            tracing::info!(%event, "data-parallel")
        }
        _ => {
            let n = counted.fetch_add(1, Ordering::Relaxed) + 1;
            metrics.set_gauge("dp_worker_faults", n as f64);
            tracing::warn!(%event, "data-parallel");
        }
    });
    let mut coordinator = Coordinator::new(
        node.bus().clone(),
        settings,
        wire::fingerprint(spec, train),
        None,
        on_event,
    )
    .map_err(|e| training_error(Box::new(e)))?;
    tracing::info!(workers = params.workers, job = %params.job, "waiting for the data-parallel workers");
    let coordinator =
        tokio::task::spawn_blocking(move || coordinator.wait_for_workers().map(|()| coordinator))
            .await
            .map_err(|e| training_error(Box::new(e)))?
            .map_err(|e| training_error(Box::new(e)))?;
    let stats = coordinator.stats_handle();
    Ok((Box::new(DataParallel::new(learner, coordinator)), stats))
}

/// The training data, and the held-out part when there is one.
fn datasets(params: &TrainParams) -> Result<(Data, Option<Data>), NodeError> {
    let all = stimulus::load_data(&params.data)?;
    Ok(match params.holdout {
        Some(fraction) => {
            let (train, test) = stimulus::split(&params.data, &all, fraction)?;
            (train, Some(test))
        }
        None => (all, None),
    })
}

async fn run(node: Node, params: TrainParams) -> Result<(), NodeError> {
    let out = PathBuf::from(&params.out);
    if !params.retrain {
        if let Ok(model) = Model::load(&out) {
            tracing::info!(
                model = %out.display(),
                test_accuracy = ?model.manifest.metrics.get("test_accuracy"),
                "a trained model is there already; not training (retrain: true to train anew)"
            );
            return Ok(());
        }
    }
    let (train, test) = datasets(&params)?;
    let spec = fit::learner_spec(
        &train,
        test.as_ref(),
        params.learner_params.clone(),
        params.seed,
    );
    let classes = spec.classes.len();
    let learner_name = params.learner.clone();
    let mut manager = plugins::manager(&node, &params.plugins)?;
    plugins::activate(&mut manager, PluginType::Learning, &learner_name)?;
    let mut dp_stats = None;
    let mut learner = if params.workers > 0 {
        let (learner, stats) = data_parallel(&node, &params, &spec, &train).await?;
        dp_stats = Some(stats);
        learner
    } else {
        manager
            .learning(&learner_name)
            .map_err(|err| NodeError::plugin(format!("use LEARNING plugin `{learner_name}`"), err))?
            .create_learner(&spec)
            .map_err(|err| {
                NodeError::plugin(format!("build a learner with plugin `{learner_name}`"), err)
            })?
    };
    node.set_plugin_health(plugins::health(&manager));
    node.set_state(HealthState::Active);
    let epochs = learner
        .hyperparameters()
        .get("epochs")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1) as u32;
    tracing::info!(learner = %learner_name, samples = train.len(), epochs, "training");

    let node = Arc::new(node);
    let worker_node = Arc::clone(&node);
    let checkpoint = out.join("checkpoint");
    let training_error = |source: Box<dyn std::error::Error + Send + Sync>| NodeError::Training {
        learner: learner_name.clone(),
        source,
    };
    let (learner, outcome, train) = tokio::task::spawn_blocking(move || {
        let train_view = train.view(classes).map_err(|e| e.to_string())?;
        let test_view = test
            .as_ref()
            .map(|t| t.view(classes))
            .transpose()
            .map_err(|e| e.to_string())?;
        let cancel = AtomicBool::new(false);
        let outcome = fit::fit(
            learner.as_mut(),
            &train_view,
            test_view.as_ref(),
            epochs,
            Some(&checkpoint),
            &cancel,
            |event| {
                if worker_node.stop_requested() {
                    cancel.store(true, Ordering::Relaxed);
                }
                if let FitEvent::Epoch(s) = event {
                    let metrics = worker_node.metrics();
                    metrics.set_gauge("epoch", f64::from(s.epoch));
                    metrics.set_gauge("loss", f64::from(s.loss));
                    metrics.set_gauge("accuracy", f64::from(s.train_accuracy));
                    if let Some(a) = s.test_accuracy {
                        metrics.set_gauge("test_accuracy", a);
                    }
                    tracing::info!(epoch = s.epoch, epochs = s.epochs, loss = s.loss, train_accuracy = s.train_accuracy, test_accuracy = ?s.test_accuracy, samples_per_s = s.samples_per_s, "epoch");
                }
            },
        )
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((learner, outcome, train))
    })
    .await
    .map_err(|join| training_error(Box::new(join)))?
    .map_err(training_error)?;
    if outcome.cancelled {
        tracing::info!("stopped before the last epoch; no model written");
        return Ok(());
    }
    let mut metrics = Vec::new();
    if let Some(last) = outcome.history.last() {
        metrics.push(("train_loss".to_owned(), f64::from(last.loss)));
        metrics.push(("train_accuracy".to_owned(), f64::from(last.train_accuracy)));
        if let Some(a) = last.test_accuracy {
            metrics.push(("test_accuracy".to_owned(), a));
        }
    }
    if let Some(stats) = &dp_stats {
        let stats = stats.lock().map(|s| *s).unwrap_or_default();
        metrics.extend(stats.metrics(params.workers));
    }
    let provenance = Provenance {
        data_source: params.data.clone(),
        data_digest: train.digest().to_owned(),
        samples: train.len(),
        learner: learner_name,
        seed: params.seed,
        ..Provenance::default()
    };
    let mut model = fit::model_of(learner.as_ref(), provenance, metrics);
    model.save(&out).map_err(|err| NodeError::Model {
        model: params.out.clone(),
        problem: "cannot be written".to_owned(),
        source: Some(Box::new(err)),
    })?;
    tracing::info!(model = %out.display(), test_accuracy = ?model.manifest.metrics.get("test_accuracy"), "model written");
    manager.stop_all();
    Ok(())
}
