//! Leaky integrators: neurons that integrate their input and never spike.
//!
//! # Model
//!
//! ```text
//! v(t+dt) = β·v(t) + I(t),     β = e^{−dt/τ}
//! ```
//!
//! A population of these is the usual readout of a trained spiking network (Norse's
//! `LICell`, snnTorch's non-spiking output): its membrane potential, summed over a
//! sample's presentation, is the class score. The decay is computed exactly as
//! the LIF model's ([`crate::lif::membrane_decay`]), so the trainer and the plugin
//! step the same numbers.

use evospike_compute::{ParamError, ParamReader, Params};
use evospike_plugin_api::{NeuronLayer, SpikeWords};

use crate::lif::membrane_decay;

/// Parameters of a [`LeakyLayer`].
#[derive(Clone, Debug, PartialEq)]
pub struct LeakyParams {
    /// Membrane time constant τ in ms (`tau_ms`, default 20).
    pub tau_ms: f32,
}

impl Default for LeakyParams {
    fn default() -> Self {
        Self { tau_ms: 20.0 }
    }
}

impl LeakyParams {
    /// Parses a whole parameter map, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self {
            tau_ms: r.positive("tau_ms", Self::default().tau_ms)?,
        };
        r.finish()?;
        Ok(p)
    }
}

/// A population of leaky integrators; `state("v")` is the membrane.
#[derive(Clone, Debug)]
pub struct LeakyLayer {
    decay: f32,
    v: Vec<f32>,
}

impl LeakyLayer {
    /// `num_neurons` integrators advancing in steps of `dt_ms`.
    pub fn new(num_neurons: usize, dt_ms: f32, params: &LeakyParams) -> Result<Self, ParamError> {
        if !(dt_ms > 0.0 && dt_ms.is_finite()) {
            return Err(ParamError::new(
                "dt_ms",
                format!("must be > 0, got {dt_ms}"),
            ));
        }
        Ok(Self {
            decay: membrane_decay(dt_ms, params.tau_ms),
            v: vec![0.0; num_neurons],
        })
    }

    /// The membrane potentials.
    pub fn v(&self) -> &[f32] {
        &self.v
    }
}

impl NeuronLayer for LeakyLayer {
    fn len(&self) -> usize {
        self.v.len()
    }

    /// Integrates `input`; `spikes` is cleared (integrators never fire).
    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        assert_eq!(input.len(), self.v.len(), "input length");
        for (v, &x) in self.v.iter_mut().zip(input) {
            *v = self.decay * *v + x;
        }
        spikes.fill(0);
    }

    fn reset(&mut self) {
        self.v.fill(0.0);
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        (name == "v").then_some(&self.v[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_with_the_lif_decay_and_never_fires() {
        let p = LeakyParams { tau_ms: 10.0 };
        let mut layer = LeakyLayer::new(2, 1.0, &p).unwrap();
        let mut s = vec![u64::MAX];
        layer.step(&[1.0, -2.0], &mut s);
        layer.step(&[1.0, 0.0], &mut s);
        let beta = (-0.1f64).exp() as f32;
        assert_eq!(layer.v(), [beta + 1.0, -2.0 * beta]);
        assert_eq!(s, [0]);
        layer.reset();
        assert_eq!(layer.state("v").unwrap(), [0.0, 0.0]);
        assert!(LeakyParams::from_params(&serde_json::from_str(r#"{"tau":1}"#).unwrap()).is_err());
    }
}
