//! Leaky integrate-and-fire neurons with exact exponential integration.
//!
//! # Model
//!
//! ```text
//! τ_m dv/dt  = −(v − v_rest) + R·I_bias + g_e + g_i        (mV)
//! τ_e dg_e/dt = −g_e,   τ_i dg_i/dt = −g_i                 (current-based synapses, mV)
//! v ≥ v_threshold + θ_k  →  spike, v ← v_reset, clamp v for t_ref
//! ```
//!
//! Synaptic input arriving in a step is added to `g_e` (excitatory) or `g_i`
//! (inhibitory). Between steps the linear system is solved exactly (no Euler
//! error): with `v_∞ = v_rest + R·I_bias`,
//!
//! ```text
//! v(t+dt)   = v_∞ + (v − v_∞)·e^{−dt/τ_m} + P_e·g_e + P_i·g_i
//! P_x       = τ_x/(τ_x − τ_m) · (e^{−dt/τ_x} − e^{−dt/τ_m})     (τ_x ≠ τ_m)
//!           = dt/τ_m · e^{−dt/τ_m}                               (τ_x = τ_m)
//! g_x(t+dt) = g_x·e^{−dt/τ_x}
//! ```
//!
//! A synaptic time constant of 0 means delta synapses: the input is a voltage jump
//! (`P = 1`, nothing carried over). This is the Vogels–Abbott CUBA model when
//! `τ_e = 5 ms`, `τ_i = 10 ms`. While refractory, `v` stays at `v_reset` and the
//! synaptic variables keep decaying (as in Brian2's `(unless refractory)`).

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{NeuronLayer, SpikeWords};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Parameters of a [`LifLayer`]. Voltages in mV, times in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct LifParams {
    /// Membrane time constant τ_m (`tau_ms`, default 20).
    pub tau_ms: f32,
    /// Resting potential (`v_rest`, default −65).
    pub v_rest: f32,
    /// Reset potential (`v_reset`, default −65).
    pub v_reset: f32,
    /// Firing threshold (`v_threshold`, default −50).
    pub v_threshold: f32,
    /// Refractory period (`t_ref_ms`, default 2).
    pub t_ref_ms: f32,
    /// Membrane resistance in MΩ (`resistance_mohm`, default 1).
    pub resistance_mohm: f32,
    /// Constant input current in nA (`i_bias_na`, default 0); R·I is in mV.
    pub i_bias_na: f32,
    /// Excitatory synaptic time constant (`tau_syn_e_ms`, default 0 = delta synapses).
    pub tau_syn_e_ms: f32,
    /// Inhibitory synaptic time constant (`tau_syn_i_ms`, default 0 = delta synapses).
    pub tau_syn_i_ms: f32,
    /// Initial membrane potential: `v_init` = `[low, high]` draws uniformly
    /// (seeded); absent means `v_rest`.
    pub v_init: Option<(f32, f32)>,
}

impl Default for LifParams {
    fn default() -> Self {
        Self {
            tau_ms: 20.0,
            v_rest: -65.0,
            v_reset: -65.0,
            v_threshold: -50.0,
            t_ref_ms: 2.0,
            resistance_mohm: 1.0,
            i_bias_na: 0.0,
            tau_syn_e_ms: 0.0,
            tau_syn_i_ms: 0.0,
            v_init: None,
        }
    }
}

impl LifParams {
    /// Reads the parameters named in the field docs from `r` (others stay unread).
    pub fn read(r: &ParamReader<'_>) -> Result<Self, ParamError> {
        let d = Self::default();
        let p = Self {
            tau_ms: r.positive("tau_ms", d.tau_ms)?,
            v_rest: r.f32("v_rest", d.v_rest)?,
            v_reset: r.f32("v_reset", d.v_reset)?,
            v_threshold: r.f32("v_threshold", d.v_threshold)?,
            t_ref_ms: r.non_negative("t_ref_ms", d.t_ref_ms)?,
            resistance_mohm: r.non_negative("resistance_mohm", d.resistance_mohm)?,
            i_bias_na: r.f32("i_bias_na", d.i_bias_na)?,
            tau_syn_e_ms: r.non_negative("tau_syn_e_ms", d.tau_syn_e_ms)?,
            tau_syn_i_ms: r.non_negative("tau_syn_i_ms", d.tau_syn_i_ms)?,
            v_init: r.range("v_init")?,
        };
        p.validate()?;
        Ok(p)
    }

    /// Parses a whole parameter map, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let p = Self::read(&r)?;
        r.finish()?;
        Ok(p)
    }

    /// Checks relations between fields.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.v_reset >= self.v_threshold {
            return Err(ParamError::new(
                "v_reset",
                format!(
                    "must be below v_threshold ({} >= {})",
                    self.v_reset, self.v_threshold
                ),
            ));
        }
        if self.tau_ms <= 0.0 || !self.tau_ms.is_finite() {
            return Err(ParamError::new(
                "tau_ms",
                format!("must be > 0, got {}", self.tau_ms),
            ));
        }
        Ok(())
    }
}

/// The membrane decay per step, `e^{−dt/τ}`, computed in `f64` and rounded once:
/// every model and trainer that must step the same numbers calls this.
pub fn membrane_decay(dt_ms: f32, tau_ms: f32) -> f32 {
    (-f64::from(dt_ms) / f64::from(tau_ms)).exp() as f32
}

/// Per-step constants derived from the parameters and dt.
#[derive(Clone, Copy, Debug)]
struct Propagators {
    decay_m: f32,
    decay_e: f32,
    decay_i: f32,
    p_e: f32,
    p_i: f32,
    v_inf: f32,
    ref_steps: f32,
}

impl Propagators {
    fn new(p: &LifParams, dt_ms: f32) -> Self {
        let dt = f64::from(dt_ms);
        let tau_m = f64::from(p.tau_ms);
        let decay_m = (-dt / tau_m).exp();
        let syn = |tau_x: f32| -> (f32, f32) {
            let tau_x = f64::from(tau_x);
            if tau_x == 0.0 {
                return (0.0, 1.0);
            }
            let decay_x = (-dt / tau_x).exp();
            let p = if (tau_x - tau_m).abs() < 1e-9 * tau_m {
                dt / tau_m * decay_m
            } else {
                tau_x / (tau_x - tau_m) * (decay_x - decay_m)
            };
            (decay_x as f32, p as f32)
        };
        let (decay_e, p_e) = syn(p.tau_syn_e_ms);
        let (decay_i, p_i) = syn(p.tau_syn_i_ms);
        Self {
            decay_m: membrane_decay(dt_ms, p.tau_ms),
            decay_e,
            decay_i,
            p_e,
            p_i,
            v_inf: p.v_rest + p.resistance_mohm * p.i_bias_na,
            ref_steps: (f64::from(p.t_ref_ms) / dt).round() as f32,
        }
    }
}

/// A population of LIF neurons; see the module docs for the equations.
#[derive(Clone, Debug)]
pub struct LifLayer {
    params: LifParams,
    dt_ms: f32,
    seed: u64,
    prop: Propagators,
    v: Vec<f32>,
    g_e: Vec<f32>,
    g_i: Vec<f32>,
    /// Steps of refractoriness left (whole numbers, stored as f32 so the update
    /// vectorises in one lane width).
    refractory: Vec<f32>,
    theta: Vec<f32>,
    /// Whether `theta` may hold non-zero offsets (skips reading it when not).
    theta_used: bool,
}

impl LifLayer {
    /// `num_neurons` neurons advancing in steps of `dt_ms`; `seed` drives `v_init`.
    pub fn new(
        num_neurons: usize,
        dt_ms: f32,
        params: LifParams,
        seed: u64,
    ) -> Result<Self, ParamError> {
        params.validate()?;
        if !(dt_ms > 0.0 && dt_ms.is_finite()) {
            return Err(ParamError::new(
                "dt_ms",
                format!("must be > 0, got {dt_ms}"),
            ));
        }
        let mut layer = Self {
            prop: Propagators::new(&params, dt_ms),
            params,
            dt_ms,
            seed,
            v: vec![0.0; num_neurons],
            g_e: vec![0.0; num_neurons],
            g_i: vec![0.0; num_neurons],
            refractory: vec![0.0; num_neurons],
            theta: vec![0.0; num_neurons],
            theta_used: false,
        };
        layer.reset();
        Ok(layer)
    }

    /// The parameters.
    pub fn params(&self) -> &LifParams {
        &self.params
    }

    /// Time step in ms.
    pub fn dt_ms(&self) -> f32 {
        self.dt_ms
    }

    /// Membrane potentials (mV).
    pub fn v(&self) -> &[f32] {
        &self.v
    }

    /// Membrane potentials, writable (e.g. to set an initial condition).
    pub fn v_mut(&mut self) -> &mut [f32] {
        &mut self.v
    }

    /// Per-neuron threshold offsets θ_k (mV) added to `v_threshold`, writable
    /// (adaptive thresholds, e.g. from the Homeostasis rule).
    pub fn threshold_offsets_mut(&mut self) -> &mut [f32] {
        self.theta_used = true;
        &mut self.theta
    }

    /// One step with excitatory and inhibitory inputs kept apart: `exc` is added to
    /// `g_e`, `inh` to `g_i` (both in mV; `inh` is normally ≤ 0).
    ///
    /// # Panics
    /// If `exc`, `inh` are not `len()` long or `spikes` is not `ceil(len/64)` words.
    pub fn step_split(&mut self, exc: &[f32], inh: &[f32], spikes: &mut SpikeWords) {
        let n = self.v.len();
        assert_eq!(exc.len(), n, "excitatory input length");
        assert_eq!(inh.len(), n, "inhibitory input length");
        self.advance::<SPLIT>(exc, inh, spikes);
    }

    /// The synaptic variables `(g_e, g_i)`, for projections to add their input into
    /// directly (as Brian2's `on_pre='ge += w'` does); then call
    /// [`LifLayer::step_after_inputs`]. This saves the separate input buffers and
    /// their clearing on every step.
    pub fn inputs_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.g_e, &mut self.g_i)
    }

    /// One step whose input was already added through [`LifLayer::inputs_mut`].
    ///
    /// # Panics
    /// If `spikes` is not `ceil(len/64)` words.
    pub fn step_after_inputs(&mut self, spikes: &mut SpikeWords) {
        self.advance::<APPLIED>(&[], &[], spikes);
    }

    /// The state update shared by all entry points; `MODE` says where input comes from.
    fn advance<const MODE: u8>(&mut self, exc: &[f32], inh: &[f32], spikes: &mut SpikeWords) {
        let n = self.v.len();
        assert_eq!(
            spikes.len(),
            spikes::spike_words_len(n),
            "spike words length"
        );
        let state = State {
            v: &mut self.v,
            g_e: &mut self.g_e,
            g_i: &mut self.g_i,
            refractory: &mut self.refractory,
            theta: &self.theta,
        };
        let consts = Consts {
            prop: self.prop,
            v_reset: self.params.v_reset,
            v_threshold: self.params.v_threshold,
        };
        if self.theta_used {
            update::<MODE, true>(&consts, state, exc, inh, spikes);
        } else {
            update::<MODE, false>(&consts, state, exc, inh, spikes);
        }
    }
}

/// Input mode of [`update`]: none (already in `g_e`/`g_i`).
const APPLIED: u8 = 0;
/// Input mode of [`update`]: separate excitatory and inhibitory buffers.
const SPLIT: u8 = 1;
/// Input mode of [`update`]: one buffer, its sign picks the synapse.
const SIGNED: u8 = 2;

/// The neuron arrays one update touches.
struct State<'a> {
    v: &'a mut [f32],
    g_e: &'a mut [f32],
    g_i: &'a mut [f32],
    refractory: &'a mut [f32],
    theta: &'a [f32],
}

/// What stays fixed during an update.
struct Consts {
    prop: Propagators,
    v_reset: f32,
    v_threshold: f32,
}

/// Works in blocks of 64 neurons (one spike word): a branch-free pass over the
/// block that the compiler vectorises, then packing the block's spike flags.
/// Compiled for AVX-512, AVX2 and baseline x86-64 and picked at run time
/// (no fused multiply-add, so results do not depend on the CPU).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2", "x86_64+avx2"))]
fn update<const MODE: u8, const THETA: bool>(
    c: &Consts,
    s: State<'_>,
    exc: &[f32],
    inh: &[f32],
    spikes: &mut SpikeWords,
) {
    let Propagators {
        decay_m,
        decay_e,
        decay_i,
        p_e,
        p_i,
        v_inf,
        ref_steps,
    } = c.prop;
    let (v_reset, v_th) = (c.v_reset, c.v_threshold);
    let n = s.v.len();
    let mut flags = [0u8; 64];
    for (w, word) in spikes.iter_mut().enumerate() {
        let (start, end) = (w * 64, ((w + 1) * 64).min(n));
        let len = end - start;
        let v = &mut s.v[start..end];
        let g_e = &mut s.g_e[start..end];
        let g_i = &mut s.g_i[start..end];
        let refr = &mut s.refractory[start..end];
        let theta = &s.theta[start..end];
        let (exc, inh) = match MODE {
            APPLIED => (&[][..], &[][..]),
            SIGNED => (&exc[start..end], &exc[start..end]),
            _ => (&exc[start..end], &inh[start..end]),
        };
        let flags = &mut flags[..len];
        for k in 0..len {
            let (x_e, x_i) = match MODE {
                APPLIED => (0.0, 0.0),
                SIGNED => (exc[k].max(0.0), exc[k].min(0.0)),
                _ => (exc[k], inh[k]),
            };
            let ge = g_e[k] + x_e;
            let gi = g_i[k] + x_i;
            let integrated = v_inf + (v[k] - v_inf) * decay_m + p_e * ge + p_i * gi;
            let r = refr[k];
            let v_new = if r > 0.0 { v[k] } else { integrated };
            g_e[k] = ge * decay_e;
            g_i[k] = gi * decay_i;
            let threshold = if THETA { v_th + theta[k] } else { v_th };
            let fired = v_new >= threshold;
            v[k] = if fired { v_reset } else { v_new };
            refr[k] = if fired { ref_steps } else { (r - 1.0).max(0.0) };
            flags[k] = u8::from(fired);
        }
        *word = pack_flags(flags);
    }
}

/// Packs up to 64 flags (each 0 or 1) into a word, bit `k` = `flags[k]`.
#[inline(always)]
fn pack_flags(flags: &[u8]) -> u64 {
    let mut word = 0u64;
    let mut chunks = flags.chunks_exact(8);
    for (g, chunk) in chunks.by_ref().enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        // Byte i (0 or 1) lands on bit 56 + i; no two partial products overlap, so
        // there are no carries (the classic multiply-gather of byte flags).
        let gathered = u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        word |= gathered << (8 * g);
    }
    let done = flags.len() - chunks.remainder().len();
    for (k, &f) in chunks.remainder().iter().enumerate() {
        word |= u64::from(f) << (done + k);
    }
    word
}

impl NeuronLayer for LifLayer {
    fn len(&self) -> usize {
        self.v.len()
    }

    /// Positive input goes to `g_e`, negative to `g_i`; use [`LifLayer::step_split`]
    /// to keep simultaneous excitation and inhibition apart.
    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        assert_eq!(input.len(), self.v.len(), "input length");
        self.advance::<SIGNED>(input, input, spikes);
    }

    fn reset(&mut self) {
        match self.params.v_init {
            None => self.v.fill(self.params.v_rest),
            Some((lo, hi)) => {
                let mut rng = SmallRng::seed_from_u64(self.seed);
                for v in &mut self.v {
                    *v = if hi > lo {
                        rng.random_range(lo..hi)
                    } else {
                        lo
                    };
                }
            }
        }
        self.g_e.fill(0.0);
        self.g_i.fill(0.0);
        self.refractory.fill(0.0);
        self.theta.fill(0.0);
        self.theta_used = false;
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        match name {
            "v" => Some(&self.v),
            "g_e" => Some(&self.g_e),
            "g_i" => Some(&self.g_i),
            "theta" => Some(&self.theta),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<u64> {
        vec![0; spikes::spike_words_len(n)]
    }

    /// Spike steps of one neuron driven by constant current for `steps` steps.
    fn spike_steps(p: LifParams, dt: f32, steps: usize) -> Vec<usize> {
        let mut layer = LifLayer::new(1, dt, p, 0).unwrap();
        let mut s = words(1);
        (0..steps)
            .filter(|_| {
                layer.step(&[0.0], &mut s);
                s[0] & 1 == 1
            })
            .collect()
    }

    #[test]
    fn firing_rate_under_constant_current_matches_the_closed_form() {
        // f = 1 / (t_ref + τ ln(RI / (RI − (V_th − V_rest)))), V_reset = V_rest.
        for (r, i, t_ref, tau) in [
            (10.0f32, 2.0f32, 2.0f32, 20.0f32),
            (5.0, 4.0, 5.0, 10.0),
            (1.0, 16.0, 1.0, 30.0),
        ] {
            let p = LifParams {
                tau_ms: tau,
                resistance_mohm: r,
                i_bias_na: i,
                t_ref_ms: t_ref,
                ..LifParams::default()
            };
            let ri = f64::from(r * i);
            let gap = f64::from(p.v_threshold - p.v_rest);
            let expected_hz = 1000.0 / (f64::from(t_ref) + f64::from(tau) * (ri / (ri - gap)).ln());
            let dt = 0.01;
            let steps = spike_steps(p, dt, 200_000);
            assert!(steps.len() > 10, "too few spikes: {}", steps.len());
            let span_ms = (steps[steps.len() - 1] - steps[0]) as f64 * f64::from(dt);
            let rate_hz = (steps.len() - 1) as f64 / span_ms * 1000.0;
            let rel = (rate_hz - expected_hz).abs() / expected_hz;
            assert!(
                rel < 0.01,
                "R={r} I={i}: {rate_hz:.3} Hz vs {expected_hz:.3} Hz ({rel:.4})"
            );
        }
    }

    #[test]
    fn below_rheobase_there_are_no_spikes() {
        let p = LifParams {
            resistance_mohm: 10.0,
            i_bias_na: 1.4, // RI = 14 mV < 15 mV gap
            ..LifParams::default()
        };
        assert!(spike_steps(p, 0.1, 20_000).is_empty());
    }

    #[test]
    fn exponential_synapse_matches_the_analytic_psp() {
        // One input of w at t=0 into g_e with τ_e: v − v_rest = w τ_e/(τ_e − τ_m)(e^{−t/τ_e} − e^{−t/τ_m}).
        let p = LifParams {
            tau_syn_e_ms: 5.0,
            ..LifParams::default()
        };
        let (dt, w) = (0.1f32, 2.0f32);
        let mut layer = LifLayer::new(1, dt, p.clone(), 0).unwrap();
        let mut s = words(1);
        layer.step(&[w], &mut s);
        for k in 1..300 {
            let t = f64::from(dt) * k as f64;
            let expected =
                f64::from(w) * 5.0 / (5.0 - 20.0) * ((-t / 5.0).exp() - (-t / 20.0).exp());
            let got = f64::from(layer.v()[0] - p.v_rest);
            assert!((got - expected).abs() < 1e-4, "t={t}: {got} vs {expected}");
            layer.step(&[0.0], &mut s);
        }
    }

    #[test]
    fn refractory_clamps_and_threshold_offsets_raise_the_bar() {
        let p = LifParams {
            resistance_mohm: 10.0,
            i_bias_na: 3.0,
            t_ref_ms: 3.0,
            ..LifParams::default()
        };
        let mut layer = LifLayer::new(2, 1.0, p, 0).unwrap();
        layer.threshold_offsets_mut()[1] = 100.0;
        let mut s = words(2);
        let mut first = None;
        for t in 0..200 {
            layer.step(&[0.0, 0.0], &mut s);
            assert_eq!(s[0] & 2, 0, "neuron 1 can never reach its raised threshold");
            if s[0] & 1 == 1 && first.is_none() {
                first = Some(t);
            } else if let Some(f) = first {
                if t <= f + 3 {
                    assert_eq!(layer.v()[0], -65.0, "clamped at step {t}");
                }
            }
        }
        assert!(first.is_some());
    }

    #[test]
    fn seeded_uniform_init_and_reset() {
        let p = LifParams {
            v_init: Some((-60.0, -50.0)),
            ..LifParams::default()
        };
        let mut a = LifLayer::new(100, 0.1, p.clone(), 9).unwrap();
        let b = LifLayer::new(100, 0.1, p, 9).unwrap();
        assert_eq!(a.v(), b.v());
        assert!(a.v().iter().all(|v| (-60.0..-50.0).contains(v)));
        let before = a.v().to_vec();
        a.step(&vec![1.0; 100], &mut words(100));
        a.reset();
        assert_eq!(a.v(), &before[..]);
    }

    #[test]
    fn the_three_input_paths_agree() {
        let p = LifParams {
            tau_syn_e_ms: 5.0,
            tau_syn_i_ms: 10.0,
            v_init: Some((-65.0, -50.0)),
            ..LifParams::default()
        };
        let n = 100;
        let mut rng = SmallRng::seed_from_u64(2);
        let mut layers: Vec<LifLayer> = (0..3)
            .map(|_| LifLayer::new(n, 0.1, p.clone(), 4).unwrap())
            .collect();
        let mut s: Vec<Vec<u64>> = vec![words(n); 3];
        let mut fired = 0;
        for _ in 0..2000 {
            // Each neuron gets either excitation or inhibition, so the signed path can
            // tell them apart.
            let input: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..4.0)).collect();
            let exc: Vec<f32> = input.iter().map(|x| x.max(0.0)).collect();
            let inh: Vec<f32> = input.iter().map(|x| x.min(0.0)).collect();
            layers[0].step(&input, &mut s[0]);
            layers[1].step_split(&exc, &inh, &mut s[1]);
            let (g_e, g_i) = layers[2].inputs_mut();
            g_e.iter_mut().zip(&exc).for_each(|(g, x)| *g += x);
            g_i.iter_mut().zip(&inh).for_each(|(g, x)| *g += x);
            layers[2].step_after_inputs(&mut s[2]);
            assert_eq!(s[0], s[1]);
            assert_eq!(s[1], s[2]);
            fired += spikes::count(&s[0]);
        }
        assert_eq!(layers[0].v(), layers[2].v());
        assert!(fired > 100, "the comparison covers spiking: {fired} spikes");
    }

    #[test]
    fn pack_flags_matches_bit_by_bit_packing() {
        let mut rng = SmallRng::seed_from_u64(5);
        for len in [0, 1, 7, 8, 9, 63, 64] {
            for _ in 0..50 {
                let flags: Vec<u8> = (0..len).map(|_| rng.random_range(0..2)).collect();
                let expected = flags
                    .iter()
                    .enumerate()
                    .fold(0u64, |w, (k, &f)| w | u64::from(f) << k);
                assert_eq!(pack_flags(&flags), expected, "{flags:?}");
            }
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        let p = LifParams {
            v_reset: -40.0,
            ..LifParams::default()
        };
        assert_eq!(LifLayer::new(1, 0.1, p, 0).unwrap_err().param, "v_reset");
        assert_eq!(
            LifLayer::new(1, 0.0, LifParams::default(), 0)
                .unwrap_err()
                .param,
            "dt_ms"
        );
        let mut m = Params::new();
        m.insert("tau_m".into(), serde_json::json!(3.0));
        assert_eq!(LifParams::from_params(&m).unwrap_err().param, "tau_m");
    }
}
