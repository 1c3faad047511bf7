//! Current injection: each value is the input current of one neuron, every step.
//!
//! The encoder of trained networks (`SurrogateGradient` trains with it): a sample
//! `x` in \[0, 1\] is presented as the graded tensor `gain · x` on every step of
//! its window. It publishes analog tensors, not spikes ([`Encoder::analog`]); the
//! first layer's projection multiplies them by its weights.

use evospike_compute::{ParamError, ParamReader, Params};
use evospike_plugin_api::{Encoder, SpikeWords};

/// Parameters of a [`CurrentEncoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentParams {
    /// What values are multiplied by (`gain`, default 1).
    pub gain: f32,
}

impl CurrentParams {
    /// Parses `gain`, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self {
            gain: r.f32("gain", 1.0)?,
        };
        r.finish()?;
        if !p.gain.is_finite() {
            return Err(ParamError::new(
                "gain",
                format!("must be finite, got {}", p.gain),
            ));
        }
        Ok(p)
    }
}

/// Presents each sample as a constant current; see the module docs.
#[derive(Clone, Debug)]
pub struct CurrentEncoder {
    gain: f32,
    values: Vec<f32>,
}

impl CurrentEncoder {
    /// An encoder of `n` values.
    pub fn new(n: usize, params: &CurrentParams) -> Self {
        Self {
            gain: params.gain,
            values: vec![0.0; n],
        }
    }
}

impl Encoder for CurrentEncoder {
    fn num_outputs(&self) -> usize {
        self.values.len()
    }

    fn set_sample(&mut self, values: &[f32]) {
        assert_eq!(values.len(), self.values.len(), "sample length");
        for (v, &x) in self.values.iter_mut().zip(values) {
            *v = self.gain * x;
        }
    }

    /// A current encoder emits no spikes; see [`Encoder::encode_step_analog`].
    fn encode_step(&mut self, _t: u32, spikes: &mut SpikeWords) {
        spikes.fill(0);
    }

    fn analog(&self) -> bool {
        true
    }

    fn encode_step_analog(&mut self, _t: u32, out: &mut [f32]) {
        out.copy_from_slice(&self.values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presents_the_scaled_sample_every_step() {
        let mut e = CurrentEncoder::new(3, &CurrentParams { gain: 2.0 });
        e.set_sample(&[0.0, 0.25, 1.0]);
        let mut out = [9.0; 3];
        for t in 0..3 {
            e.encode_step_analog(t, &mut out);
            assert_eq!(out, [0.0, 0.5, 2.0]);
        }
        assert!(e.analog());
        assert!(CurrentParams::from_params(
            &serde_json::from_str(r#"{"gain": 1, "x": 0}"#).unwrap()
        )
        .is_err());
    }
}
