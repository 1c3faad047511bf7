//! `train`: trains a network with a LEARNING plugin and writes the model, then
//! exits 0 — the step a launch file's pipeline `depends_on` when it should run a
//! freshly trained model (the demo does).
//!
//! Progress goes to the node's log (one line per epoch) and metrics (`epoch`,
//! `loss`, `accuracy`, `test_accuracy`); a stop request ends training after the
//! current batch, without writing a model. Parameters: [`TrainParams`]
//! (`evospike run train --list-params`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    }
}

impl NodeKind for TrainKind {
    const NAME: &'static str = "train";
    const SUMMARY: &'static str =
        "trains a network with a LEARNING plugin, writes the model directory, and exits";
    type Params = TrainParams;

    async fn run(node: Node, params: TrainParams) -> Result<(), NodeError> {
        run(node, params).await
    }
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
    let mut learner = manager
        .learning(&learner_name)
        .map_err(|err| NodeError::plugin(format!("use LEARNING plugin `{learner_name}`"), err))?
        .create_learner(&spec)
        .map_err(|err| {
            NodeError::plugin(format!("build a learner with plugin `{learner_name}`"), err)
        })?;
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
