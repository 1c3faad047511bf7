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
//! | `model`, `layer` | none | run layer `layer` of a trained model: its neurons, size and weights (one input) |
//! | `reset_every` | 0 | reset the neurons every this many steps (a model's samples: its window) |
//! | `publish` | `spikes` | or `membrane`: publish `state("v")` as an analog tensor (a model's readout layer) |
//! | `plasticity` | `[]` | list of `{plugin, input, params}` (input: index into `inputs`) |
//! | `dt_ms` | 1.0 | time step |
//! | `max_steps` | none | stop after step `max_steps - 1` (steps are numbered from 0 pipeline-wide) |
//! | `output` | `<name>/spikes` | topic |
//! | `max_lag` | 1024 | steps an input may run ahead before its sender waits (queue bound) |
//! | `wait_subscribers_s` | 10 | wait this long for a subscriber before starting |
//!
//! Each input's projection is built when its first tensor tells the input size:
//! fixed-probability `p` connectivity (seeded), weights `weight`, `target`
//! `excitatory` or `inhibitory`, `delay` in steps. With a `model`, the projection
//! holds the model's trained weights instead, and an input sending graded values
//! (a `CurrentEncoder`, a membrane) drives it with those values.

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
    /// Connection probability (default 0.1).
    p: Option<f64>,
    /// Weight of every connection (default 1.0).
    weight: Option<f32>,
    #[serde(default)]
    target: TargetSpec,
    #[serde(default)]
    delay: usize,
    #[serde(default)]
    seed: u64,
}

impl InputSpec {
    /// Whether connectivity parameters were given (a model's weights exclude them).
    fn sets_connectivity(&self) -> bool {
        self.p.is_some() || self.weight.is_some() || self.seed != 0 || self.delay != 0
    }
}

/// What the layer publishes each step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Publish {
    #[default]
    Spikes,
    Membrane,
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
            let (p, weight) = (self.spec.p.unwrap_or(0.1), self.spec.weight.unwrap_or(1.0));
            let weights = FixedProbability::new(p, self.spec.seed)
                .and_then(|c| c.connect(pre, post, WeightInit::Constant(weight)))
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

/// The layer of a model this node runs: its neurons and its input projection.
struct FromModel {
    size: usize,
    neuron: String,
    neuron_params: serde_json::Map<String, serde_json::Value>,
    projection: Projection,
    steps_per_sample: u64,
    membrane_out: bool,
}

fn from_model(node: &Node) -> Result<Option<FromModel>, NodeError> {
    let Some(model) = super::model::load(node)? else {
        return Ok(None);
    };
    for key in ["size", "neuron", "neuron_params"] {
        super::model::refuse_with_model(node, key)?;
    }
    let name: String = node.required_param("layer")?;
    let net = &model.manifest.network;
    let Some(index) = net.layers.iter().position(|l| l.name == name) else {
        return Err(NodeError::Param {
            name: "layer".into(),
            reason: format!(
                "the model has no layer `{name}` (it has: {})",
                net.layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let def = &net.layers[index];
    let projection = evospike_learning::infer::layer_projection(&model, &name).map_err(|e| {
        NodeError::Param {
            name: "model".into(),
            reason: e.to_string(),
        }
    })?;
    Ok(Some(FromModel {
        size: def.size,
        neuron: def.neuron.clone(),
        neuron_params: def.params.clone(),
        projection,
        steps_per_sample: u64::from(net.steps_per_sample),
        membrane_out: index + 1 == net.layers.len()
            && net.readout == evospike_plugin_api::Readout::Membrane,
    }))
}

pub(crate) async fn run(node: Node) -> Result<(), NodeError> {
    let mut model = from_model(&node)?;
    if model.is_none() && node.params().contains_key("layer") {
        return Err(NodeError::Param {
            name: "layer".into(),
            reason: "names a layer of a model; give `model` too".into(),
        });
    }
    let size: usize = match &model {
        Some(m) => m.size,
        None => node.required_param("size")?,
    };
    let neuron: String = match &model {
        Some(m) => m.neuron.clone(),
        None => node.param("neuron", "LIFNeuron".to_string())?,
    };
    let specs: Vec<InputSpec> = node.required_param("inputs")?;
    let reset_every: u64 = node.param(
        "reset_every",
        model.as_ref().map_or(0, |m| m.steps_per_sample),
    )?;
    let publish: Publish = node.param(
        "publish",
        if model.as_ref().is_some_and(|m| m.membrane_out) {
            Publish::Membrane
        } else {
            Publish::Spikes
        },
    )?;
    if model.is_some() && (specs.len() != 1 || specs.iter().any(InputSpec::sets_connectivity)) {
        return Err(NodeError::Param {
            name: "inputs".into(),
            reason:
                "a model layer takes exactly one input, `{topic}`, and its weights from the model"
                    .into(),
        });
    }
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
        params: match &model {
            Some(m) => m.neuron_params.clone(),
            None => node.param("neuron_params", Default::default())?,
        },
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
            projection: model.take().map(|m| m.projection),
        });
    }
    if publish == Publish::Membrane && layer.state("v").is_none() {
        return Err(NodeError::Param {
            name: "publish".into(),
            reason: format!("{neuron} has no membrane state `v` to publish"),
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
    let mut spikes_out = vec![0u64; evospike_compute::spikes::spike_words_len(size)];
    let mut out = match publish {
        Publish::Spikes => SpikeTensor::zeros(node.name(), &[size as u32])?,
        Publish::Membrane => SpikeTensor::builder(node.name())
            .shape([size as u32])
            .analog(vec![0.0; size])?,
    };
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
        let out_words: &mut [u64] = match &mut out.body {
            SpikeBody::Bitset(words) => words,
            _ => &mut spikes_out,
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
        if let (SpikeBody::Analog(values), Some(v)) = (&mut out.body, layer.state("v")) {
            values.copy_from_slice(v);
        }
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
        let Some(projection) = projection.as_mut() else {
            continue;
        };
        let stepped = match input.analog(delivery) {
            Some(values) => projection.step_analog(backend, values, current),
            None => projection.step(backend, input.words(delivery), current),
        };
        stepped.map_err(|err| NodeError::Config(format!("input {}: {err}", input.topic())))?;
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
