//! Latency (time-to-first-spike) coding: larger values spike earlier, once.
//!
//! With `T = t_max_ms` (default: the whole presentation window):
//!
//! * `linear` (default): `t(x) = (1 − x)·T` for `x > min_value` (default 0);
//! * `log`: `t(x) = τ·ln(x / (x − θ))` for `x > θ` — the time an RC membrane with
//!   time constant τ (`tau_ms`, default 20), driven by constant input `x`, takes to
//!   reach threshold θ (`threshold`, default 0.2). Inputs at or below θ never spike.
//!
//! The spike is emitted at step `round(t / dt)` when that lies inside the window.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{Encoder, SpikeWords};

/// Linear or logarithmic latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyMode {
    /// `t = (1 − x)·T` for `x > min_value`.
    Linear {
        /// Values at or below this never spike.
        min_value: f32,
    },
    /// `t = τ·ln(x / (x − θ))` for `x > θ`.
    Log {
        /// Membrane time constant τ (ms).
        tau_ms: f32,
        /// Threshold θ.
        threshold: f32,
    },
}

/// Parameters of a [`LatencyEncoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyParams {
    /// How values map to latencies.
    pub mode: LatencyMode,
    /// Latency of the smallest spiking value in linear mode (`t_max_ms`); `None`:
    /// the whole window.
    pub t_max_ms: Option<f32>,
}

impl LatencyParams {
    /// Parses `mode` (`linear`/`log`), `min_value`, `tau_ms`, `threshold`, `t_max_ms`.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let mode = match r.choice("mode", "linear", &["linear", "log"])? {
            "log" => LatencyMode::Log {
                tau_ms: r.positive("tau_ms", 20.0)?,
                threshold: r
                    .f32_where("threshold", 0.2, "in [0, 1)", |t| (0.0..1.0).contains(&t))?,
            },
            _ => LatencyMode::Linear {
                min_value: r
                    .f32_where("min_value", 0.0, "in [0, 1)", |t| (0.0..1.0).contains(&t))?,
            },
        };
        let t_max_ms = if r.has("t_max_ms") {
            Some(r.positive("t_max_ms", 1.0)?)
        } else {
            None
        };
        r.finish()?;
        Ok(Self { mode, t_max_ms })
    }
}

/// Marks an input that does not spike in the current sample.
const NEVER: u32 = u32::MAX;

/// One spike per input at a value-dependent latency; see the module docs.
#[derive(Clone, Debug)]
pub struct LatencyEncoder {
    params: LatencyParams,
    dt_ms: f32,
    num_steps: u32,
    spike_step: Vec<u32>,
}

impl LatencyEncoder {
    /// An encoder of `num_inputs` values over a window of `num_steps` steps.
    pub fn new(num_inputs: usize, num_steps: u32, dt_ms: f32, params: LatencyParams) -> Self {
        Self {
            params,
            dt_ms,
            num_steps,
            spike_step: vec![NEVER; num_inputs],
        }
    }

    /// The latency in ms for value `x`, `None` if it does not spike.
    pub fn latency_ms(&self, x: f32) -> Option<f32> {
        let window = self
            .params
            .t_max_ms
            .unwrap_or(self.dt_ms * self.num_steps.saturating_sub(1) as f32);
        if x.is_nan() {
            return None;
        }
        match self.params.mode {
            LatencyMode::Linear { min_value } => {
                (x > min_value).then(|| (1.0 - x.min(1.0)) * window)
            }
            LatencyMode::Log { tau_ms, threshold } => (x > threshold)
                .then(|| tau_ms * (f64::from(x) / f64::from(x - threshold)).ln() as f32),
        }
    }

    /// The step each input spikes at in the current sample (`None`: never).
    pub fn spike_steps(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        self.spike_step.iter().map(|&s| (s != NEVER).then_some(s))
    }
}

impl Encoder for LatencyEncoder {
    fn num_outputs(&self) -> usize {
        self.spike_step.len()
    }

    fn set_sample(&mut self, values: &[f32]) {
        for i in 0..self.spike_step.len() {
            let x = values.get(i).copied().unwrap_or(0.0);
            self.spike_step[i] = match self.latency_ms(x) {
                Some(t) => {
                    let step = (f64::from(t) / f64::from(self.dt_ms)).round();
                    if step < f64::from(self.num_steps) {
                        step as u32
                    } else {
                        NEVER
                    }
                }
                None => NEVER,
            };
        }
    }

    fn encode_step(&mut self, t: u32, out: &mut SpikeWords) {
        spikes::clear(out);
        for (i, &s) in self.spike_step.iter().enumerate() {
            if s == t {
                spikes::set(out, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_spikes(enc: &mut LatencyEncoder, steps: u32) -> Vec<Option<u32>> {
        let mut first = vec![None; enc.num_outputs()];
        let mut w = vec![0u64; spikes::spike_words_len(enc.num_outputs())];
        for t in 0..steps {
            enc.encode_step(t, &mut w);
            for i in spikes::ones(&w) {
                assert!(first[i].is_none(), "input {i} spiked twice");
                first[i] = Some(t);
            }
        }
        first
    }

    #[test]
    fn linear_latency_is_one_minus_x_times_the_window() {
        let p = LatencyParams {
            mode: LatencyMode::Linear { min_value: 0.0 },
            t_max_ms: None,
        };
        let mut enc = LatencyEncoder::new(4, 101, 1.0, p);
        enc.set_sample(&[1.0, 0.5, 0.25, 0.0]);
        assert_eq!(
            first_spikes(&mut enc, 101),
            vec![Some(0), Some(50), Some(75), None]
        );
    }

    #[test]
    fn log_latency_is_the_rc_charging_time() {
        let (tau, theta) = (20.0f32, 0.2f32);
        let p = LatencyParams {
            mode: LatencyMode::Log {
                tau_ms: tau,
                threshold: theta,
            },
            t_max_ms: None,
        };
        let mut enc = LatencyEncoder::new(4, 1000, 0.1, p);
        let xs = [1.0f32, 0.5, 0.25, 0.1];
        enc.set_sample(&xs);
        let got = first_spikes(&mut enc, 1000);
        for (x, g) in xs.iter().zip(&got) {
            let x64 = f64::from(*x);
            if x64 <= f64::from(theta) {
                assert_eq!(*g, None);
                continue;
            }
            let t = f64::from(tau) * (x64 / (x64 - f64::from(theta))).ln();
            let step = g.expect("spikes") as f64 * 0.1;
            assert!(
                (step - t).abs() <= 0.05 + 1e-9,
                "x={x}: {step} ms vs {t} ms"
            );
        }
        // Monotone: larger inputs are earlier.
        assert!(got[0] < got[1] && got[1] < got[2]);
    }

    #[test]
    fn bad_threshold_is_an_error() {
        let mut m = Params::new();
        m.insert("mode".into(), serde_json::json!("log"));
        m.insert("threshold".into(), serde_json::json!(1.5));
        assert_eq!(
            LatencyParams::from_params(&m).unwrap_err().param,
            "threshold"
        );
    }
}
