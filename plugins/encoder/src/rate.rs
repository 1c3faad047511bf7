//! Rate coding: each value sets the firing probability of one input neuron.
//!
//! A value `x` in `[0, 1]` becomes a rate `λ = x · max_rate_hz`. Per step of `dt`:
//!
//! * `bernoulli` (default): spike with probability `p = λ·dt` (clamped to 1);
//! * `poisson`: spike if a Poisson process of rate `λ` has at least one event in
//!   the step, `p = 1 − e^{−λ·dt}` (never above 1, so high rates saturate smoothly).
//!
//! Draws come from a seeded generator: the same seed and samples give the same spikes.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{Encoder, SpikeWords};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Bernoulli or Poisson spike probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateMode {
    /// `p = λ·dt`, clamped to 1.
    Bernoulli,
    /// `p = 1 − e^{−λ·dt}`.
    Poisson,
}

/// Parameters of a [`RateEncoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct RateParams {
    /// Rate for value 1 in Hz (`max_rate_hz`, default 100).
    pub max_rate_hz: f32,
    /// `mode`: `bernoulli` (default) or `poisson`.
    pub mode: RateMode,
}

impl RateParams {
    /// Parses `max_rate_hz` and `mode`, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self {
            max_rate_hz: r.non_negative("max_rate_hz", 100.0)?,
            mode: match r.choice("mode", "bernoulli", &["bernoulli", "poisson"])? {
                "poisson" => RateMode::Poisson,
                _ => RateMode::Bernoulli,
            },
        };
        r.finish()?;
        Ok(p)
    }
}

/// Seeded Bernoulli/Poisson rate encoder; see the module docs.
#[derive(Clone, Debug)]
pub struct RateEncoder {
    params: RateParams,
    dt_s: f64,
    rng: SmallRng,
    /// Per-input spike probability for the current sample.
    prob: Vec<f32>,
}

impl RateEncoder {
    /// An encoder of `num_inputs` values.
    pub fn new(num_inputs: usize, dt_ms: f32, params: RateParams, seed: u64) -> Self {
        Self {
            params,
            dt_s: f64::from(dt_ms) / 1000.0,
            rng: SmallRng::seed_from_u64(seed),
            prob: vec![0.0; num_inputs],
        }
    }

    /// Spike probability per step for each input of the current sample.
    pub fn probabilities(&self) -> &[f32] {
        &self.prob
    }
}

impl Encoder for RateEncoder {
    fn num_outputs(&self) -> usize {
        self.prob.len()
    }

    /// Values are clamped to `[0, 1]` (NaN counts as 0); extra values are ignored and
    /// missing ones count as 0.
    fn set_sample(&mut self, values: &[f32]) {
        let (max, dt) = (f64::from(self.params.max_rate_hz), self.dt_s);
        for (i, p) in self.prob.iter_mut().enumerate() {
            let x = values
                .get(i)
                .copied()
                .filter(|x| !x.is_nan())
                .unwrap_or(0.0);
            let lambda = f64::from(x.clamp(0.0, 1.0)) * max;
            *p = match self.params.mode {
                RateMode::Bernoulli => (lambda * dt).min(1.0),
                RateMode::Poisson => 1.0 - (-lambda * dt).exp(),
            } as f32;
        }
    }

    fn encode_step(&mut self, _t: u32, out: &mut SpikeWords) {
        spikes::clear(out);
        for (i, &p) in self.prob.iter().enumerate() {
            if p > 0.0 && self.rng.random::<f32>() < p {
                spikes::set(out, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_spikes(enc: &mut RateEncoder, steps: u32) -> Vec<u32> {
        let n = enc.num_outputs();
        let mut counts = vec![0u32; n];
        let mut w = vec![0u64; spikes::spike_words_len(n)];
        for t in 0..steps {
            enc.encode_step(t, &mut w);
            for i in spikes::ones(&w) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn mean_rate_is_within_binomial_bounds() {
        for mode in [RateMode::Bernoulli, RateMode::Poisson] {
            let params = RateParams {
                max_rate_hz: 200.0,
                mode,
            };
            let (dt_ms, steps) = (1.0f32, 20_000u32);
            let mut enc = RateEncoder::new(4, dt_ms, params, 42);
            enc.set_sample(&[0.0, 0.25, 0.5, 1.0]);
            let counts = count_spikes(&mut enc, steps);
            assert_eq!(counts[0], 0);
            for (i, &x) in [0.25f64, 0.5, 1.0].iter().enumerate() {
                let lambda_dt = x * 200.0 * f64::from(dt_ms) / 1000.0;
                let p = match mode {
                    RateMode::Bernoulli => lambda_dt,
                    RateMode::Poisson => 1.0 - (-lambda_dt).exp(),
                };
                let n = f64::from(steps);
                let (mean, sd) = (n * p, (n * p * (1.0 - p)).sqrt());
                let got = f64::from(counts[i + 1]);
                assert!(
                    (got - mean).abs() < 5.0 * sd,
                    "{mode:?} x={x}: {got} spikes, expected {mean:.0} ± {sd:.0}"
                );
            }
        }
    }

    #[test]
    fn same_seed_same_spikes_and_values_are_clamped() {
        let p = RateParams {
            max_rate_hz: 500.0,
            mode: RateMode::Bernoulli,
        };
        let mut a = RateEncoder::new(3, 1.0, p.clone(), 7);
        let mut b = RateEncoder::new(3, 1.0, p, 7);
        a.set_sample(&[0.3, 2.0, f32::NAN]);
        b.set_sample(&[0.3, 2.0, f32::NAN]);
        assert_eq!(a.probabilities(), &[0.15, 0.5, 0.0]);
        assert_eq!(count_spikes(&mut a, 500), count_spikes(&mut b, 500));
    }

    #[test]
    fn unknown_mode_is_an_error() {
        let mut m = Params::new();
        m.insert("mode".into(), serde_json::json!("gamma"));
        assert_eq!(RateParams::from_params(&m).unwrap_err().param, "mode");
    }
}
