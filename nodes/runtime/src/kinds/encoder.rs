//! `encoder`: reads a stimulus source, encodes each sample with an ENCODER plugin
//! and publishes one spike tensor per time step.
//!
//! | param | default | meaning |
//! |---|---|---|
//! | `source` | `builtin:digits` | stimulus (see [`crate::stimulus`]) |
//! | `holdout` | none | present only this held-out fraction of `source` (as `evospike train --holdout` splits it) |
//! | `model` | none | a model directory: its encoder, parameters and window are used, and samples must fit its input |
//! | `encoder` | `RateEncoder` | ENCODER plugin |
//! | `encoder_params` | `{}` | the encoder's parameters |
//! | `steps_per_sample` | 20 | presentation window |
//! | `dt_ms` | 1.0 | time step |
//! | `seed` | 0 | seed of the encoder and generators |
//! | `max_steps` | none | stop after this many steps (none: cycle forever) |
//! | `steps_per_second` | 0 | pace (0: as fast as the pipeline takes them) |
//! | `output` | `<name>/spikes` | topic |
//! | `wait_subscribers_s` | 10 | wait this long for a subscriber before starting |
//! | `labels` | `<name>/labels` | topic of the sample labels (when the source has them) |
//! | `wait_label_subscribers_s` | 0 | also wait this long for a subscriber of the labels (a scoring readout) |
//!
//! Each labelled sample's label is published once, at the sample's first step, as
//! an analog tensor of shape `[1]` (readouts use it to score themselves). An
//! encoder of graded values (`CurrentEncoder`) publishes analog tensors.

use std::sync::atomic::Ordering;
use std::time::Duration;

use evospike_plugin_api::{EncoderSpec, PluginType};
use evospike_schemas::proto::HealthState;
use evospike_schemas::{SpikeBody, SpikeTensor};

use crate::node::Node;
use crate::{plugins, stimulus, NodeError};

/// How long a finishing node waits for its subscribers to consume its last step.
pub(crate) const DRAIN: Duration = Duration::from_secs(30);

pub(crate) async fn run(node: Node) -> Result<(), NodeError> {
    let source: String = node.param("source", "builtin:digits".to_string())?;
    let holdout: Option<f64> = node.param("holdout", None)?;
    let model = super::model::load(&node)?;
    let (encoder_name, encoder_params, steps_per_sample) = match &model {
        Some(model) => {
            for key in ["encoder", "encoder_params", "steps_per_sample"] {
                super::model::refuse_with_model(&node, key)?;
            }
            let net = &model.manifest.network;
            (
                net.encoder.plugin.clone(),
                net.encoder.params.clone(),
                net.steps_per_sample,
            )
        }
        None => (
            node.param("encoder", "RateEncoder".to_string())?,
            node.param("encoder_params", serde_json::Map::new())?,
            node.param("steps_per_sample", 20)?,
        ),
    };
    let dt_ms: f32 = node.param("dt_ms", 1.0)?;
    let seed: u64 = node.param("seed", 0)?;
    let max_steps: Option<u64> = node.param("max_steps", None)?;
    let steps_per_second: f64 = node.param("steps_per_second", 0.0)?;
    let output: String = node.param("output", format!("{}/spikes", node.name()))?;
    let wait_s: f64 = node.param("wait_subscribers_s", 10.0)?;
    if steps_per_sample == 0 {
        return Err(NodeError::Param {
            name: "steps_per_sample".into(),
            reason: "must be at least 1".into(),
        });
    }

    let samples = stimulus::load(&source, seed, holdout)?;
    let num_inputs = samples.first().map_or(0, |s| s.values.len());
    if let Some(model) = &model {
        let wanted = model.manifest.network.input_size;
        if num_inputs != wanted {
            return Err(NodeError::Param {
                name: "source".into(),
                reason: format!(
                    "{source} has samples of {num_inputs} values; the model takes {wanted}"
                ),
            });
        }
    }
    let mut manager = plugins::manager(&node)?;
    plugins::activate(&mut manager, PluginType::Encoder, &encoder_name)?;
    let spec = EncoderSpec {
        num_inputs,
        num_steps: steps_per_sample,
        dt_ms,
        params: encoder_params,
        seed,
    };
    let mut encoder = manager
        .registry()
        .encoder(&encoder_name)
        .ok_or_else(|| NodeError::Plugin(format!("{encoder_name} is not an ENCODER plugin")))?
        .create_encoder(&spec)
        .map_err(|err| NodeError::Plugin(err.to_string()))?;
    node.set_plugin_health(plugins::health(&manager));

    let mut publisher = node.spike_publisher(&output)?;
    let labels_topic: String = node.param("labels", format!("{}/labels", node.name()))?;
    let mut label_publisher = match samples.iter().any(|s| s.label.is_some()) {
        true => Some(node.spike_publisher(&labels_topic)?),
        false => None,
    };
    let mut label = SpikeTensor::builder(node.name())
        .shape([1])
        .analog(vec![0.0])?;
    let outputs = encoder.num_outputs();
    let mut tensor = if encoder.analog() {
        SpikeTensor::builder(node.name())
            .shape([outputs as u32])
            .analog(vec![0.0; outputs])?
    } else {
        SpikeTensor::zeros(node.name(), &[outputs as u32])?
    };
    tracing::info!(%source, samples = samples.len(), encoder = %encoder_name, outputs = encoder.num_outputs(), topic = %publisher.key(), "node {} (encoder) ready", node.name());
    if !super::wait_for_downstream(&node, &publisher, wait_s).await? {
        return Ok(());
    }
    let wait_labels_s: f64 = node.param("wait_label_subscribers_s", 0.0)?;
    if let Some(labels) = &label_publisher {
        if !super::wait_for_downstream(&node, labels, wait_labels_s).await? {
            return Ok(());
        }
    }
    node.set_state(HealthState::Active);

    let mut pace = (steps_per_second > 0.0).then(|| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / steps_per_second));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut step = 0u64;
    'run: for sample in samples.iter().cycle() {
        encoder.set_sample(&sample.values);
        if let (Some(publisher), Some(value)) = (label_publisher.as_mut(), sample.label) {
            if max_steps.is_none_or(|max| step < max) {
                if let SpikeBody::Analog(values) = &mut label.body {
                    values[0] = value as f32;
                }
                label.header.step = step;
                publisher.publish(&mut label)?;
            }
        }
        for t in 0..steps_per_sample {
            if max_steps.is_some_and(|max| step >= max) || node.stop_requested() {
                break 'run;
            }
            if let Some(pace) = pace.as_mut() {
                tokio::select! {
                    _ = pace.tick() => {}
                    () = node.stopped() => break 'run,
                }
            }
            let active = match &mut tensor.body {
                SpikeBody::Analog(values) => {
                    encoder.encode_step_analog(t, values);
                    values.iter().filter(|&&v| v != 0.0).count() as u64
                }
                SpikeBody::Bitset(words) => {
                    words.fill(0);
                    encoder.encode_step(t, words);
                    words.iter().map(|w| w.count_ones() as u64).sum::<u64>()
                }
                _ => unreachable!("built as a bitset or analog tensor"),
            };
            tensor.header.step = step;
            publisher.publish(&mut tensor)?;
            node.metrics().steps.fetch_add(1, Ordering::Relaxed);
            node.metrics().spikes.fetch_add(active, Ordering::Relaxed);
            step += 1;
            if pace.is_none() && step % 64 == 0 {
                // Free-running: let the runtime serve health queries and signals.
                tokio::task::yield_now().await;
            }
        }
    }
    if step > 0 {
        node.drain(&[(node.topic(&output), step - 1)], DRAIN).await;
    }
    tracing::info!(steps = step, "encoder done");
    manager.stop_all();
    Ok(())
}
