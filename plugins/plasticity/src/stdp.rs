//! Trace-based pair STDP, and its BCM-style meta-plastic variant.
//!
//! # STDP
//!
//! Each presynaptic neuron `j` keeps a trace `x_j` and each postsynaptic neuron `k`
//! a trace `y_k`, decaying with τ+ and τ− and incremented by 1 at each spike
//! (all-to-all pairing). Every step, after the decay:
//!
//! ```text
//! pre spike j:   x_j += 1;  w_jk −= A− · y_k · f−(w)     (depression, post before pre)
//! post spike k:  y_k += 1;  w_jk += A+ · x_j · f+(w)     (potentiation, pre before post)
//! additive:        f+ = f− = 1
//! multiplicative:  f+ = w_max − w,  f− = w − w_min
//! then w is clipped to [w_min, w_max]
//! ```
//!
//! For one pair with `Δt = t_post − t_pre` this gives the exponential window
//! `Δw = A+ e^{−Δt/τ+}` for `Δt ≥ 0` and `Δw = −A− e^{Δt/τ−}` for `Δt < 0`
//! (additive, away from the bounds). Pre spikes are processed before post spikes,
//! so a simultaneous pair counts as `Δt = 0` (potentiation), as in Brian2.
//!
//! # MetaPlasticity
//!
//! A BCM-style sliding threshold: each postsynaptic neuron keeps a slow rate
//! estimate `r̄_k` (exponential average over `tau_rate_ms`, in Hz), and depression
//! is scaled by `r̄_k / target_rate_hz`. Neurons firing above target get more
//! depression than potentiation (their effective LTP/LTD threshold slides up),
//! neurons firing below target the reverse.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{PlasticityRule, SpikeWords, WeightsMut};

/// Additive or multiplicative (soft-bound) weight dependence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdpMode {
    /// `Δw` independent of `w`.
    Additive,
    /// Potentiation ∝ `w_max − w`, depression ∝ `w − w_min`.
    Multiplicative,
}

/// STDP parameters (keys in parentheses, times in ms).
#[derive(Clone, Debug, PartialEq)]
pub struct StdpParams {
    /// Potentiation amplitude A+ (`a_plus`, default 0.01).
    pub a_plus: f32,
    /// Depression amplitude A− (`a_minus`, default 0.0105).
    pub a_minus: f32,
    /// Presynaptic trace time constant τ+ (`tau_plus_ms`, default 20).
    pub tau_plus_ms: f32,
    /// Postsynaptic trace time constant τ− (`tau_minus_ms`, default 20).
    pub tau_minus_ms: f32,
    /// Lower weight bound (`w_min`, default 0).
    pub w_min: f32,
    /// Upper weight bound (`w_max`, default 1).
    pub w_max: f32,
    /// `mode`: `additive` (default) or `multiplicative`.
    pub mode: StdpMode,
}

impl StdpParams {
    /// Reads the STDP keys from `r`.
    pub fn read(r: &ParamReader<'_>) -> Result<Self, ParamError> {
        let p = Self {
            a_plus: r.non_negative("a_plus", 0.01)?,
            a_minus: r.non_negative("a_minus", 0.0105)?,
            tau_plus_ms: r.positive("tau_plus_ms", 20.0)?,
            tau_minus_ms: r.positive("tau_minus_ms", 20.0)?,
            w_min: r.f32("w_min", 0.0)?,
            w_max: r.f32("w_max", 1.0)?,
            mode: match r.choice("mode", "additive", &["additive", "multiplicative"])? {
                "multiplicative" => StdpMode::Multiplicative,
                _ => StdpMode::Additive,
            },
        };
        if p.w_min >= p.w_max {
            return Err(ParamError::new(
                "w_max",
                format!("must exceed w_min ({} >= {})", p.w_min, p.w_max),
            ));
        }
        Ok(p)
    }

    /// Parses a whole parameter map, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self::read(&r)?;
        r.finish()?;
        Ok(p)
    }
}

/// The sliding-threshold part of [`MetaPlasticity`](Stdp::meta).
#[derive(Clone, Debug, PartialEq)]
pub struct MetaParams {
    /// Rate at which depression has its nominal size (`target_rate_hz`, default 10).
    pub target_rate_hz: f32,
    /// Time constant of the slow rate estimate (`tau_rate_ms`, default 1000).
    pub tau_rate_ms: f32,
    /// Starting rate estimate (`initial_rate_hz`, default target).
    pub initial_rate_hz: f32,
}

impl MetaParams {
    /// Reads the meta-plasticity keys from `r`.
    pub fn read(r: &ParamReader<'_>) -> Result<Self, ParamError> {
        let target = r.positive("target_rate_hz", 10.0)?;
        Ok(Self {
            target_rate_hz: target,
            tau_rate_ms: r.positive("tau_rate_ms", 1000.0)?,
            initial_rate_hz: r.non_negative("initial_rate_hz", target)?,
        })
    }
}

/// Trace-based pair STDP, optionally meta-plastic; see the module docs.
#[derive(Clone, Debug)]
pub struct Stdp {
    params: StdpParams,
    decay_pre: f32,
    decay_post: f32,
    pre_trace: Vec<f32>,
    post_trace: Vec<f32>,
    /// Per-post depression scale (1 without meta-plasticity).
    depression_scale: Vec<f32>,
    meta: Option<Meta>,
}

#[derive(Clone, Debug)]
struct Meta {
    params: MetaParams,
    decay: f32,
    /// Rate contributed by one spike in one step, in Hz.
    spike_hz: f32,
    rate: Vec<f32>,
}

impl Stdp {
    /// Plain STDP between `pre` and `post` neurons.
    pub fn new(pre: usize, post: usize, dt_ms: f32, params: StdpParams) -> Self {
        Self {
            decay_pre: (-dt_ms / params.tau_plus_ms).exp(),
            decay_post: (-dt_ms / params.tau_minus_ms).exp(),
            params,
            pre_trace: vec![0.0; pre],
            post_trace: vec![0.0; post],
            depression_scale: vec![1.0; post],
            meta: None,
        }
    }

    /// STDP whose depression follows each postsynaptic neuron's slow rate.
    pub fn meta(pre: usize, post: usize, dt_ms: f32, params: StdpParams, meta: MetaParams) -> Self {
        let mut stdp = Self::new(pre, post, dt_ms, params);
        let scale = meta.initial_rate_hz / meta.target_rate_hz;
        stdp.depression_scale.fill(scale);
        stdp.meta = Some(Meta {
            decay: (-dt_ms / meta.tau_rate_ms).exp(),
            spike_hz: 1000.0 / dt_ms,
            rate: vec![meta.initial_rate_hz; post],
            params: meta,
        });
        stdp
    }

    /// Sets every pre- and postsynaptic trace to zero, as a long pause would: the
    /// next presentation of a sample pairs only its own spikes (in place of the
    /// rest period between samples of Diehl & Cook 2015).
    pub fn reset_traces(&mut self) {
        self.pre_trace.fill(0.0);
        self.post_trace.fill(0.0);
    }

    /// Slow postsynaptic rate estimates in Hz (meta-plastic rules only).
    pub fn rate_estimates(&self) -> Option<&[f32]> {
        self.meta.as_ref().map(|m| &m.rate[..])
    }

    /// The current depression scale per postsynaptic neuron.
    pub fn depression_scale(&self) -> &[f32] {
        &self.depression_scale
    }

    fn update_meta(&mut self, post: &SpikeWords) {
        let Some(m) = &mut self.meta else { return };
        for (k, (r, s)) in m
            .rate
            .iter_mut()
            .zip(self.depression_scale.iter_mut())
            .enumerate()
        {
            let spike = if spikes::get(post, k) {
                m.spike_hz
            } else {
                0.0
            };
            *r = *r * m.decay + (1.0 - m.decay) * spike;
            *s = *r / m.params.target_rate_hz;
        }
    }
}

impl PlasticityRule for Stdp {
    /// # Panics
    /// If the weights or spike words do not match the `pre`/`post` sizes of the rule.
    fn update(&mut self, pre: &SpikeWords, post: &SpikeWords, weights: WeightsMut<'_>) {
        let (n_pre, n_post) = (self.pre_trace.len(), self.post_trace.len());
        assert_eq!(
            pre.len(),
            spikes::spike_words_len(n_pre),
            "presynaptic spike words"
        );
        assert_eq!(
            post.len(),
            spikes::spike_words_len(n_post),
            "postsynaptic spike words"
        );
        for x in &mut self.pre_trace {
            *x *= self.decay_pre;
        }
        for y in &mut self.post_trace {
            *y *= self.decay_post;
        }
        let p = &self.params;
        let (lo, hi) = (p.w_min, p.w_max);
        let multiplicative = p.mode == StdpMode::Multiplicative;
        let depress = |w: f32, y: f32, scale: f32| {
            let f = if multiplicative { w - lo } else { 1.0 };
            (w - p.a_minus * scale * y * f).clamp(lo, hi)
        };
        let potentiate = |w: f32, x: f32| {
            let f = if multiplicative { hi - w } else { 1.0 };
            (w + p.a_plus * x * f).clamp(lo, hi)
        };
        let any_post = post.iter().any(|&w| w != 0);
        match weights {
            WeightsMut::Dense { rows, cols, values } => {
                assert_eq!((rows, cols), (n_pre, n_post), "dense weight shape");
                for j in spikes::ones(pre).take_while(|&j| j < n_pre) {
                    self.pre_trace[j] += 1.0;
                    let row = &mut values[j * cols..(j + 1) * cols];
                    for (k, w) in row.iter_mut().enumerate() {
                        *w = depress(*w, self.post_trace[k], self.depression_scale[k]);
                    }
                }
                if any_post {
                    for k in spikes::ones(post).take_while(|&k| k < n_post) {
                        self.post_trace[k] += 1.0;
                        for (j, &x) in self.pre_trace.iter().enumerate() {
                            let w = &mut values[j * cols + k];
                            *w = potentiate(*w, x);
                        }
                    }
                }
            }
            WeightsMut::Csr {
                rows,
                cols,
                indptr,
                indices,
                values,
            } => {
                assert_eq!((rows, cols), (n_pre, n_post), "CSR weight shape");
                for j in spikes::ones(pre).take_while(|&j| j < n_pre) {
                    self.pre_trace[j] += 1.0;
                    let range = indptr[j] as usize..indptr[j + 1] as usize;
                    for (&k, w) in indices[range.clone()].iter().zip(&mut values[range]) {
                        let k = k as usize;
                        *w = depress(*w, self.post_trace[k], self.depression_scale[k]);
                    }
                }
                if any_post {
                    for k in spikes::ones(post).take_while(|&k| k < n_post) {
                        self.post_trace[k] += 1.0;
                    }
                    // Walk every row once, updating the entries of spiking columns.
                    for (j, &x) in self.pre_trace.iter().enumerate() {
                        if x == 0.0 {
                            continue;
                        }
                        let range = indptr[j] as usize..indptr[j + 1] as usize;
                        for (&k, w) in indices[range.clone()].iter().zip(&mut values[range]) {
                            if spikes::get(post, k as usize) {
                                *w = potentiate(*w, x);
                            }
                        }
                    }
                }
            }
        }
        self.update_meta(post);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_bit(on: bool) -> [u64; 1] {
        [u64::from(on)]
    }

    /// Δw for a single pair: pre at step `t_pre`, post at step `t_post`.
    fn pair(params: &StdpParams, t_pre: usize, t_post: usize, w0: f32, dense: bool) -> f32 {
        let dt = 0.1;
        let mut rule = Stdp::new(1, 1, dt, params.clone());
        let mut values = vec![w0];
        let (indptr, indices) = ([0u32, 1], [0u32]);
        for t in 0..=t_pre.max(t_post) + 1 {
            let (pre, post) = (one_bit(t == t_pre), one_bit(t == t_post));
            let weights = if dense {
                WeightsMut::Dense {
                    rows: 1,
                    cols: 1,
                    values: &mut values,
                }
            } else {
                WeightsMut::Csr {
                    rows: 1,
                    cols: 1,
                    indptr: &indptr,
                    indices: &indices,
                    values: &mut values,
                }
            };
            rule.update(&pre, &post, weights);
        }
        values[0] - w0
    }

    #[test]
    fn weight_change_follows_the_exponential_window() {
        let p = StdpParams {
            a_plus: 0.01,
            a_minus: 0.012,
            tau_plus_ms: 16.8,
            tau_minus_ms: 33.7,
            w_min: 0.0,
            w_max: 1.0,
            mode: StdpMode::Additive,
        };
        for dense in [true, false] {
            for delta_steps in [-400i64, -100, -7, -1, 0, 1, 5, 50, 200, 600] {
                let (t_pre, t_post) = if delta_steps >= 0 {
                    (10, 10 + delta_steps as usize)
                } else {
                    (10 + (-delta_steps) as usize, 10)
                };
                let dt_ms = 0.1 * delta_steps as f64;
                let expected = if dt_ms >= 0.0 {
                    0.01 * (-dt_ms / 16.8).exp()
                } else {
                    -0.012 * (dt_ms / 33.7).exp()
                };
                let got = f64::from(pair(&p, t_pre, t_post, 0.5, dense));
                assert!(
                    (got - expected).abs() < 1e-6 + 1e-4 * expected.abs(),
                    "Δt={dt_ms} ms dense={dense}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn multiplicative_mode_scales_with_distance_to_the_bounds_and_clips() {
        let p = StdpParams {
            mode: StdpMode::Multiplicative,
            a_plus: 0.5,
            a_minus: 0.5,
            ..StdpParams::from_params(&Params::new()).unwrap()
        };
        let up = pair(&p, 0, 0, 0.8, true);
        assert!((up - 0.5 * 0.2).abs() < 1e-6, "{up}");
        let big = StdpParams {
            a_plus: 10.0,
            ..p.clone()
        };
        let clipped = pair(
            &StdpParams {
                mode: StdpMode::Additive,
                ..big
            },
            0,
            0,
            0.8,
            true,
        );
        assert!((clipped - 0.2).abs() < 1e-6, "clipped at w_max: {clipped}");
    }

    #[test]
    fn meta_rate_estimate_tracks_the_post_rate_and_scales_depression() {
        let dt = 1.0;
        let meta = MetaParams {
            target_rate_hz: 10.0,
            tau_rate_ms: 200.0,
            initial_rate_hz: 10.0,
        };
        let mut rule = Stdp::meta(
            1,
            1,
            dt,
            StdpParams::from_params(&Params::new()).unwrap(),
            meta,
        );
        let mut w = vec![0.5f32];
        // Post fires every 25 ms (40 Hz) for 3 s.
        for t in 0..3000 {
            rule.update(
                &[0],
                &one_bit(t % 25 == 0),
                WeightsMut::Dense {
                    rows: 1,
                    cols: 1,
                    values: &mut w,
                },
            );
        }
        let r = rule.rate_estimates().unwrap()[0];
        assert!(
            (r - 40.0).abs() < 40.0 * 0.15,
            "rate estimate {r} Hz vs 40 Hz"
        );
        assert!((rule.depression_scale()[0] - r / 10.0).abs() < 1e-6);
    }

    #[test]
    fn reset_traces_forgets_earlier_spikes() {
        // pre at t = 0, post at t = 1: potentiation, unless the traces were reset between.
        let run = |reset: bool| {
            let p = StdpParams::from_params(&Params::new()).unwrap();
            let mut rule = Stdp::new(1, 1, 1.0, p);
            let mut w = vec![0.5f32];
            for (t, (pre, post)) in [(true, false), (false, true)].into_iter().enumerate() {
                if reset && t == 1 {
                    rule.reset_traces();
                }
                let dense = WeightsMut::Dense {
                    rows: 1,
                    cols: 1,
                    values: &mut w,
                };
                rule.update(&one_bit(pre), &one_bit(post), dense);
            }
            w[0]
        };
        assert!(run(false) > 0.5);
        assert_eq!(run(true), 0.5);
    }

    #[test]
    fn bounds_must_be_ordered() {
        let mut m = Params::new();
        m.insert("w_min".into(), serde_json::json!(1.0));
        assert_eq!(StdpParams::from_params(&m).unwrap_err().param, "w_max");
    }
}
