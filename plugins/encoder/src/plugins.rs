//! The plugin objects: `RateEncoder`, `LatencyEncoder`, `TASEncoder`, `CurrentEncoder`.
//!
//! The config section given to `initialize` holds default parameters; an
//! [`EncoderSpec`]'s `params` override them per encoder. Both go through the same
//! parser, so a bad value fails at `initialize` already, naming the key.

use evospike_compute::params::merged;
use evospike_compute::{ParamError, Params};
use evospike_plugin_api::semver::Version;
use evospike_plugin_api::{
    Encoder, EncoderPlugin, EncoderSpec, Plugin, PluginConfig, PluginError, PluginMetadata,
    PluginType,
};

use crate::current::{CurrentEncoder, CurrentParams};
use crate::latency::{LatencyEncoder, LatencyParams};
use crate::rate::{RateEncoder, RateParams};
use crate::tas::{TasEncoder, TasParams};

fn crate_version() -> Version {
    let part = |s: &str| s.parse().unwrap_or(0);
    Version::new(
        part(env!("CARGO_PKG_VERSION_MAJOR")),
        part(env!("CARGO_PKG_VERSION_MINOR")),
        part(env!("CARGO_PKG_VERSION_PATCH")),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rate,
    Latency,
    Tas,
    Current,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Rate => "RateEncoder",
            Self::Latency => "LatencyEncoder",
            Self::Tas => "TASEncoder",
            Self::Current => "CurrentEncoder",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Rate => "Seeded Bernoulli/Poisson rate coding",
            Self::Latency => "Time-to-first-spike coding, linear or logarithmic",
            Self::Tas => {
                "Temporal Analog Spike: threshold-adaptive step-forward delta coding with ±1 spikes"
            }
            Self::Current => {
                "Each value is an input current every step (graded output; trained networks)"
            }
        }
    }

    fn check(self, params: &Params) -> Result<(), ParamError> {
        match self {
            Self::Rate => RateParams::from_params(params).map(drop),
            Self::Latency => LatencyParams::from_params(params).map(drop),
            Self::Tas => TasParams::from_params(params).map(drop),
            Self::Current => CurrentParams::from_params(params).map(drop),
        }
    }

    fn build(self, spec: &EncoderSpec, params: &Params) -> Result<Box<dyn Encoder>, ParamError> {
        let n = spec.num_inputs;
        Ok(match self {
            Self::Rate => Box::new(RateEncoder::new(
                n,
                spec.dt_ms,
                RateParams::from_params(params)?,
                spec.seed,
            )),
            Self::Latency => Box::new(LatencyEncoder::new(
                n,
                spec.num_steps,
                spec.dt_ms,
                LatencyParams::from_params(params)?,
            )),
            Self::Tas => Box::new(TasEncoder::new(n, TasParams::from_params(params)?)),
            Self::Current => Box::new(CurrentEncoder::new(n, &CurrentParams::from_params(params)?)),
        })
    }
}

/// One of the built-in ENCODER plugins.
#[derive(Debug)]
pub struct BuiltinEncoder {
    meta: PluginMetadata,
    kind: Kind,
    defaults: Params,
}

impl BuiltinEncoder {
    fn new(kind: Kind) -> Self {
        let meta = PluginMetadata::new(kind.name(), crate_version(), PluginType::Encoder)
            .with_description(kind.description())
            .with_author("evospike")
            .with_capability("spike-encoder");
        Self {
            meta,
            kind,
            defaults: Params::new(),
        }
    }

    /// `RateEncoder`.
    pub fn rate() -> Self {
        Self::new(Kind::Rate)
    }

    /// `LatencyEncoder`.
    pub fn latency() -> Self {
        Self::new(Kind::Latency)
    }

    /// `TASEncoder`.
    pub fn tas() -> Self {
        Self::new(Kind::Tas)
    }

    /// `CurrentEncoder`.
    pub fn current() -> Self {
        Self::new(Kind::Current)
    }

    fn param_error(&self, e: ParamError) -> PluginError {
        PluginError::invalid_parameter(&self.meta.name, e.param, e.reason)
    }
}

impl Plugin for BuiltinEncoder {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    /// The config holds default encoder parameters (e.g. `max_rate_hz`).
    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        self.kind
            .check(config)
            .map_err(|e| PluginError::invalid_config(&self.meta.name, e.param, e.reason))?;
        self.defaults = config.clone();
        Ok(())
    }

    fn as_encoder(&self) -> Option<&dyn EncoderPlugin> {
        Some(self)
    }
}

impl EncoderPlugin for BuiltinEncoder {
    fn create_encoder(&self, spec: &EncoderSpec) -> Result<Box<dyn Encoder>, PluginError> {
        if spec.num_inputs == 0 {
            return Err(self.param_error(ParamError::new("num_inputs", "must be at least 1")));
        }
        if spec.num_steps == 0 {
            return Err(self.param_error(ParamError::new("num_steps", "must be at least 1")));
        }
        if !(spec.dt_ms > 0.0 && spec.dt_ms.is_finite()) {
            return Err(self.param_error(ParamError::new(
                "dt_ms",
                format!("must be > 0, got {}", spec.dt_ms),
            )));
        }
        let params = merged(&self.defaults, &spec.params);
        self.kind
            .build(spec, &params)
            .map_err(|e| self.param_error(e))
    }
}

/// The ENCODER plugins of this crate, for static registration by the plugin host.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(BuiltinEncoder::rate()),
        Box::new(BuiltinEncoder::latency()),
        Box::new(BuiltinEncoder::tas()),
        Box::new(BuiltinEncoder::current()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::spikes;
    use serde_json::json;

    fn spec(n: usize, params: serde_json::Value) -> EncoderSpec {
        EncoderSpec {
            num_inputs: n,
            num_steps: 50,
            dt_ms: 1.0,
            params: params.as_object().cloned().unwrap_or_default(),
            seed: 4,
        }
    }

    #[test]
    fn names_and_output_sizes() {
        let plugins = builtin_plugins();
        let names: Vec<_> = plugins.iter().map(|p| p.metadata().name.as_str()).collect();
        assert_eq!(
            names,
            [
                "RateEncoder",
                "LatencyEncoder",
                "TASEncoder",
                "CurrentEncoder"
            ]
        );
        let outputs: Vec<_> = plugins
            .iter()
            .map(|p| {
                assert_eq!(p.metadata().plugin_type, PluginType::Encoder);
                p.as_encoder()
                    .unwrap()
                    .create_encoder(&spec(10, json!({})))
                    .unwrap()
                    .num_outputs()
            })
            .collect();
        assert_eq!(outputs, [10, 10, 20]);
    }

    #[test]
    fn every_encoder_encodes_a_sample() {
        for p in builtin_plugins() {
            let mut enc = p
                .as_encoder()
                .unwrap()
                .create_encoder(&spec(3, json!({})))
                .unwrap();
            enc.set_sample(&[1.0, 0.5, 0.8]);
            let mut w = vec![0u64; spikes::spike_words_len(enc.num_outputs())];
            let total: usize = (0..50)
                .map(|t| {
                    enc.encode_step(t, &mut w);
                    spikes::count(&w)
                })
                .sum();
            assert!(total > 0, "{} emitted nothing", p.metadata().name);
        }
    }

    #[test]
    fn config_is_validated_and_names_the_key() {
        let mut p = BuiltinEncoder::rate();
        let mut cfg = PluginConfig::new();
        cfg.insert("max_rate_hz".into(), json!(-5));
        let err = p.initialize(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `RateEncoder`: invalid config setting `max_rate_hz`: must be >= 0, got -5"
        );
        let err = BuiltinEncoder::tas()
            .create_encoder(&spec(0, json!({})))
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParameter { param, .. } if param == "num_inputs"),
            "{err}"
        );
    }
}
