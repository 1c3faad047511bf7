//! TAS (Temporal Analog Spike) coding: threshold-adaptive step-forward delta coding.
//!
//! Each input channel keeps a baseline `b` (start 0) and a threshold `θ` (start
//! `theta`). At every step, with the current value `x`:
//!
//! ```text
//! x − b ≥ θ   →  spike +1 on output 2i,     b ← b + θ
//! x − b ≤ −θ  →  spike −1 on output 2i + 1, b ← b − θ
//! otherwise   →  no spike,                  θ ← max(θ · shrink, theta_min)
//! after a spike of the same sign as the previous one: θ ← min(θ · grow, theta_max)
//! ```
//!
//! The baseline only ever steps *towards* `x` by the current θ, so it never
//! overshoots; a quiet step means `|x − b| < θ`. Large jumps are followed in few
//! steps (θ grows on runs of same-sign spikes), steady values are refined (θ
//! shrinks while quiet). Values are not limited to `[0, 1]`, and the baseline
//! carries over between samples, so a sequence of samples is coded as a stream
//! of deltas.
//!
//! Because θ changes only as a function of the emitted spikes, a [`TasDecoder`]
//! with the same parameters reproduces `b` (and θ) exactly from the spikes alone:
//! after any quiet step of a channel, its reconstruction is within that channel's θ.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{Encoder, SpikeWords};

/// Parameters shared by [`TasEncoder`] and [`TasDecoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct TasParams {
    /// Initial threshold (`theta`, default 0.05).
    pub theta: f32,
    /// Lower bound of θ (`theta_min`, default theta / 8).
    pub theta_min: f32,
    /// Upper bound of θ (`theta_max`, default theta · 8).
    pub theta_max: f32,
    /// Factor on runs of same-sign spikes (`grow`, default 2, ≥ 1).
    pub grow: f32,
    /// Factor on quiet steps (`shrink`, default 0.5, in (0, 1]).
    pub shrink: f32,
}

impl TasParams {
    /// Parses the fields (keys as in the field docs), rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let theta = r.positive("theta", 0.05)?;
        let p = Self {
            theta,
            theta_min: r.positive("theta_min", theta / 8.0)?,
            theta_max: r.positive("theta_max", theta * 8.0)?,
            grow: r.f32_where("grow", 2.0, ">= 1", |g| g >= 1.0)?,
            shrink: r.f32_where("shrink", 0.5, "in (0, 1]", |s| s > 0.0 && s <= 1.0)?,
        };
        r.finish()?;
        if !(p.theta_min <= p.theta && p.theta <= p.theta_max) {
            return Err(ParamError::new(
                "theta",
                format!(
                    "must lie in [theta_min, theta_max] = [{}, {}], got {}",
                    p.theta_min, p.theta_max, p.theta
                ),
            ));
        }
        Ok(p)
    }
}

/// The per-channel state both sides keep in lockstep.
#[derive(Clone, Debug)]
struct Channels {
    params: TasParams,
    baseline: Vec<f32>,
    theta: Vec<f32>,
    /// Sign of the last spike: +1, −1, or 0 after a quiet step.
    last: Vec<i8>,
}

impl Channels {
    fn new(n: usize, params: TasParams) -> Self {
        Self {
            baseline: vec![0.0; n],
            theta: vec![params.theta; n],
            last: vec![0; n],
            params,
        }
    }

    /// Applies spike `sign` (+1, −1, 0 = quiet) to channel `i`.
    #[inline]
    fn apply(&mut self, i: usize, sign: i8) {
        let p = &self.params;
        if sign == 0 {
            self.theta[i] = (self.theta[i] * p.shrink).max(p.theta_min);
        } else {
            self.baseline[i] += f32::from(sign) * self.theta[i];
            if self.last[i] == sign {
                self.theta[i] = (self.theta[i] * p.grow).min(p.theta_max);
            }
        }
        self.last[i] = sign;
    }

    fn reset(&mut self) {
        self.baseline.fill(0.0);
        self.theta.fill(self.params.theta);
        self.last.fill(0);
    }
}

/// Threshold-adaptive step-forward delta encoder; see the module docs.
#[derive(Clone, Debug)]
pub struct TasEncoder {
    channels: Channels,
    target: Vec<f32>,
}

impl TasEncoder {
    /// An encoder of `num_inputs` channels (`2 · num_inputs` outputs).
    pub fn new(num_inputs: usize, params: TasParams) -> Self {
        Self {
            channels: Channels::new(num_inputs, params),
            target: vec![0.0; num_inputs],
        }
    }

    /// The baselines (what a decoder reconstructs).
    pub fn baseline(&self) -> &[f32] {
        &self.channels.baseline
    }

    /// Current per-channel thresholds θ.
    pub fn thresholds(&self) -> &[f32] {
        &self.channels.theta
    }

    /// Back to baseline 0 and the initial threshold.
    pub fn reset(&mut self) {
        self.channels.reset();
    }
}

impl Encoder for TasEncoder {
    fn num_outputs(&self) -> usize {
        2 * self.target.len()
    }

    /// Any finite values (NaN counts as 0); missing values count as 0.
    fn set_sample(&mut self, values: &[f32]) {
        for (i, x) in self.target.iter_mut().enumerate() {
            *x = values
                .get(i)
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
        }
    }

    fn encode_step(&mut self, _t: u32, out: &mut SpikeWords) {
        spikes::clear(out);
        for i in 0..self.target.len() {
            let d = self.target[i] - self.channels.baseline[i];
            let theta = self.channels.theta[i];
            let sign = if d >= theta {
                spikes::set(out, 2 * i);
                1
            } else if d <= -theta {
                spikes::set(out, 2 * i + 1);
                -1
            } else {
                0
            };
            self.channels.apply(i, sign);
        }
    }
}

/// Rebuilds the values from TAS spikes; mirrors the encoder's state exactly.
#[derive(Clone, Debug)]
pub struct TasDecoder {
    channels: Channels,
}

impl TasDecoder {
    /// A decoder of `num_inputs` channels, with the encoder's parameters.
    pub fn new(num_inputs: usize, params: TasParams) -> Self {
        Self {
            channels: Channels::new(num_inputs, params),
        }
    }

    /// Consumes one step of spikes (`2 · num_inputs` outputs) and returns the
    /// reconstruction.
    ///
    /// # Panics
    /// If `spikes` has fewer than `ceil(2 · num_inputs / 64)` words.
    pub fn decode_step(&mut self, words: &SpikeWords) -> &[f32] {
        for i in 0..self.channels.baseline.len() {
            let (up, down) = (spikes::get(words, 2 * i), spikes::get(words, 2 * i + 1));
            let sign = match (up, down) {
                (true, false) => 1,
                (false, true) => -1,
                _ => 0,
            };
            self.channels.apply(i, sign);
        }
        &self.channels.baseline
    }

    /// The current reconstruction.
    pub fn values(&self) -> &[f32] {
        &self.channels.baseline
    }

    /// Current per-channel thresholds θ (the reconstruction's error bound after a quiet step).
    pub fn thresholds(&self) -> &[f32] {
        &self.channels.theta
    }

    /// Back to baseline 0 and the initial threshold.
    pub fn reset(&mut self) {
        self.channels.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    fn params() -> TasParams {
        TasParams {
            theta: 0.05,
            theta_min: 0.005,
            theta_max: 0.4,
            grow: 2.0,
            shrink: 0.5,
        }
    }

    #[test]
    fn decoder_reconstructs_within_theta_after_each_window() {
        let n = 16;
        let mut enc = TasEncoder::new(n, params());
        let mut dec = TasDecoder::new(n, params());
        let mut rng = SmallRng::seed_from_u64(3);
        let mut w = vec![0u64; spikes::spike_words_len(2 * n)];
        for sample in 0..200 {
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
            enc.set_sample(&values);
            let mut quiet = vec![false; n];
            for t in 0..40 {
                enc.encode_step(t, &mut w);
                for (i, q) in quiet.iter_mut().enumerate() {
                    *q = !spikes::get(&w, 2 * i) && !spikes::get(&w, 2 * i + 1);
                }
                dec.decode_step(&w);
            }
            assert_eq!(
                dec.values(),
                enc.baseline(),
                "decoder mirrors encoder (sample {sample})"
            );
            for i in 0..n {
                assert!(
                    quiet[i],
                    "channel {i} still spiking at the end of sample {sample}"
                );
                let err = (values[i] - dec.values()[i]).abs();
                // After the quiet last step θ has shrunk once more: the bound is θ / shrink.
                let theta_at_check = dec.thresholds()[i] / params().shrink;
                assert!(
                    err < theta_at_check.max(params().theta_min) + 1e-5,
                    "sample {sample} ch {i}: err {err} vs θ {theta_at_check}"
                );
                assert!(
                    err < params().theta,
                    "sample {sample} ch {i}: err {err} ≥ initial θ"
                );
            }
        }
    }

    #[test]
    fn at_most_one_sign_per_channel_and_step_and_no_overshoot() {
        let mut enc = TasEncoder::new(1, params());
        enc.set_sample(&[1.0]);
        let mut w = vec![0u64; 1];
        let mut within_initial_theta = None;
        for t in 0..60 {
            enc.encode_step(t, &mut w);
            assert!(w[0] != 0b11);
            assert!(enc.baseline()[0] <= 1.0 + 1e-6, "overshoot at step {t}");
            if within_initial_theta.is_none() && 1.0 - enc.baseline()[0] < 0.05 {
                within_initial_theta = Some(t);
            }
        }
        // θ doubles on the run (0.05, 0.1, 0.2, 0.4, …): a fixed θ = 0.05 would need
        // 19 steps to get within 0.05 of 1.0.
        let t = within_initial_theta.expect("converges");
        assert!(t < 10, "took {t} steps");
    }

    #[test]
    fn inconsistent_thresholds_are_an_error() {
        let mut m = Params::new();
        m.insert("theta".into(), serde_json::json!(0.5));
        m.insert("theta_max".into(), serde_json::json!(0.1));
        assert_eq!(TasParams::from_params(&m).unwrap_err().param, "theta");
    }
}
