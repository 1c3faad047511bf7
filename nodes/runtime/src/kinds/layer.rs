//! `layer`: a population of neurons (a NEURON plugin) fed by projections from one
//! or more input topics, optionally with PLASTICITY plugins on those projections.
//! Step *t* is computed once every input delivered *t* (see [`crate::sync`]); the
//! output spikes of *t* are published at once, so a feed-forward pipeline overlaps
//! its steps across processes.
//!
//! | param | default | meaning |
//! |---|---|---|
//! | `size` | required | number of neurons |
//! | `neuron` | `LIFNeuron` | NEURON plugin |
//! | `neuron_params` | `{}` | model parameters (`tau_ms`, `v_threshold`, …) |
//! | `inputs` | required | list of `{topic, p, weight, target, delay, seed}` |
//! | `plasticity` | `[]` | list of `{plugin, input, params}` (input: index into `inputs`) |
//! | `dt_ms` | 1.0 | time step |
//! | `max_steps` | none | stop after step `max_steps - 1` (steps are numbered from 0 pipeline-wide) |
//! | `output` | `<name>/spikes` | topic |
//! | `max_lag` | 1024 | steps an input may run ahead before its sender waits (queue bound) |
//! | `wait_subscribers_s` | 10 | wait this long for a subscriber before starting |
//!
//! Each input's projection is built when its first tensor tells the input size:
//! fixed-probability `p` connectivity (seeded), weights `weight`, `target`
//! `excitatory` or `inhibitory`, `delay` in steps.

use std::sync::atomic::Ordering;

use evospike_compute::{
    backend_from_env, Backend, FixedProbability, Projection, Target, WeightInit,
};
use evospike_plugin_api::{LayerSpec, NeuronLayer, PlasticityRule, PluginType, RuleSpec};
use evospike_schemas::proto::HealthState;
use evospike_schemas::{SpikeBody, SpikeTensor};
use serde::Deserialize;

use crate::node::Node;
use crate::sync::{Delivery, StepInput};
use crate::{plugins, NodeError};

/// One input of a layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    topic: String,
    #[serde(default = "default_p")]
    p: f64,
    #[serde(default = "default_weight")]
    weight: f32,
    #[serde(default)]
    target: TargetSpec,
    #[serde(default)]
    delay: usize,
    #[serde(default)]
    seed: u64,
}

fn default_p() -> f64 {
    0.1
}

fn default_weight() -> f32 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TargetSpec {
    #[default]
    Excitatory,
    Inhibitory,
}

/// A plasticity rule and the index of the input whose projection it adapts.
type Rule = (usize, Box<dyn PlasticityRule>);

/// One plasticity rule on one input's projection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleParam {
    plugin: String,
    #[serde(default)]
    input: usize,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
}

struct Wired {
    input: StepInput,
    spec: InputSpec,
    projection: Option<Projection>,
}

impl Wired {
    fn projection(&mut self, post: usize) -> Result<&mut Projection, NodeError> {
        if self.projection.is_none() {
            let pre = self.input.len().unwrap_or(0);
            let param_error = |err: &dyn std::fmt::Display| NodeError::Param {
                name: format!("inputs[{}]", self.spec.topic),
                reason: err.to_string(),
            };
            let weights = FixedProbability::new(self.spec.p, self.spec.seed)
                .and_then(|c| c.connect(pre, post, WeightInit::Constant(self.spec.weight)))
                .map_err(|err| param_error(&err))?;
            let target = match self.spec.target {
                TargetSpec::Excitatory => Target::Excitatory,
                TargetSpec::Inhibitory => Target::Inhibitory,
            };
            let projection = Projection::new(weights.into(), target, self.spec.delay)
                .map_err(|err| param_error(&err))?;
            tracing::info!(topic = %self.input.topic(), pre, post, "projection built");
            self.projection = Some(projection);
        }
        Ok(self
            .projection
            .as_mut()
            .unwrap_or_else(|| unreachable!("built above")))
    }
}

pub(crate) async fn run(node: Node) -> Result<(), NodeError> {
    let size: usize = node.required_param("size")?;
    let neuron: String = node.param("neuron", "LIFNeuron".to_string())?;
    let specs: Vec<InputSpec> = node.required_param("inputs")?;
    let rules: Vec<RuleParam> = node.param("plasticity", Vec::new())?;
    let dt_ms: f32 = node.param("dt_ms", 1.0)?;
    let max_steps: Option<u64> = node.param("max_steps", None)?;
    let output: String = node.param("output", format!("{}/spikes", node.name()))?;
    let wait_s: f64 = node.param("wait_subscribers_s", 10.0)?;
    if specs.is_empty() {
        return Err(NodeError::Param {
            name: "inputs".into(),
            reason: "a layer needs at least one input".into(),
        });
    }
    if let Some(rule) = rules.iter().find(|r| r.input >= specs.len()) {
        return Err(NodeError::Param {
            name: "plasticity".into(),
            reason: format!(
                "{} refers to input {} of {}",
                rule.plugin,
                rule.input,
                specs.len()
            ),
        });
    }

    let backend = backend_from_env().map_err(|err| NodeError::Config(err.to_string()))?;
    let mut manager = plugins::manager(&node)?;
    plugins::activate(&mut manager, PluginType::Neuron, &neuron)?;
    let layer_spec = LayerSpec {
        num_neurons: size,
        dt_ms,
        params: node.param("neuron_params", Default::default())?,
        seed: 0,
    };
    let mut layer = manager
        .neuron(&neuron)
        .map_err(plugin_error)?
        .create_layer(&layer_spec)
        .map_err(plugin_error)?;
    let mut wired = Vec::with_capacity(specs.len());
    for spec in specs {
        wired.push(Wired {
            input: StepInput::new(&node, &spec.topic)?,
            spec,
            projection: None,
        });
    }
    let mut publisher = node.spike_publisher(&output)?;
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
    let mut out = SpikeTensor::zeros(node.name(), &[size as u32])?;
    let mut deliveries: Vec<Option<Delivery>> = (0..wired.len()).map(|_| None).collect();
    let mut t = start;
    while max_steps.is_none_or(|max| t < max) {
        for (w, slot) in wired.iter_mut().zip(deliveries.iter_mut()) {
            match w.input.take(t, &node, node.metrics()).await? {
                Some(delivery) => *slot = Some(delivery),
                None => return finish(&node, &mut manager, &output, start, t).await,
            }
        }
        let SpikeBody::Bitset(out_words) = &mut out.body else {
            unreachable!("zeros makes a bitset")
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
        out.header.step = t;
        publisher.publish(&mut out)?;
        deliveries.iter_mut().for_each(|d| *d = None);
        node.metrics().steps.fetch_add(1, Ordering::Relaxed);
        node.metrics().spikes.fetch_add(active, Ordering::Relaxed);
        t += 1;
    }
    finish(&node, &mut manager, &output, start, t).await
}

fn plugin_error(err: impl std::fmt::Display) -> NodeError {
    NodeError::Plugin(err.to_string())
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
    params: &[RuleParam],
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
        let plugin = manager.registry().plasticity(&rule.plugin).ok_or_else(|| {
            NodeError::Plugin(format!("{} is not a PLASTICITY plugin", rule.plugin))
        })?;
        rules.push((rule.input, plugin.create_rule(&spec).map_err(plugin_error)?));
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
        let words = input.words(delivery);
        if let Some(projection) = projection.as_mut() {
            projection
                .step(backend, words, current)
                .map_err(|err| NodeError::Config(err.to_string()))?;
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
