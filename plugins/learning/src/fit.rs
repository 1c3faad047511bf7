//! The training loop every front end shares (`evospike train`, the training
//! service): epochs of a [`Learner`], test accuracy after each, a checkpoint after
//! each and when cancelled, and the finished model.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use evospike_plugin_api::{Control, Dataset, Learner, LearnerSpec, Params, PluginError, Progress};
use serde::Serialize;

use crate::data::Data;
use crate::model::{save_checkpoint, Manifest, Model, ModelError, Provenance, SCHEMA_VERSION};

/// Training that could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    /// The learner failed (bad data, diverged loss, backend error).
    #[error(transparent)]
    Learner(#[from] PluginError),
    /// A checkpoint could not be written.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] ModelError),
}

/// One finished epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpochSummary {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Epochs planned.
    pub epochs: u32,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (on augmented samples).
    pub train_accuracy: f32,
    /// Accuracy on the test set, if one was given.
    pub test_accuracy: Option<f64>,
    /// Training samples per second.
    pub samples_per_s: f32,
    /// Wall-clock seconds of the epoch, test included.
    pub seconds: f64,
}

/// What [`fit`] reports as it goes.
#[derive(Debug)]
pub enum FitEvent<'a> {
    /// A mini-batch finished.
    Batch(&'a Progress),
    /// An epoch finished; its checkpoint is written right after this event.
    Epoch(&'a EpochSummary),
}

/// How a [`fit`] ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FitOutcome {
    /// Every epoch finished in this call.
    pub history: Vec<EpochSummary>,
    /// `true` when `cancel` stopped it (a checkpoint holds where).
    pub cancelled: bool,
}

/// Trains `learner` on `train` until it has completed `epochs` epochs or `cancel`
/// is set (checked between batches). After every epoch: test accuracy on `test`,
/// the [`FitEvent::Epoch`] event, then a checkpoint into `checkpoint_dir`; on
/// cancel, a checkpoint of the unfinished epoch.
pub fn fit(
    learner: &mut dyn Learner,
    train: &Dataset<'_>,
    test: Option<&Dataset<'_>>,
    epochs: u32,
    checkpoint_dir: Option<&Path>,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(FitEvent<'_>),
) -> Result<FitOutcome, FitError> {
    let mut outcome = FitOutcome::default();
    while learner.position().0 < epochs {
        if cancel.load(Ordering::Relaxed) {
            outcome.cancelled = true;
            break;
        }
        let started = Instant::now();
        let report = learner.train_epoch(train, &mut |p| {
            on_event(FitEvent::Batch(p));
            if cancel.load(Ordering::Relaxed) {
                Control::Stop
            } else {
                Control::Continue
            }
        })?;
        if !report.completed {
            outcome.cancelled = true;
            break;
        }
        let test_accuracy = match test {
            Some(test) => Some(accuracy(
                &learner.predict(test)?,
                test.labels().unwrap_or_default(),
            )),
            None => None,
        };
        let summary = EpochSummary {
            epoch: report.epoch + 1,
            epochs,
            loss: report.loss,
            train_accuracy: report.accuracy,
            test_accuracy,
            samples_per_s: report.samples_per_s,
            seconds: started.elapsed().as_secs_f64(),
        };
        // The event first: whatever the caller records of the epoch is never
        // behind the checkpoint a resumed run starts from.
        on_event(FitEvent::Epoch(&summary));
        if let Some(dir) = checkpoint_dir {
            save_checkpoint(dir, &learner.checkpoint())?;
        }
        outcome.history.push(summary);
    }
    if outcome.cancelled {
        if let Some(dir) = checkpoint_dir {
            save_checkpoint(dir, &learner.checkpoint())?;
        }
    }
    Ok(outcome)
}

/// The spec of a learner for `train` (and its `test` set): the samples' size and
/// shape, one class per label seen in either set (at least two, named `0`, `1`, …).
pub fn learner_spec(train: &Data, test: Option<&Data>, params: Params, seed: u64) -> LearnerSpec {
    let classes = train
        .num_classes()
        .max(test.map_or(0, Data::num_classes))
        .max(2);
    LearnerSpec {
        input_size: train.num_inputs(),
        input_shape: train.shape().to_vec(),
        classes: (0..classes).map(|c| c.to_string()).collect(),
        params,
        seed,
    }
}

/// Fraction of `predicted` equal to `labels`.
pub fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let right = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    right as f64 / labels.len() as f64
}

/// The model of a trained learner, with provenance (`data_source`, `data_digest`,
/// `samples`, `learner`, `seed`; the rest is filled in here) and the finite metrics.
pub fn model_of(
    learner: &dyn Learner,
    mut provenance: Provenance,
    metrics: impl IntoIterator<Item = (String, f64)>,
) -> Model {
    provenance.hyperparameters = learner.hyperparameters();
    provenance.epochs = learner.position().0;
    provenance.evospike_version = env!("CARGO_PKG_VERSION").to_owned();
    provenance.created_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Model {
        manifest: Manifest {
            schema_version: SCHEMA_VERSION,
            network: learner.network().clone(),
            provenance,
            // JSON has no NaN: a figure a learner does not have (the training
            // accuracy of unsupervised learning) is left out.
            metrics: metrics.into_iter().filter(|(_, v)| v.is_finite()).collect(),
            files: Default::default(),
        },
        weights: learner.weights(),
    }
}
