//! Homeostasis: adaptive thresholds and multiplicative synaptic scaling.
//!
//! Two mechanisms, each switched off by setting its rate to 0:
//!
//! * **Adaptive threshold** (Diehl & Cook 2015): each postsynaptic neuron `k` has a
//!   threshold offset `θ_k` that jumps by `theta_plus` (mV) at each of its spikes and
//!   decays with `tau_theta_ms`: `θ_k ← θ_k·e^{−dt/τ_θ} + θ+·s_k`. The offsets are
//!   exposed through [`PlasticityRule::threshold_offsets`]; the layer adds them to
//!   its threshold (e.g. `LifLayer::threshold_offsets_mut` in evospike-neuron).
//! * **Synaptic scaling** (Turrigiano 1998): a slow rate estimate `r̄_k` (exponential
//!   average over `tau_rate_ms`) drives every incoming weight of `k` multiplicatively
//!   toward the target rate: `dw_jk/dt = η · w_jk · (r* − r̄_k) / r*`, applied every
//!   `scaling_interval_steps` steps with the accumulated factor, then clipped to
//!   `[w_min, w_max]`.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{PlasticityRule, SpikeWords, WeightsMut};

/// Homeostasis parameters (keys in parentheses).
#[derive(Clone, Debug, PartialEq)]
pub struct HomeostasisParams {
    /// Threshold increment per spike in mV (`theta_plus`, default 0.05; 0 = off).
    pub theta_plus: f32,
    /// Threshold decay time constant (`tau_theta_ms`, default 1e7 as in Diehl & Cook).
    pub tau_theta_ms: f32,
    /// Target rate r* (`target_rate_hz`, default 5).
    pub target_rate_hz: f32,
    /// Scaling rate η in 1/s (`eta_per_s`, default 0.5; 0 = off).
    pub eta_per_s: f32,
    /// Rate-estimate time constant (`tau_rate_ms`, default 1000).
    pub tau_rate_ms: f32,
    /// Steps between scaling updates (`scaling_interval_steps`, default 10).
    pub scaling_interval_steps: u32,
    /// Lower weight bound (`w_min`, default 0).
    pub w_min: f32,
    /// Upper weight bound (`w_max`, default +∞).
    pub w_max: f32,
}

impl HomeostasisParams {
    /// Parses the keys in the field docs, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self {
            theta_plus: r.non_negative("theta_plus", 0.05)?,
            tau_theta_ms: r.positive("tau_theta_ms", 1e7)?,
            target_rate_hz: r.positive("target_rate_hz", 5.0)?,
            eta_per_s: r.non_negative("eta_per_s", 0.5)?,
            tau_rate_ms: r.positive("tau_rate_ms", 1000.0)?,
            scaling_interval_steps: r.f32_where(
                "scaling_interval_steps",
                10.0,
                "a whole number >= 1",
                |x| x >= 1.0 && x.fract() == 0.0 && x <= 1e9,
            )? as u32,
            w_min: r.f32("w_min", 0.0)?,
            w_max: r.f32_where("w_max", f32::MAX, "finite", f32::is_finite)?,
        };
        r.finish()?;
        if p.w_min >= p.w_max {
            return Err(ParamError::new(
                "w_max",
                format!("must exceed w_min ({} >= {})", p.w_min, p.w_max),
            ));
        }
        Ok(p)
    }
}

/// Adaptive thresholds plus synaptic scaling; see the module docs.
#[derive(Clone, Debug)]
pub struct Homeostasis {
    params: HomeostasisParams,
    dt_s: f32,
    decay_theta: f32,
    decay_rate: f32,
    spike_hz: f32,
    theta: Vec<f32>,
    rate: Vec<f32>,
    factor: Vec<f32>,
    steps: u32,
}

impl Homeostasis {
    /// A rule for a projection onto `post` neurons (any number of presynaptic ones:
    /// both mechanisms act per postsynaptic neuron).
    pub fn new(post: usize, dt_ms: f32, params: HomeostasisParams) -> Self {
        Self {
            dt_s: dt_ms / 1000.0,
            decay_theta: (-dt_ms / params.tau_theta_ms).exp(),
            decay_rate: (-dt_ms / params.tau_rate_ms).exp(),
            spike_hz: 1000.0 / dt_ms,
            rate: vec![params.target_rate_hz; post],
            theta: vec![0.0; post],
            factor: vec![1.0; post],
            params,
            steps: 0,
        }
    }

    /// Slow rate estimates per postsynaptic neuron (Hz).
    pub fn rate_estimates(&self) -> &[f32] {
        &self.rate
    }

    /// The adaptive threshold offsets θ, writable (to restore a checkpoint).
    pub fn threshold_offsets_mut(&mut self) -> &mut [f32] {
        &mut self.theta
    }
}

impl PlasticityRule for Homeostasis {
    /// # Panics
    /// If `post` or the weights do not match the rule's postsynaptic size.
    fn update(&mut self, _pre: &SpikeWords, post: &SpikeWords, weights: WeightsMut<'_>) {
        let n = self.theta.len();
        assert_eq!(
            post.len(),
            spikes::spike_words_len(n),
            "postsynaptic spike words"
        );
        let p = &self.params;
        for k in 0..n {
            let s = spikes::get(post, k);
            self.theta[k] = self.theta[k] * self.decay_theta + if s { p.theta_plus } else { 0.0 };
            self.rate[k] = self.rate[k] * self.decay_rate
                + if s {
                    (1.0 - self.decay_rate) * self.spike_hz
                } else {
                    0.0
                };
        }
        if p.eta_per_s == 0.0 {
            return;
        }
        self.steps += 1;
        if self.steps < p.scaling_interval_steps {
            return;
        }
        self.steps = 0;
        let span_s = self.dt_s * p.scaling_interval_steps as f32;
        for (f, &r) in self.factor.iter_mut().zip(&self.rate) {
            *f = 1.0 + p.eta_per_s * span_s * (p.target_rate_hz - r) / p.target_rate_hz;
        }
        let (lo, hi) = (p.w_min, p.w_max);
        match weights {
            WeightsMut::Dense { cols, values, .. } => {
                assert_eq!(cols, n, "dense weight columns");
                for row in values.chunks_exact_mut(cols.max(1)) {
                    for (w, &f) in row.iter_mut().zip(&self.factor) {
                        *w = (*w * f).clamp(lo, hi);
                    }
                }
            }
            WeightsMut::Csr {
                cols,
                indices,
                values,
                ..
            } => {
                assert_eq!(cols, n, "CSR weight columns");
                for (w, &k) in values.iter_mut().zip(indices) {
                    *w = (*w * self.factor[k as usize]).clamp(lo, hi);
                }
            }
        }
    }

    fn threshold_offsets(&self) -> Option<&[f32]> {
        Some(&self.theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::{spikes, CpuBackend, DenseWeights, Projection, Target};
    use evospike_neuron::{LifLayer, LifParams, NeuronLayer};
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// One LIF neuron driven by `inputs` Bernoulli inputs at `rate_hz`, weights
    /// `w0`; returns its rate over the last `measure_s` seconds of `total_s`.
    fn driven_rate(
        params: Option<HomeostasisParams>,
        w0: f32,
        total_s: f32,
        measure_s: f32,
    ) -> f32 {
        let (inputs, in_rate_hz, dt) = (100usize, 20.0f32, 1.0f32);
        let lif = LifParams {
            t_ref_ms: 2.0,
            ..LifParams::default()
        };
        let mut layer = LifLayer::new(1, dt, lif, 0).unwrap();
        let mut proj = Projection::new(
            DenseWeights::filled(inputs, 1, w0).unwrap().into(),
            Target::Excitatory,
            0,
        )
        .unwrap();
        let mut rule = params.map(|p| Homeostasis::new(1, dt, p));
        let backend = CpuBackend::single_threaded();
        let mut rng = SmallRng::seed_from_u64(8);
        let mut pre = vec![0u64; spikes::spike_words_len(inputs)];
        let mut post = vec![0u64; 1];
        let steps = (total_s * 1000.0 / dt) as usize;
        let measure_from = steps - (measure_s * 1000.0 / dt) as usize;
        let mut count = 0;
        for t in 0..steps {
            spikes::clear(&mut pre);
            for j in 0..inputs {
                if rng.random::<f32>() < in_rate_hz * dt / 1000.0 {
                    spikes::set(&mut pre, j);
                }
            }
            let mut input = [0.0f32];
            proj.step(&backend, &pre, &mut input).unwrap();
            layer.step(&input, &mut post);
            if let Some(rule) = &mut rule {
                rule.update(&pre, &post, proj.weights_mut());
            }
            if t >= measure_from {
                count += post[0].count_ones();
            }
        }
        count as f32 / measure_s
    }

    fn scaling_only(target: f32) -> HomeostasisParams {
        HomeostasisParams {
            theta_plus: 0.0,
            tau_theta_ms: 1e7,
            target_rate_hz: target,
            eta_per_s: 0.5,
            tau_rate_ms: 1000.0,
            scaling_interval_steps: 10,
            w_min: 0.0,
            w_max: 10.0,
        }
    }

    #[test]
    fn synaptic_scaling_drives_the_rate_to_its_target() {
        let target = 10.0;
        // From too strong and from too weak weights.
        for w0 in [2.0f32, 0.3] {
            let before = driven_rate(None, w0, 20.0, 20.0);
            assert!(
                (before - target).abs() > 0.4 * target,
                "w0={w0} starts near target already: {before} Hz"
            );
            let after = driven_rate(Some(scaling_only(target)), w0, 80.0, 20.0);
            assert!(
                (after - target).abs() < 0.15 * target,
                "w0={w0}: {before} Hz -> {after} Hz, target {target}"
            );
        }
    }

    #[test]
    fn adaptive_threshold_follows_its_closed_form() {
        let p = HomeostasisParams {
            theta_plus: 0.2,
            tau_theta_ms: 50.0,
            eta_per_s: 0.0,
            ..scaling_only(5.0)
        };
        let mut rule = Homeostasis::new(2, 1.0, p);
        let mut w = vec![1.0f32; 2];
        let spike_steps = [3usize, 10, 40];
        for t in 0..100 {
            let post = [u64::from(spike_steps.contains(&t))];
            rule.update(
                &[0],
                &post,
                WeightsMut::Dense {
                    rows: 1,
                    cols: 2,
                    values: &mut w,
                },
            );
        }
        let expected: f64 = spike_steps
            .iter()
            .map(|&s| 0.2 * (-(99.0 - s as f64) / 50.0).exp())
            .sum();
        let theta = rule.threshold_offsets().unwrap();
        assert!(
            (f64::from(theta[0]) - expected).abs() < 1e-5,
            "{} vs {expected}",
            theta[0]
        );
        assert_eq!(theta[1], 0.0, "neuron 1 never spiked");
        assert_eq!(w, vec![1.0, 1.0], "scaling is off");
    }

    #[test]
    fn bad_interval_is_an_error() {
        let mut m = Params::new();
        m.insert("scaling_interval_steps".into(), serde_json::json!(2.5));
        assert_eq!(
            HomeostasisParams::from_params(&m).unwrap_err().param,
            "scaling_interval_steps"
        );
    }
}
