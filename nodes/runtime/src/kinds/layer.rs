//! `layer`: a population of neurons (a NEURON plugin) fed by projections from one
//! or more input topics, optionally with PLASTICITY plugins on those projections.
//! Step *t* is computed once every input delivered *t* (see [`crate::sync`]); the
//! output spikes of *t* are published at once, so a feed-forward pipeline overlaps
//! its steps across processes.
//!
//! Each input's projection is built when its first tensor tells the input size:
//! fixed-probability `p` connectivity (seeded), weights `weight`, `target`
//! `excitatory` or `inhibitory`, `delay` in steps. With a `model` and `layer`,
//! the node runs that layer of a trained model: its neurons, size and trained
//! weights, one input, and an input sending graded values (a `CurrentEncoder`, a
//! membrane) drives it with those values. Parameters: [`LayerParams`]
//! (`evospike run layer --list-params`).

use std::sync::atomic::Ordering;

use evospike_bus::BusConfig;
use evospike_compute::{
    backend_from_env, Backend, FixedProbability, Projection, Target, WeightInit,
};
use evospike_plugin_api::{
    LayerSpec, NeuronLayer, Params as PluginParams, PlasticityRule, PluginType, RuleSpec,
};
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
use crate::sync::{Delivery, StepInput};
use crate::{NodeError, DEFAULT_MAX_LAG};

/// The `layer` kind.
#[derive(Debug)]
pub struct LayerKind;

/// Parameters of a `layer` node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerParams {
    /// Number of neurons (at least 1; required without a `model`).
    #[serde(default)]
    pub size: Option<usize>,
    /// NEURON plugin that models the neurons.
    #[serde(default)]
    #[schemars(extend("x-default" = DEFAULT_NEURON))]
    pub neuron: Option<String>,
    /// Model parameters of the neuron plugin (`tau_ms`, `v_threshold`, …; checked by the plugin).
    #[serde(default)]
    #[schemars(extend("x-default" = "{}"))]
    pub neuron_params: Option<PluginParams>,
    /// A trained model's directory: run its layer `layer` — neurons, size and weights (leave `size`, `neuron`, `neuron_params` out; one input, without connectivity settings).
    #[serde(default)]
    pub model: Option<String>,
    /// The layer of `model` to run.
    #[serde(default)]
    pub layer: Option<String>,
    /// The input topics, each connected to the layer by one projection (at least one).
    pub inputs: Vec<InputParams>,
    /// Reset the neurons every this many steps (a model's samples; 0: never).
    #[serde(default)]
    #[schemars(extend("x-default" = "0, or the model's window"))]
    pub reset_every: Option<u64>,
    /// What to publish each step: `spikes`, or `membrane` (the neurons' `v` as an analog tensor).
    #[serde(default)]
    #[schemars(extend("x-default" = "spikes (membrane: a model's membrane readout layer)"))]
    pub publish: Option<Publish>,
    /// PLASTICITY rules, each adapting the projection of one input.
    #[serde(default)]
    pub plasticity: Vec<RuleParams>,
    /// Time step in milliseconds (> 0).
    #[serde(default = "default_dt_ms")]
    pub dt_ms: f32,
    /// Stop after step `max_steps - 1` (steps are numbered from 0 pipeline-wide; none: run until stopped).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Output topic.
    #[serde(default)]
    #[schemars(extend("x-default" = "<name>/spikes"))]
    pub output: Option<String>,
    /// Steps an input may run ahead before its sender waits (the subscription queue; at least 1).
    #[serde(default = "default_max_lag")]
    pub max_lag: usize,
    /// Seconds to wait for a subscriber of the output before starting.
    #[serde(default = "default_wait_subscribers_s")]
    pub wait_subscribers_s: f64,
    /// Settings of plugins by name, e.g. `{LIFNeuron: {tau_ms: 10}}`.
    #[serde(default)]
    pub plugins: PluginSettings,
}

/// One input of a layer: a topic and how it is connected.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputParams {
    /// The input topic (e.g. `encoder/spikes`).
    pub topic: String,
    /// Connection probability of each (input, neuron) pair, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-default" = DEFAULT_P))]
    pub p: Option<f64>,
    /// Weight of each connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-default" = DEFAULT_WEIGHT))]
    pub weight: Option<f32>,
    /// Sign of the connections.
    #[serde(default)]
    pub target: TargetParam,
    /// Synaptic delay in steps.
    #[serde(default)]
    pub delay: usize,
    /// Seed of the random connectivity.
    #[serde(default)]
    pub seed: u64,
}

impl InputParams {
    /// Whether connectivity is set (a model's weights exclude it).
    fn sets_connectivity(&self) -> bool {
        self.p.is_some() || self.weight.is_some() || self.seed != 0 || self.delay != 0
    }
}

/// What a layer publishes each step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    /// Its spikes, as a bitset.
    #[default]
    Spikes,
    /// Its membrane potentials `v`, as an analog tensor (a model's readout layer).
    Membrane,
}

/// Sign of a projection's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetParam {
    /// Input raises the membrane potential.
    #[default]
    Excitatory,
    /// Input lowers it.
    Inhibitory,
}

/// One plasticity rule on one input's projection.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// PLASTICITY plugin of the rule (e.g. `STDP`).
    pub plugin: String,
    /// Index into `inputs` of the projection it adapts.
    #[serde(default)]
    pub input: usize,
    /// Parameters of the rule (checked by the plugin).
    #[serde(default)]
    pub params: PluginParams,
}

/// The NEURON plugin of a layer without a model.
pub(crate) const DEFAULT_NEURON: &str = "LIFNeuron";

/// The connection probability of an input that does not set it.
pub(crate) const DEFAULT_P: f64 = 0.1;

/// The connection weight of an input that does not set it.
pub(crate) const DEFAULT_WEIGHT: f32 = 1.0;

fn default_dt_ms() -> f32 {
    1.0
}

fn default_max_lag() -> usize {
    DEFAULT_MAX_LAG
}

fn default_wait_subscribers_s() -> f64 {
    10.0
}

impl Params for LayerParams {
    fn check(&self, check: &mut Check<'_>) {
        match (&self.model, &self.layer) {
            (Some(_), layer) => {
                model::fixed_by_model(check, "size", &self.size);
                model::fixed_by_model(check, "neuron", &self.neuron);
                model::fixed_by_model(check, "neuron_params", &self.neuron_params);
                if layer.is_none() {
                    check.require("layer");
                }
                if self.inputs.len() > 1 {
                    let topics: Vec<&str> = self.inputs.iter().map(|i| i.topic.as_str()).collect();
                    check.fail("inputs", topics.into(), "a model's layer takes one input");
                }
                for (i, input) in self.inputs.iter().enumerate() {
                    if input.sets_connectivity() {
                        check.fail(
                            format!("inputs[{i}]"),
                            serde_json::to_value(input).unwrap_or_default(),
                            "a model's layer takes its weights from the model: give only `topic`",
                        );
                    }
                }
            }
            (None, Some(layer)) => {
                check.fail(
                    "layer",
                    layer.as_str().into(),
                    "names a layer of a model: give `model` too",
                );
            }
            (None, None) if self.size.is_none() => check.require("size"),
            (None, None) => {}
        }
        if let Some(size) = self.size {
            check.at_least("size", size as u64, 1);
        }
        if self.inputs.is_empty() {
            check.fail(
                "inputs",
                serde_json::json!([]),
                "a layer needs at least one input",
            );
        }
        for (i, input) in self.inputs.iter().enumerate() {
            check.topic(format!("inputs[{i}].topic"), &input.topic);
            if let Some(p) = input.p {
                check.probability(format!("inputs[{i}].p"), p);
            }
            if let Some(weight) = input.weight.filter(|w| !w.is_finite()) {
                check.fail(
                    format!("inputs[{i}].weight"),
                    weight.to_string().into(),
                    "must be a finite number",
                );
            }
        }
        for (i, rule) in self.plasticity.iter().enumerate() {
            if rule.input >= self.inputs.len() {
                check.fail(
                    format!("plasticity[{i}].input"),
                    rule.input.into(),
                    format!(
                        "must be an index into `inputs` (0 to {})",
                        self.inputs.len().saturating_sub(1)
                    ),
                );
            }
        }
        check.positive("dt_ms", self.dt_ms.into());
        check.at_least("max_lag", self.max_lag as u64, 1);
        check.seconds("wait_subscribers_s", self.wait_subscribers_s);
        if let Some(output) = &self.output {
            check.topic("output", output);
        }
    }
}

impl NodeKind for LayerKind {
    const NAME: &'static str = "layer";
    const SUMMARY: &'static str =
        "a population of neurons (NEURON plugin) fed by projections from input topics";
    type Params = LayerParams;

    fn configure_bus(params: &LayerParams, config: &mut BusConfig) {
        config.queue_capacity = params.max_lag;
    }

    fn topics(params: &LayerParams, node: &str) -> NodeTopics {
        NodeTopics {
            publishes: vec![params
                .output
                .clone()
                .unwrap_or_else(|| format!("{node}/spikes"))],
            subscribes: params.inputs.iter().map(|i| i.topic.clone()).collect(),
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: LayerParams) -> Result<(), NodeError> {
        run(node, params).await
    }
}

/// A plasticity rule and the index of the input whose projection it adapts.
type Rule = (usize, Box<dyn PlasticityRule>);

struct Wired {
    input: StepInput,
    spec: InputParams,
    projection: Option<Projection>,
}

impl Wired {
    fn projection(&mut self, post: usize) -> Result<&mut Projection, NodeError> {
        if self.projection.is_none() {
            let pre = self.input.len().unwrap_or(0);
            let error = |source| NodeError::Projection {
                topic: self.spec.topic.clone(),
                source,
            };
            let p = self.spec.p.unwrap_or(DEFAULT_P);
            let weight = self.spec.weight.unwrap_or(DEFAULT_WEIGHT);
            let weights = FixedProbability::new(p, self.spec.seed)
                .and_then(|c| c.connect(pre, post, WeightInit::Constant(weight)))
                .map_err(error)?;
            let target = match self.spec.target {
                TargetParam::Excitatory => Target::Excitatory,
                TargetParam::Inhibitory => Target::Inhibitory,
            };
            let projection =
                Projection::new(weights.into(), target, self.spec.delay).map_err(error)?;
            tracing::info!(topic = %self.input.topic(), pre, post, "projection built");
            self.projection = Some(projection);
        }
        Ok(self
            .projection
            .as_mut()
            .unwrap_or_else(|| unreachable!("built above")))
    }
}

async fn run(node: Node, params: LayerParams) -> Result<(), NodeError> {
    let mut from_model = match (&params.model, &params.layer) {
        (Some(dir), Some(layer)) => Some(model::layer(dir, layer)?),
        _ => None,
    };
    let LayerParams {
        size,
        neuron,
        neuron_params,
        model: _,
        layer: _,
        inputs: specs,
        reset_every,
        publish,
        plasticity: rules,
        dt_ms,
        max_steps,
        output,
        max_lag: _,
        wait_subscribers_s: wait_s,
        plugins: plugin_settings,
    } = params;
    let output = output.unwrap_or_else(|| format!("{}/spikes", node.name()));
    let (size, neuron, neuron_params) = match &from_model {
        Some(m) => (m.size, m.neuron.clone(), m.neuron_params.clone()),
        None => (
            size.unwrap_or_default(),
            neuron.unwrap_or_else(|| DEFAULT_NEURON.to_owned()),
            neuron_params.unwrap_or_default(),
        ),
    };
    let reset_every = reset_every.unwrap_or(from_model.as_ref().map_or(0, |m| m.steps_per_sample));
    let publish = publish.unwrap_or(match &from_model {
        Some(m) if m.membrane_out => Publish::Membrane,
        _ => Publish::Spikes,
    });

    let backend = backend_from_env()?;
    let mut manager = plugins::manager(&node, &plugin_settings)?;
    plugins::activate(&mut manager, PluginType::Neuron, &neuron)?;
    let layer_spec = LayerSpec {
        num_neurons: size,
        dt_ms,
        params: neuron_params,
        seed: 0,
    };
    let mut layer = manager
        .neuron(&neuron)
        .map_err(|err| NodeError::plugin(format!("use NEURON plugin `{neuron}`"), err))?
        .create_layer(&layer_spec)
        .map_err(|err| NodeError::plugin(format!("build a layer with plugin `{neuron}`"), err))?;
    let mut wired = Vec::with_capacity(specs.len());
    for spec in specs {
        wired.push(Wired {
            input: StepInput::new(&node, &spec.topic)?,
            spec,
            projection: from_model.take().map(|m| m.projection),
        });
    }
    if publish == Publish::Membrane && layer.state("v").is_none() {
        return Err(NodeError::plugin(
            format!("publish the membrane of a `{neuron}` layer"),
            std::io::Error::other("the plugin has no state `v`"),
        ));
    }
    let mut publisher = node.spike_publisher(&output)?;
    // With spikes_per_s and steps_per_s, the fraction of the layer firing per
    // step (monitoring's `layer_saturated`).
    node.metrics().set_gauge("neurons", size as f64);
    tracing::info!(size, %neuron, backend = backend.name(), topic = %publisher.key(), "node {} (layer) ready", node.name());

    // The first step every input has reached; earlier tensors are before our time.
    let mut start = 0u64;
    for w in &mut wired {
        match w.input.peek_step(&node).await? {
            Some(step) => start = start.max(step),
            None => return Ok(()),
        }
    }
    let mut rules = build_rules(&mut manager, &rules, &mut wired, size, dt_ms)?;
    node.set_plugin_health(plugins::health(&manager));
    if !super::wait_for_downstream(&node, &publisher, wait_s).await? {
        return Ok(());
    }
    node.set_state(HealthState::Active);
    if start > 0 {
        tracing::info!(start, "joined the pipeline at step {start}");
    }

    let mut current = vec![0.0f32; size];
    // Spikes are computed straight into the shared-memory buffer that is sent (no
    // copy); a membrane layer's spikes stay here and its `v` goes into the buffer.
    let layout = match publish {
        Publish::Spikes => SpikeLayout::bitset(node.name(), &[size as u32])?,
        Publish::Membrane => SpikeLayout::analog(node.name(), &[size as u32])?,
    };
    let mut spikes_here = vec![0u64; evospike_compute::spikes::spike_words_len(size)];
    let mut deliveries: Vec<Option<Delivery>> = (0..wired.len()).map(|_| None).collect();
    let mut t = start;
    while max_steps.is_none_or(|max| t < max) {
        for (w, slot) in wired.iter_mut().zip(deliveries.iter_mut()) {
            match w.input.take(t, &node, node.metrics()).await? {
                Some(delivery) => *slot = Some(delivery),
                None => return finish(&node, &mut manager, &output, start, t).await,
            }
        }
        if reset_every > 0 && t % reset_every == 0 {
            // A new sample: start from rest, as the trainer and `evospike eval` do.
            layer.reset();
            wired
                .iter_mut()
                .filter_map(|w| w.projection.as_mut())
                .for_each(Projection::reset);
        }
        let mut loan = publisher.loan(&layout)?;
        let out_words: &mut [u64] = match loan.bitset_mut() {
            Some(words) => words,
            None => &mut spikes_here,
        };
        step_layer(
            backend.as_ref(),
            &mut wired,
            &deliveries,
            &mut rules,
            layer.as_mut(),
            &mut current,
            out_words,
        )?;
        let active = out_words.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        if let (Some(values), Some(v)) = (loan.analog_mut(), layer.state("v")) {
            values.copy_from_slice(v);
        }
        loan.publish(t)?;
        deliveries.iter_mut().for_each(|d| *d = None);
        node.metrics().steps.fetch_add(1, Ordering::Relaxed);
        node.metrics().spikes.fetch_add(active, Ordering::Relaxed);
        t += 1;
    }
    finish(&node, &mut manager, &output, start, t).await
}

/// Ends a layer that computed steps `start..end`: drains its subscribers, stops its plugins.
async fn finish(
    node: &Node,
    manager: &mut evospike_plugin_host::PluginManager,
    output: &str,
    start: u64,
    end: u64,
) -> Result<(), NodeError> {
    if end > start {
        node.drain(&[(node.topic(output), end - 1)], super::encoder::DRAIN)
            .await;
    }
    tracing::info!(steps = end - start, "layer {} done", node.name());
    manager.stop_all();
    Ok(())
}

/// Builds the plasticity rules; the projections they act on must exist, so the
/// inputs' sizes are known by now (their first tensors have arrived).
fn build_rules(
    manager: &mut evospike_plugin_host::PluginManager,
    params: &[RuleParams],
    wired: &mut [Wired],
    post: usize,
    dt_ms: f32,
) -> Result<Vec<Rule>, NodeError> {
    let mut rules = Vec::with_capacity(params.len());
    for rule in params {
        plugins::activate(manager, PluginType::Plasticity, &rule.plugin)?;
        let pre = wired[rule.input].projection(post)?.pre();
        let spec = RuleSpec {
            pre,
            post,
            dt_ms,
            params: rule.params.clone(),
        };
        let name = &rule.plugin;
        let plugin = manager
            .plasticity(name)
            .map_err(|err| NodeError::plugin(format!("use PLASTICITY plugin `{name}`"), err))?;
        let built = plugin
            .create_rule(&spec)
            .map_err(|err| NodeError::plugin(format!("build a rule with plugin `{name}`"), err))?;
        rules.push((rule.input, built));
    }
    Ok(rules)
}

/// One step: projections → neuron layer → plasticity. Allocates nothing.
fn step_layer(
    backend: &dyn Backend,
    wired: &mut [Wired],
    deliveries: &[Option<Delivery>],
    rules: &mut [Rule],
    layer: &mut dyn NeuronLayer,
    current: &mut [f32],
    out_words: &mut [u64],
) -> Result<(), NodeError> {
    let post = current.len();
    current.fill(0.0);
    for (w, delivery) in wired.iter_mut().zip(deliveries) {
        let Some(delivery) = delivery else { continue };
        // The projection exists once its input's size is known (first tensor).
        w.projection(post)?;
        let Wired {
            input, projection, ..
        } = w;
        let Some(projection) = projection.as_mut() else {
            continue;
        };
        match input.analog(delivery) {
            Some(values) => projection.step_analog(backend, values, current)?,
            None => projection.step(backend, input.words(delivery), current)?,
        }
    }
    layer.step(current, out_words);
    for (index, rule) in rules.iter_mut() {
        let (Some(delivery), w) = (&deliveries[*index], &mut wired[*index]) else {
            continue;
        };
        let Wired {
            input, projection, ..
        } = w;
        let pre = input.words(delivery);
        if let Some(projection) = projection.as_mut() {
            rule.update(pre, out_words, projection.weights_mut());
        }
    }
    Ok(())
}
