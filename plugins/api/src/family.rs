//! The plugin families that do numerical work: neuron layers, encoders and plasticity rules.
//!
//! A *family trait* (`NeuronPlugin`, `EncoderPlugin`, `PlasticityPlugin`) is implemented
//! by a plugin object next to [`Plugin`]; it is a factory. The objects it creates
//! (`NeuronLayer`, `Encoder`, `PlasticityRule`) are what a pipeline node steps every
//! time step, so their per-step methods must not allocate.
//!
//! The registry hands out the family view of a plugin through the accessors on
//! [`Plugin`] ([`Plugin::as_neuron`], [`Plugin::as_encoder`], [`Plugin::as_plasticity`]).
//!
//! These signatures are a contract shared with the built-in plugin crates: provided
//! methods may be added, the required ones must not change.

use serde::{Deserialize, Serialize};

use crate::{Plugin, PluginError};

/// Model-specific parameters of a layer, encoder or rule (`tau_ms`, `v_threshold`, `preset`, …).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// Spikes are bitsets: bit i of word i/64 is neuron i. Length = ceil(n/64) words.
pub type SpikeWords = [u64];

/// Number of `u64` words a spike bitset of `n` neurons needs (`ceil(n / 64)`).
pub const fn spike_words_len(n: usize) -> usize {
    n.div_ceil(64)
}

/// What a [`NeuronPlugin`] needs to build one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Number of neurons in the layer.
    pub num_neurons: usize,
    /// Integration time step in milliseconds.
    pub dt_ms: f32,
    /// Model-specific parameters (`tau_ms`, `v_threshold`, `preset`, …).
    #[serde(default)]
    pub params: Params,
    /// Seed for any randomness in the model, so runs are reproducible.
    #[serde(default)]
    pub seed: u64,
}

/// One population of spiking neurons that advances in fixed time steps.
pub trait NeuronLayer: Send + std::fmt::Debug {
    /// Number of neurons.
    fn len(&self) -> usize;
    /// Advance one step of dt: `input` is the synaptic input per neuron for this step (model units, e.g. mV or pA);
    /// writes this step's spikes into `spikes` (len = ceil(len/64) words). Must not allocate.
    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords);
    /// Back to the initial state (as right after creation).
    fn reset(&mut self);
    /// Named state variable ("v", "u", "theta", "phase", …) if the model has it.
    fn state(&self, name: &str) -> Option<&[f32]>;
    /// `true` when the layer has no neurons.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Why the layer stopped working, if it did (e.g. an external plugin panicked
    /// mid-step). A faulted layer outputs no spikes. Built-in layers never fault.
    fn fault(&self) -> Option<&PluginError> {
        None
    }
}

/// A NEURON plugin: a factory of [`NeuronLayer`]s.
pub trait NeuronPlugin: Plugin {
    /// Build a layer; a bad spec or parameter is an error naming it.
    fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError>;
}

/// What an [`EncoderPlugin`] needs to build one encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// Values per sample.
    pub num_inputs: usize,
    /// Presentation window in steps.
    pub num_steps: u32,
    /// Time step in milliseconds.
    pub dt_ms: f32,
    /// Encoder-specific parameters.
    #[serde(default)]
    pub params: Params,
    /// Seed for any randomness (e.g. Poisson rate coding).
    #[serde(default)]
    pub seed: u64,
}

/// Turns analog samples into spike trains.
pub trait Encoder: Send + std::fmt::Debug {
    /// Output neurons (may differ from num_inputs, e.g. TAS uses 2 per input for ±1).
    fn num_outputs(&self) -> usize;
    /// Start presenting a new sample (values normalised to \[0,1\] unless the encoder says otherwise).
    fn set_sample(&mut self, values: &[f32]);
    /// Spikes for step `t` of the current sample into `spikes`. Must not allocate.
    fn encode_step(&mut self, t: u32, spikes: &mut SpikeWords);
    /// `true` for an encoder of graded values (input currents) rather than spikes:
    /// its nodes publish [`Encoder::encode_step_analog`]'s values.
    fn analog(&self) -> bool {
        false
    }
    /// The graded values of step `t` into `out` (`num_outputs` long), for
    /// [`Encoder::analog`] encoders. Must not allocate.
    fn encode_step_analog(&mut self, t: u32, out: &mut [f32]) {
        let _ = t;
        out.fill(0.0);
    }
}

/// An ENCODER plugin: a factory of [`Encoder`]s.
pub trait EncoderPlugin: Plugin {
    /// Build an encoder; a bad spec or parameter is an error naming it.
    fn create_encoder(&self, spec: &EncoderSpec) -> Result<Box<dyn Encoder>, PluginError>;
}

/// Mutable view of a projection's weights; rows = presynaptic, cols = postsynaptic.
#[derive(Debug)]
pub enum WeightsMut<'a> {
    /// Row-major dense matrix of `rows * cols` values.
    Dense {
        /// Presynaptic neurons.
        rows: usize,
        /// Postsynaptic neurons.
        cols: usize,
        /// Row-major values.
        values: &'a mut [f32],
    },
    /// Compressed sparse rows: row `r` holds `indices[indptr[r]..indptr[r + 1]]`.
    Csr {
        /// Presynaptic neurons.
        rows: usize,
        /// Postsynaptic neurons.
        cols: usize,
        /// Row start offsets, `rows + 1` entries.
        indptr: &'a [u32],
        /// Column (postsynaptic) index of each stored value.
        indices: &'a [u32],
        /// Stored values.
        values: &'a mut [f32],
    },
}

/// What a [`PlasticityPlugin`] needs to build one rule for one projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Presynaptic neurons.
    pub pre: usize,
    /// Postsynaptic neurons.
    pub post: usize,
    /// Time step in milliseconds.
    pub dt_ms: f32,
    /// Rule-specific parameters (`a_plus`, `tau_plus_ms`, …).
    #[serde(default)]
    pub params: Params,
}

/// A learning rule that updates a projection's weights from spikes.
pub trait PlasticityRule: Send + std::fmt::Debug {
    /// Called once per step after the postsynaptic layer stepped. Must not allocate.
    fn update(&mut self, pre: &SpikeWords, post: &SpikeWords, weights: WeightsMut<'_>);
    /// Per-neuron threshold offsets for rules that adapt thresholds (Homeostasis); None otherwise.
    fn threshold_offsets(&self) -> Option<&[f32]> {
        None
    }
}

/// A PLASTICITY plugin: a factory of [`PlasticityRule`]s.
pub trait PlasticityPlugin: Plugin {
    /// Build a rule; a bad spec or parameter is an error naming it.
    fn create_rule(&self, spec: &RuleSpec) -> Result<Box<dyn PlasticityRule>, PluginError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_words_len_rounds_up() {
        assert_eq!(spike_words_len(0), 0);
        assert_eq!(spike_words_len(1), 1);
        assert_eq!(spike_words_len(64), 1);
        assert_eq!(spike_words_len(65), 2);
    }

    #[test]
    fn layer_spec_params_default_to_empty_in_json() {
        let spec: LayerSpec = serde_json::from_str(r#"{"num_neurons": 3, "dt_ms": 1.0}"#).unwrap();
        assert_eq!(spec.num_neurons, 3);
        assert!(spec.params.is_empty());
        assert_eq!(spec.seed, 0);
    }
}
