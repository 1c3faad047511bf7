//! `train`: trains a network with a LEARNING plugin and writes the model, then
//! exits 0 — the step a launch file's pipeline `depends_on` when it should run a
//! freshly trained model (the demo does).
//!
//! | param | default | meaning |
//! |---|---|---|
//! | `data` | `builtin:digits` | training data (CSV or IDX, as `evospike train --data`) |
//! | `holdout` | none | hold out this fraction (as `evospike train --holdout`); it is scored after every epoch |
//! | `out` | required | the model directory to write |
//! | `learner` | `SurrogateGradient` | LEARNING plugin |
//! | `learner_params` | `{}` | its parameters (`hidden`, `epochs`, …) |
//! | `seed` | 0 | seed |
//! | `retrain` | `false` | train even when `out` already holds a valid model |
//!
//! Progress goes to the node's log (one line per epoch) and metrics (`epoch`,
//! `loss`, `accuracy`, `test_accuracy`); a stop request ends training after the
//! current batch, without writing a model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use evospike_learning::data;
use evospike_learning::fit::{self, FitEvent};
use evospike_learning::model::{Model, Provenance};
use evospike_plugin_api::{LearnerSpec, PluginType};
use evospike_schemas::proto::HealthState;

use crate::node::Node;
use crate::{plugins, NodeError};

fn param_error(name: &str, reason: impl std::fmt::Display) -> NodeError {
    NodeError::Param {
        name: name.into(),
        reason: reason.to_string(),
    }
}

pub(crate) async fn run(node: Node) -> Result<(), NodeError> {
    let source: String = node.param("data", data::BUILTIN_DIGITS.to_string())?;
    let holdout: Option<f64> = node.param("holdout", None)?;
    let out: PathBuf = node.required_param::<String>("out")?.into();
    let learner_name: String = node.param("learner", "SurrogateGradient".to_string())?;
    let params: serde_json::Map<String, serde_json::Value> =
        node.param("learner_params", Default::default())?;
    let seed: u64 = node.param("seed", 0)?;
    let retrain: bool = node.param("retrain", false)?;

    if !retrain {
        if let Ok(model) = Model::load(&out) {
            tracing::info!(
                model = %out.display(),
                test_accuracy = ?model.manifest.metrics.get("test_accuracy"),
                "a trained model is there already; not training (retrain: true to train anew)"
            );
            return Ok(());
        }
    }
    let all =
        data::load(std::path::Path::new(&source), None).map_err(|e| param_error("data", e))?;
    let (train, test) = match holdout {
        Some(f) => {
            let (train, test) = all.holdout(f).map_err(|e| param_error("holdout", e))?;
            (train, Some(test))
        }
        None => (all, None),
    };
    let classes = train
        .num_classes()
        .max(test.as_ref().map_or(0, data::Data::num_classes))
        .max(2);
    let spec = LearnerSpec {
        input_size: train.num_inputs(),
        input_shape: train.shape().to_vec(),
        classes: (0..classes).map(|c| c.to_string()).collect(),
        params,
        seed,
    };
    let mut manager = plugins::manager(&node)?;
    plugins::activate(&mut manager, PluginType::Learning, &learner_name)?;
    let plugin = manager
        .registry()
        .learning(&learner_name)
        .ok_or_else(|| NodeError::Plugin(format!("{learner_name} is not a LEARNING plugin")))?;
    let mut learner = plugin
        .create_learner(&spec)
        .map_err(|e| NodeError::Plugin(e.to_string()))?;
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
    let (learner, outcome, train, test) = tokio::task::spawn_blocking(move || {
        let train_view = train.view(classes).map_err(|e| param_error("data", e))?;
        let test_view = test.as_ref().map(|t| t.view(classes)).transpose().map_err(|e| param_error("data", e))?;
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
        .map_err(|e| NodeError::Plugin(e.to_string()))?;
        Ok::<_, NodeError>((learner, outcome, train, test))
    })
    .await
    .map_err(|e| NodeError::Plugin(format!("training thread: {e}")))??;
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
        data_source: source,
        data_digest: train.digest().to_owned(),
        samples: train.len(),
        learner: learner_name,
        seed,
        ..Provenance::default()
    };
    drop(test);
    let mut model = fit::model_of(learner.as_ref(), provenance, metrics);
    model.save(&out).map_err(|e| param_error("out", e))?;
    tracing::info!(model = %out.display(), test_accuracy = ?model.manifest.metrics.get("test_accuracy"), "model written");
    manager.stop_all();
    Ok(())
}
