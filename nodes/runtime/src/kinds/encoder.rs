//! `encoder`: reads a stimulus source, encodes each sample with an ENCODER plugin
//! and publishes one spike tensor per time step.
//!
//! Each labelled sample's label is published once, at the sample's first step, as
//! an analog tensor of shape `[1]` (readouts use it to score themselves). An
//! encoder of graded values (`CurrentEncoder`) publishes analog tensors. With a
//! `model`, the encoder, its parameters and the window are the model's.
//! Parameters: [`EncoderParams`] (`evospike run encoder --list-params`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use evospike_plugin_api::{EncoderSpec, Params as PluginParams, PluginType};
use evospike_schemas::contract::NodeTopics;
use evospike_schemas::proto::HealthState;
use evospike_schemas::SpikeLayout;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model;
use crate::kind::NodeKind;
use crate::node::Node;
use crate::params::{Check, Params};
use crate::plugins::{self, PluginSettings};
use crate::{stimulus, NodeError};

/// How long a finishing node waits for its subscribers to consume its last step.
pub(crate) const DRAIN: Duration = Duration::from_secs(30);

/// The `encoder` kind.
#[derive(Debug)]
pub struct EncoderKind;

/// Parameters of an `encoder` node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncoderParams {
    /// Stimulus: `builtin:digits`, `generator:bars`, or a CSV (`.csv`, `.csv.gz`) or MNIST IDX file.
    #[serde(default = "default_source")]
    pub source: String,
    /// Present only this held-out fraction of `source`, in (0, 1), split as `evospike train --holdout` splits it.
    #[serde(default)]
    pub holdout: Option<f64>,
    /// A trained model's directory: its encoder, encoder parameters and window are used (leave those three out), and samples must fit its input.
    #[serde(default)]
    pub model: Option<String>,
    /// ENCODER plugin that turns each sample into spikes (or currents).
    #[serde(default)]
    #[schemars(extend("x-default" = DEFAULT_ENCODER))]
    pub encoder: Option<String>,
    /// Parameters of the encoder plugin (checked by the plugin).
    #[serde(default)]
    #[schemars(extend("x-default" = "{}"))]
    pub encoder_params: Option<PluginParams>,
    /// Steps each sample is presented for (at least 1).
    #[serde(default)]
    #[schemars(extend("x-default" = DEFAULT_STEPS_PER_SAMPLE))]
    pub steps_per_sample: Option<u32>,
    /// Time step in milliseconds (> 0).
    #[serde(default = "default_dt_ms")]
    pub dt_ms: f32,
    /// Seed of the encoder and of generated stimuli.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many steps (none: cycle through the samples until stopped).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Pace in steps per second (0: as fast as the pipeline takes them).
    #[serde(default)]
    pub steps_per_second: f64,
    /// Output topic.
    #[serde(default)]
    #[schemars(extend("x-default" = "<name>/spikes"))]
    pub output: Option<String>,
    /// Seconds to wait for a subscriber of the output before starting.
    #[serde(default = "default_wait_subscribers_s")]
    pub wait_subscribers_s: f64,
    /// Topic of the sample labels, when the source has them.
    #[serde(default)]
    #[schemars(extend("x-default" = "<name>/labels"))]
    pub labels: Option<String>,
    /// Seconds to also wait for a subscriber of the labels (a scoring readout).
    #[serde(default)]
    pub wait_label_subscribers_s: f64,
    /// Settings of plugins by name, e.g. `{RateEncoder: {max_rate_hz: 100}}`.
    #[serde(default)]
    pub plugins: PluginSettings,
}

fn default_source() -> String {
    "builtin:digits".to_owned()
}

/// The ENCODER plugin of an encoder without a model.
pub(crate) const DEFAULT_ENCODER: &str = "RateEncoder";

/// The window of an encoder without a model.
pub(crate) const DEFAULT_STEPS_PER_SAMPLE: u32 = 20;

fn default_dt_ms() -> f32 {
    1.0
}

fn default_wait_subscribers_s() -> f64 {
    10.0
}

impl Params for EncoderParams {
    fn check(&self, check: &mut Check<'_>) {
        if !stimulus::BUILTIN_SOURCES.contains(&self.source.as_str()) {
            check.file("source", &self.source);
        }
        if let Some(holdout) = self.holdout {
            check.fraction("holdout", holdout);
        }
        if self.model.is_some() {
            model::fixed_by_model(check, "encoder", &self.encoder);
            model::fixed_by_model(check, "encoder_params", &self.encoder_params);
            model::fixed_by_model(check, "steps_per_sample", &self.steps_per_sample);
        }
        if let Some(steps) = self.steps_per_sample {
            check.at_least("steps_per_sample", steps.into(), 1);
        }
        check.positive("dt_ms", self.dt_ms.into());
        check.non_negative("steps_per_second", self.steps_per_second);
        if self.steps_per_second > 0.0
            && Duration::try_from_secs_f64(1.0 / self.steps_per_second).is_err()
        {
            check.fail(
                "steps_per_second",
                self.steps_per_second.into(),
                "is too slow a pace (0 means: as fast as possible)",
            );
        }
        check.seconds("wait_subscribers_s", self.wait_subscribers_s);
        check.seconds("wait_label_subscribers_s", self.wait_label_subscribers_s);
        for (key, topic) in [("output", &self.output), ("labels", &self.labels)] {
            if let Some(topic) = topic {
                check.topic(key, topic);
            }
        }
    }
}

impl NodeKind for EncoderKind {
    const NAME: &'static str = "encoder";
    const SUMMARY: &'static str =
        "reads a stimulus, encodes each sample with an ENCODER plugin, publishes one spike tensor per step";
    type Params = EncoderParams;

    fn topics(params: &EncoderParams, node: &str) -> NodeTopics {
        NodeTopics {
            publishes: vec![
                params
                    .output
                    .clone()
                    .unwrap_or_else(|| format!("{node}/spikes")),
                params
                    .labels
                    .clone()
                    .unwrap_or_else(|| format!("{node}/labels")),
            ],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: EncoderParams) -> Result<(), NodeError> {
        run(node, params).await
    }
}

async fn run(node: Node, params: EncoderParams) -> Result<(), NodeError> {
    let EncoderParams {
        source,
        holdout,
        model: model_dir,
        encoder,
        encoder_params,
        steps_per_sample,
        dt_ms,
        seed,
        max_steps,
        steps_per_second,
        output,
        wait_subscribers_s: wait_s,
        labels: labels_topic,
        wait_label_subscribers_s: wait_labels_s,
        plugins: plugin_settings,
    } = params;
    let output = output.unwrap_or_else(|| format!("{}/spikes", node.name()));
    let labels_topic = labels_topic.unwrap_or_else(|| format!("{}/labels", node.name()));

    let model = model_dir.as_deref().map(model::load).transpose()?;
    let (encoder_name, encoder_params, steps_per_sample) = match &model {
        Some(model) => {
            let net = &model.manifest.network;
            let encoder = &net.encoder;
            (
                encoder.plugin.clone(),
                encoder.params.clone(),
                net.steps_per_sample,
            )
        }
        None => (
            encoder.unwrap_or_else(|| DEFAULT_ENCODER.to_owned()),
            encoder_params.unwrap_or_default(),
            steps_per_sample.unwrap_or(DEFAULT_STEPS_PER_SAMPLE),
        ),
    };
    let samples = stimulus::load(&source, seed, holdout)?;
    let num_inputs = samples.first().map_or(0, |s| s.values.len());
    if let (Some(dir), Some(model)) = (&model_dir, &model) {
        let wanted = model.manifest.network.input_size;
        if num_inputs != wanted {
            return Err(NodeError::model(
                dir,
                format!("{source} has samples of {num_inputs} values; the model takes {wanted}"),
            ));
        }
    }
    let mut manager = plugins::manager(&node, &plugin_settings)?;
    plugins::activate(&mut manager, PluginType::Encoder, &encoder_name)?;
    let spec = EncoderSpec {
        num_inputs,
        num_steps: steps_per_sample,
        dt_ms,
        params: encoder_params,
        seed,
    };
    let mut encoder = manager
        .encoder(&encoder_name)
        .map_err(|err| NodeError::plugin(format!("use ENCODER plugin `{encoder_name}`"), err))?
        .create_encoder(&spec)
        .map_err(|err| {
            NodeError::plugin(
                format!("build an encoder with plugin `{encoder_name}`"),
                err,
            )
        })?;
    node.set_plugin_health(plugins::health(&manager));

    let mut publisher = node.spike_publisher(&output)?;
    let mut label_publisher = match samples.iter().any(|s| s.label.is_some()) {
        true => Some(node.spike_publisher(&labels_topic)?),
        false => None,
    };
    let label_layout = SpikeLayout::analog(node.name(), &[1])?;
    let outputs = encoder.num_outputs();
    // Each step is encoded straight into the shared-memory buffer that is sent.
    let layout = if encoder.analog() {
        SpikeLayout::analog(node.name(), &[outputs as u32])?
    } else {
        SpikeLayout::bitset(node.name(), &[outputs as u32])?
    };
    tracing::info!(%source, samples = samples.len(), encoder = %encoder_name, outputs = encoder.num_outputs(), topic = %publisher.key(), "node {} (encoder) ready", node.name());
    if !super::wait_for_downstream(&node, &publisher, wait_s).await? {
        return Ok(());
    }
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
                let mut loan = publisher.loan(&label_layout)?;
                if let Some(values) = loan.analog_mut() {
                    values[0] = value as f32;
                }
                loan.publish(step)?;
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
            let mut loan = publisher.loan(&layout)?;
            let active = if let Some(words) = loan.bitset_mut() {
                words.fill(0);
                encoder.encode_step(t, words);
                words.iter().map(|w| w.count_ones() as u64).sum::<u64>()
            } else if let Some(values) = loan.analog_mut() {
                encoder.encode_step_analog(t, values);
                values.iter().filter(|&&v| v != 0.0).count() as u64
            } else {
                unreachable!("a bitset or analog layout")
            };
            loan.publish(step)?;
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
