//! `EntangledSynchrony`: LIF neurons whose input gain follows Kuramoto phase coupling.
//!
//! The seed project called this a "quantum-inspired synchronization layer". Nothing
//! quantum happens here: it is the classical Kuramoto model of coupled phase
//! oscillators, used to gate a LIF population's input by how well each neuron's
//! phase agrees with the population rhythm.
//!
//! # Equations
//!
//! Each neuron `i` carries a phase `θ_i` with natural frequency `ω_i` (rad/s), drawn
//! from a Lorentzian (Cauchy) distribution of centre `omega` and half-width
//! `gamma`. With the layer's coupling graph `A` (all-to-all, or each pair with
//! probability `coupling_p`) and in-degree `k_i`:
//!
//! ```text
//! dθ_i/dt = ω_i + (K / k_i) Σ_j A_ij sin(θ_j − θ_i)             (Kuramoto, coupling K)
//! R e^{iψ} = (1/N) Σ_j e^{iθ_j}                                   (order parameter)
//! I_i^eff  = (1 + α cos(θ_i − ψ)) · I_i                          (phase-dependent gain)
//! ```
//!
//! All-to-all coupling uses the mean-field identity
//! `(K/N) Σ_j sin(θ_j − θ_i) = K R sin(ψ − θ_i)`, so a step costs O(N). Phases
//! advance with explicit Euler in seconds (`dt_ms / 1000`). The effective input
//! drives a [`LifLayer`] with the usual LIF parameters (see [`crate::lif`]).
//!
//! For a Lorentzian of half-width γ and N → ∞, the stationary order parameter is
//! `R = sqrt(1 − 2γ/K)` above the critical coupling `K_c = 2γ` and 0 below it
//! (Kuramoto 1975); the tests check that.

use std::f64::consts::PI;

use evospike_compute::{FixedProbability, ParamError, ParamReader, WeightInit};
use evospike_plugin_api::{NeuronLayer, SpikeWords};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::lif::{LifLayer, LifParams};

/// Phase-coupling parameters of an [`EntangledSynchronyLayer`].
#[derive(Clone, Debug, PartialEq)]
pub struct SynchronyParams {
    /// Coupling strength K in rad/s (`coupling_k`, default 20).
    pub coupling_k: f32,
    /// Probability of each coupling pair (`coupling_p`, default 1 = all-to-all).
    pub coupling_p: f32,
    /// Centre of the natural frequencies in rad/s (`omega`, default 2π·8).
    pub omega: f32,
    /// Lorentzian half-width γ of the natural frequencies in rad/s (`gamma`, default 2).
    pub gamma: f32,
    /// Gain modulation depth α in [0, 1] (`alpha`, default 0.5).
    pub alpha: f32,
    /// `random` (seeded draws, default) or `quantile` (evenly spaced quantiles of
    /// the Lorentzian: deterministic, smaller finite-N fluctuations).
    pub omega_sampling: &'static str,
}

impl Default for SynchronyParams {
    fn default() -> Self {
        Self {
            coupling_k: 20.0,
            coupling_p: 1.0,
            omega: (2.0 * PI * 8.0) as f32,
            gamma: 2.0,
            alpha: 0.5,
            omega_sampling: "random",
        }
    }
}

impl SynchronyParams {
    /// Reads the parameters named in the field docs from `r`.
    pub fn read(r: &ParamReader<'_>) -> Result<Self, ParamError> {
        let d = Self::default();
        Ok(Self {
            coupling_k: r.non_negative("coupling_k", d.coupling_k)?,
            coupling_p: r.f32_where("coupling_p", d.coupling_p, "in (0, 1]", |p| {
                p > 0.0 && p <= 1.0
            })?,
            omega: r.f32("omega", d.omega)?,
            gamma: r.non_negative("gamma", d.gamma)?,
            alpha: r.f32_where("alpha", d.alpha, "in [0, 1]", |a| (0.0..=1.0).contains(&a))?,
            omega_sampling: r.choice(
                "omega_sampling",
                d.omega_sampling,
                &["random", "quantile"],
            )?,
        })
    }
}

/// Sparse coupling graph (row i = the neurons that pull on i).
#[derive(Clone, Debug)]
struct Coupling {
    indptr: Vec<u32>,
    indices: Vec<u32>,
}

/// A LIF population with Kuramoto phases gating its input; see the module docs.
#[derive(Clone, Debug)]
pub struct EntangledSynchronyLayer {
    lif: LifLayer,
    sync: SynchronyParams,
    dt_s: f64,
    seed: u64,
    omega: Vec<f32>,
    phase: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    gated: Vec<f32>,
    coupling: Option<Coupling>,
    /// `[R, ψ]` of the last step.
    order: [f32; 2],
}

impl EntangledSynchronyLayer {
    /// Builds the layer; `seed` drives frequencies, initial phases, coupling graph and `v_init`.
    pub fn new(
        num_neurons: usize,
        dt_ms: f32,
        lif: LifParams,
        sync: SynchronyParams,
        seed: u64,
    ) -> Result<Self, ParamError> {
        let lif = LifLayer::new(num_neurons, dt_ms, lif, seed)?;
        let coupling = if sync.coupling_p < 1.0 {
            let w = FixedProbability::new(f64::from(sync.coupling_p), seed ^ 0x5EED_C0DE)
                .map_err(|e| ParamError::new("coupling_p", e.to_string()))?
                .without_autapses()
                .connect(num_neurons, num_neurons, WeightInit::Constant(1.0))
                .map_err(|e| ParamError::new("coupling_p", e.to_string()))?;
            Some(Coupling {
                indptr: w.indptr().to_vec(),
                indices: w.indices().to_vec(),
            })
        } else {
            None
        };
        let mut layer = Self {
            lif,
            dt_s: f64::from(dt_ms) / 1000.0,
            seed,
            omega: natural_frequencies(num_neurons, &sync, seed),
            sync,
            phase: vec![0.0; num_neurons],
            cos: vec![0.0; num_neurons],
            sin: vec![0.0; num_neurons],
            gated: vec![0.0; num_neurons],
            coupling,
            order: [0.0; 2],
        };
        layer.reset_phases();
        Ok(layer)
    }

    /// `(R, ψ)` after the last step.
    pub fn order_parameter(&self) -> (f32, f32) {
        (self.order[0], self.order[1])
    }

    /// Phases θ_i in [−π, π).
    pub fn phases(&self) -> &[f32] {
        &self.phase
    }

    /// The LIF population inside.
    pub fn lif(&self) -> &LifLayer {
        &self.lif
    }

    fn reset_phases(&mut self) {
        let mut rng = SmallRng::seed_from_u64(self.seed.wrapping_add(1));
        for p in &mut self.phase {
            *p = rng.random_range(-PI..PI) as f32;
        }
        self.refresh_order();
    }

    /// Recomputes cos/sin of every phase and the order parameter.
    fn refresh_order(&mut self) {
        let (mut sc, mut ss) = (0.0f64, 0.0f64);
        for ((c, s), &p) in self
            .cos
            .iter_mut()
            .zip(self.sin.iter_mut())
            .zip(&self.phase)
        {
            let (sp, cp) = p.sin_cos();
            *c = cp;
            *s = sp;
            sc += f64::from(cp);
            ss += f64::from(sp);
        }
        let n = self.phase.len().max(1) as f64;
        let (re, im) = (sc / n, ss / n);
        self.order = [re.hypot(im) as f32, im.atan2(re) as f32];
    }

    /// Advances the phases by one Euler step.
    fn step_phases(&mut self) {
        let k = f64::from(self.sync.coupling_k);
        let dt = self.dt_s;
        let [r, psi] = self.order.map(f64::from);
        match &self.coupling {
            None => {
                for (p, &w) in self.phase.iter_mut().zip(&self.omega) {
                    let theta = f64::from(*p);
                    let dtheta = f64::from(w) + k * r * (psi - theta).sin();
                    *p = wrap(theta + dt * dtheta);
                }
            }
            Some(c) => {
                for i in 0..self.phase.len() {
                    let (lo, hi) = (c.indptr[i] as usize, c.indptr[i + 1] as usize);
                    let (mut sc, mut ss) = (0.0f64, 0.0f64);
                    for &j in &c.indices[lo..hi] {
                        sc += f64::from(self.cos[j as usize]);
                        ss += f64::from(self.sin[j as usize]);
                    }
                    // Σ_j sin(θ_j − θ_i) = cos θ_i Σ sin θ_j − sin θ_i Σ cos θ_j
                    let pull = if hi > lo {
                        (f64::from(self.cos[i]) * ss - f64::from(self.sin[i]) * sc)
                            / (hi - lo) as f64
                    } else {
                        0.0
                    };
                    let theta = f64::from(self.phase[i]);
                    self.phase[i] = wrap(theta + dt * (f64::from(self.omega[i]) + k * pull));
                }
            }
        }
        self.refresh_order();
    }
}

fn wrap(theta: f64) -> f32 {
    ((theta + PI).rem_euclid(2.0 * PI) - PI) as f32
}

/// Lorentzian natural frequencies: seeded draws or evenly spaced quantiles.
fn natural_frequencies(n: usize, p: &SynchronyParams, seed: u64) -> Vec<f32> {
    let (w0, g) = (f64::from(p.omega), f64::from(p.gamma));
    let quantile = |u: f64| w0 + g * (PI * (u - 0.5)).tan();
    if p.omega_sampling == "quantile" {
        (0..n)
            .map(|i| quantile((i as f64 + 0.5) / n as f64) as f32)
            .collect()
    } else {
        let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(2));
        (0..n)
            .map(|_| {
                // Open interval so tan stays finite.
                let u: f64 = rng.random_range(1e-12..1.0 - 1e-12);
                quantile(u) as f32
            })
            .collect()
    }
}

impl NeuronLayer for EntangledSynchronyLayer {
    fn len(&self) -> usize {
        self.phase.len()
    }

    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        assert_eq!(input.len(), self.phase.len(), "input length");
        let alpha = self.sync.alpha;
        let (sin_psi, cos_psi) = self.order[1].sin_cos();
        let phases = self.cos.iter().zip(&self.sin);
        for ((g, &x), (&c, &s)) in self.gated.iter_mut().zip(input).zip(phases) {
            // cos(θ − ψ) = cos θ cos ψ + sin θ sin ψ
            *g = (1.0 + alpha * (c * cos_psi + s * sin_psi)) * x;
        }
        self.lif.step(&self.gated, spikes);
        self.step_phases();
    }

    fn reset(&mut self) {
        self.lif.reset();
        self.reset_phases();
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        match name {
            "phase" => Some(&self.phase),
            "omega" => Some(&self.omega),
            "order" => Some(&self.order),
            _ => self.lif.state(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::spikes;

    /// Mean R over the last `measure_steps` of `settle_steps + measure_steps` steps of 2 ms.
    fn settle(
        n: usize,
        k: f32,
        gamma: f32,
        coupling_p: f32,
        sampling: &'static str,
        (settle_steps, measure_steps): (usize, usize),
    ) -> f32 {
        let sync = SynchronyParams {
            coupling_k: k,
            coupling_p,
            gamma,
            omega: 30.0,
            alpha: 0.5,
            omega_sampling: sampling,
        };
        let dt_ms = 2.0;
        let mut layer =
            EntangledSynchronyLayer::new(n, dt_ms, LifParams::default(), sync, 11).unwrap();
        let input = vec![0.0; n];
        let mut s = vec![0u64; spikes::spike_words_len(n)];
        let mut sum = 0.0;
        for t in 0..settle_steps + measure_steps {
            layer.step(&input, &mut s);
            if t >= settle_steps {
                sum += layer.order_parameter().0;
            }
        }
        sum / measure_steps as f32
    }

    #[test]
    fn lorentzian_kuramoto_reaches_the_predicted_order_parameter() {
        let gamma = 5.0f32;
        for k in [20.0f32, 40.0] {
            let predicted = (1.0 - 2.0 * gamma / k).sqrt();
            // 3 s to settle, then R averaged over 1 s.
            let r = settle(3000, k, gamma, 1.0, "random", (1500, 500));
            assert!((r - predicted).abs() < 0.05, "K={k}: R={r} vs {predicted}");
        }
    }

    #[test]
    fn below_critical_coupling_stays_incoherent() {
        let r = settle(2000, 6.0, 5.0, 1.0, "quantile", (1000, 500));
        assert!(r < 0.1, "R={r} below K_c");
    }

    #[test]
    fn sparse_coupling_also_synchronises() {
        // With 10% random coupling the network behaves close to mean field.
        let r = settle(300, 40.0, 2.0, 0.1, "quantile", (750, 250));
        assert!(r > 0.8, "R={r}");
    }

    #[test]
    fn input_gain_follows_phase_agreement() {
        let sync = SynchronyParams {
            alpha: 1.0,
            coupling_k: 0.0,
            ..SynchronyParams::default()
        };
        let mut layer =
            EntangledSynchronyLayer::new(64, 0.1, LifParams::default(), sync, 3).unwrap();
        let psi = layer.order_parameter().1;
        let phases = layer.phases().to_vec();
        let mut s = vec![0u64; 1];
        layer.step(&[1.0; 64], &mut s);
        // Delta synapses: v − v_rest equals the gated input after one step.
        for (i, (&v, &th)) in layer.lif().v().iter().zip(&phases).enumerate() {
            let expected = 1.0 + (th - psi).cos();
            assert!(
                (v + 65.0 - expected).abs() < 1e-4,
                "neuron {i}: {} vs {expected}",
                v + 65.0
            );
        }
    }

    #[test]
    fn bad_alpha_is_an_error() {
        let mut m = evospike_compute::Params::new();
        m.insert("alpha".into(), serde_json::json!(2.0));
        let r = ParamReader::new(&m);
        assert_eq!(SynchronyParams::read(&r).unwrap_err().param, "alpha");
    }
}
