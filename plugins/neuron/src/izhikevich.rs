//! Izhikevich (2003) neurons with the published integration scheme.
//!
//! # Model
//!
//! ```text
//! dv/dt = 0.04 v² + 5 v + 140 − u + I        (v in mV, t in ms)
//! du/dt = a (b v − u)
//! v ≥ 30 mV  →  spike, v ← c, u ← u + d
//! ```
//!
//! Integration follows the paper's code: `v` advances in two half-steps of `dt/2`
//! (two 0.5 ms steps at the paper's `dt = 1 ms`, for numerical stability), then `u`
//! advances one step of `dt` using the new `v`. The input of a step is the current
//! `I` (plus `i_bias`). Presets (`preset`): RS, IB, CH, FS, LTS, TC, RZ with the
//! paper's (a, b, c, d); any of `a`, `b`, `c`, `d` overrides the preset.

use evospike_compute::{spikes, ParamError, ParamReader, Params};
use evospike_plugin_api::{NeuronLayer, SpikeWords};

/// The firing patterns of Izhikevich (2003), Fig. 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Regular spiking (excitatory, adapting).
    Rs,
    /// Intrinsically bursting.
    Ib,
    /// Chattering.
    Ch,
    /// Fast spiking (inhibitory, no adaptation).
    Fs,
    /// Low-threshold spiking.
    Lts,
    /// Thalamo-cortical.
    Tc,
    /// Resonator.
    Rz,
}

impl Preset {
    /// All presets, in the paper's order.
    pub const ALL: [Preset; 7] = [
        Self::Rs,
        Self::Ib,
        Self::Ch,
        Self::Fs,
        Self::Lts,
        Self::Tc,
        Self::Rz,
    ];

    /// `(a, b, c, d)`.
    pub const fn abcd(self) -> (f32, f32, f32, f32) {
        match self {
            Self::Rs => (0.02, 0.2, -65.0, 8.0),
            Self::Ib => (0.02, 0.2, -55.0, 4.0),
            Self::Ch => (0.02, 0.2, -50.0, 2.0),
            Self::Fs => (0.1, 0.2, -65.0, 2.0),
            Self::Lts => (0.02, 0.25, -65.0, 2.0),
            Self::Tc => (0.02, 0.25, -65.0, 0.05),
            Self::Rz => (0.1, 0.26, -65.0, 2.0),
        }
    }

    /// The short name (`RS`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rs => "RS",
            Self::Ib => "IB",
            Self::Ch => "CH",
            Self::Fs => "FS",
            Self::Lts => "LTS",
            Self::Tc => "TC",
            Self::Rz => "RZ",
        }
    }

    /// Parses a short name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// Parameters of an [`IzhikevichLayer`].
#[derive(Clone, Debug, PartialEq)]
pub struct IzhikevichParams {
    /// Recovery time scale.
    pub a: f32,
    /// Recovery sensitivity.
    pub b: f32,
    /// Reset potential (mV).
    pub c: f32,
    /// Reset increment of `u`.
    pub d: f32,
    /// Constant input current added every step (`i_bias`, default 0).
    pub i_bias: f32,
    /// Initial `v` (`v_init`, default −65); `u` starts at `b · v_init`.
    pub v_init: f32,
}

impl IzhikevichParams {
    /// The parameters of a preset with no bias, starting at −65 mV.
    pub fn preset(p: Preset) -> Self {
        let (a, b, c, d) = p.abcd();
        Self {
            a,
            b,
            c,
            d,
            i_bias: 0.0,
            v_init: -65.0,
        }
    }

    /// Parses `preset`, `a`, `b`, `c`, `d`, `i_bias`, `v_init`, rejecting unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let r = ParamReader::new(params);
        let name = r.str("preset", "RS")?;
        let preset = Preset::parse(name).ok_or_else(|| {
            ParamError::new(
                "preset",
                format!("{name:?} is not one of RS, IB, CH, FS, LTS, TC, RZ"),
            )
        })?;
        let base = Self::preset(preset);
        let p = Self {
            a: r.f32("a", base.a)?,
            b: r.f32("b", base.b)?,
            c: r.f32("c", base.c)?,
            d: r.f32("d", base.d)?,
            i_bias: r.f32("i_bias", base.i_bias)?,
            v_init: r.f32("v_init", base.v_init)?,
        };
        r.finish()?;
        Ok(p)
    }
}

/// Spike cut-off of the model (mV).
const V_PEAK: f32 = 30.0;

/// A population of Izhikevich neurons; see the module docs.
#[derive(Clone, Debug)]
pub struct IzhikevichLayer {
    params: IzhikevichParams,
    dt_ms: f32,
    v: Vec<f32>,
    u: Vec<f32>,
}

impl IzhikevichLayer {
    /// `num_neurons` neurons with step `dt_ms` (the paper uses 1 ms).
    pub fn new(
        num_neurons: usize,
        dt_ms: f32,
        params: IzhikevichParams,
    ) -> Result<Self, ParamError> {
        if !(dt_ms > 0.0 && dt_ms.is_finite()) {
            return Err(ParamError::new(
                "dt_ms",
                format!("must be > 0, got {dt_ms}"),
            ));
        }
        let mut layer = Self {
            params,
            dt_ms,
            v: vec![0.0; num_neurons],
            u: vec![0.0; num_neurons],
        };
        layer.reset();
        Ok(layer)
    }

    /// Membrane potentials (mV).
    pub fn v(&self) -> &[f32] {
        &self.v
    }

    /// Recovery variables.
    pub fn u(&self) -> &[f32] {
        &self.u
    }
}

impl NeuronLayer for IzhikevichLayer {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        let n = self.v.len();
        assert_eq!(input.len(), n, "input length");
        assert_eq!(
            spikes.len(),
            spikes::spike_words_len(n),
            "spike words length"
        );
        let IzhikevichParams {
            a, b, c, d, i_bias, ..
        } = self.params;
        let (half, dt) = (0.5 * self.dt_ms, self.dt_ms);
        spikes.fill(0);
        let state = self.v.iter_mut().zip(self.u.iter_mut());
        for (i, ((v_i, u_i), &x)) in state.zip(input).enumerate() {
            let current = x + i_bias;
            let (mut v, mut u) = (*v_i, *u_i);
            v += half * (0.04 * v * v + 5.0 * v + 140.0 - u + current);
            v += half * (0.04 * v * v + 5.0 * v + 140.0 - u + current);
            u += dt * a * (b * v - u);
            if v >= V_PEAK {
                v = c;
                u += d;
                spikes::set(spikes, i);
            }
            *v_i = v;
            *u_i = u;
        }
    }

    fn reset(&mut self) {
        self.v.fill(self.params.v_init);
        self.u.fill(self.params.b * self.params.v_init);
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        match name {
            "v" => Some(&self.v),
            "u" => Some(&self.u),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step of the adaptation tests: at the paper's 1 ms the overshoot of `v` past
    /// 30 mV feeds into `u` and makes FS firing erratic; 0.1 ms resolves the dynamics.
    const DT: f32 = 0.1;

    fn spike_times(preset: Preset, current: f32, steps: usize, dt: f32) -> Vec<usize> {
        let mut layer = IzhikevichLayer::new(1, dt, IzhikevichParams::preset(preset)).unwrap();
        let mut s = vec![0u64; 1];
        (0..steps)
            .filter(|_| {
                layer.step(&[current], &mut s);
                s[0] == 1
            })
            .collect()
    }

    fn isis(times: &[usize]) -> Vec<f64> {
        times.windows(2).map(|w| (w[1] - w[0]) as f64).collect()
    }

    /// An independent transcription of the paper's MATLAB loop, generic over the
    /// float type: `fired = v >= 30; v(fired) = c; u(fired) += d; v += dt/2 (...)` twice,
    /// `u += dt a (b v − u)`.
    macro_rules! reference_spike_times {
        ($f:ty, $preset:expr, $current:expr, $steps:expr, $dt:expr) => {{
            let (a, b, c, d) = $preset.abcd();
            let (a, b, c, d) = (a as $f, b as $f, c as $f, d as $f);
            let (current, dt, steps) = ($current as $f, $dt as $f, $steps as usize);
            let half: $f = dt / 2.0;
            let mut v: $f = -65.0;
            let mut u = b * v;
            let mut out = Vec::new();
            // The paper tests `fired` at the top of step t for the v computed in t − 1.
            for t in 0..=steps {
                if v >= 30.0 {
                    out.push(t - 1);
                    v = c;
                    u += d;
                }
                if t == steps {
                    break;
                }
                v += half * (0.04 * v * v + 5.0 * v + 140.0 - u + current);
                v += half * (0.04 * v * v + 5.0 * v + 140.0 - u + current);
                u += dt * a * (b * v - u);
            }
            out
        }};
    }

    fn mean(x: &[f64]) -> f64 {
        x.iter().sum::<f64>() / x.len() as f64
    }

    #[test]
    fn regular_spiking_adapts_and_fast_spiking_does_not() {
        // Adaptation ratio: mean of the last 5 ISIs over the first ISI. At I = 14 the
        // RS recovery variable (slow, a = 0.02, large d = 8) stretches the ISI about
        // six-fold; FS (fast, a = 0.1, small d = 2) settles within 1.7x.
        let steps = (1000.0 / DT) as usize;
        let rs = isis(&spike_times(Preset::Rs, 14.0, steps, DT));
        assert!(rs.len() >= 8, "RS spiked {} times", rs.len() + 1);
        let rs_ratio = mean(&rs[rs.len() - 5..]) / rs[0];
        assert!(
            rs_ratio > 3.0,
            "RS does not adapt: ratio {rs_ratio:.2}, ISIs {rs:?}"
        );

        let fs = isis(&spike_times(Preset::Fs, 14.0, steps, DT));
        assert!(fs.len() >= 20, "FS spiked {} times", fs.len() + 1);
        let fs_ratio = mean(&fs[fs.len() - 5..]) / fs[0];
        assert!(
            fs_ratio < 2.0,
            "FS adapts: ratio {fs_ratio:.2}, ISIs {fs:?}"
        );
        assert!(rs_ratio > 2.0 * fs_ratio);
    }

    #[test]
    fn spike_times_match_an_independent_reference_integration() {
        for preset in Preset::ALL {
            for current in [5.0f32, 10.0, 15.0] {
                let got = spike_times(preset, current, 2000, DT);
                // Same precision as the layer: identical spike steps.
                let same = reference_spike_times!(f32, preset, current, 2000, DT);
                assert_eq!(got, same, "{} I={current}", preset.name());
                // f64: the first spikes agree to a step (later ones drift, because the
                // overshoot past 30 mV that feeds `u` is sensitive to rounding).
                let wide = reference_spike_times!(f64, preset, current, 2000, DT);
                assert!(
                    !wide.is_empty(),
                    "{} I={current} never spikes",
                    preset.name()
                );
                for (g, w) in got.iter().zip(&wide).take(4) {
                    assert!(
                        g.abs_diff(*w) <= 1,
                        "{} I={current}: {got:?} vs {wide:?}",
                        preset.name()
                    );
                }
            }
        }
    }

    #[test]
    fn presets_and_overrides_parse() {
        let mut m = Params::new();
        m.insert("preset".into(), serde_json::json!("fs"));
        m.insert("d".into(), serde_json::json!(3.0));
        let p = IzhikevichParams::from_params(&m).unwrap();
        assert_eq!((p.a, p.d), (0.1, 3.0));
        m.insert("preset".into(), serde_json::json!("XX"));
        assert_eq!(
            IzhikevichParams::from_params(&m).unwrap_err().param,
            "preset"
        );
    }
}
