//! The plugin objects: `RateEncoder`, `LatencyEncoder`, `TASEncoder`, `CurrentEncoder`.
//!
//! Each is a [`ModelPlugin`] of one [`EncoderModel`]: the config section given to
//! `initialize` holds default parameters; an [`EncoderSpec`]'s `params` override
//! them per encoder. Both go through the same parser, so a bad value fails at
//! `initialize` already, naming the key.

use evospike_compute::{ParamError, Params};
use evospike_plugin_api::factory::{EncoderFamily, Model};
use evospike_plugin_api::{Encoder, EncoderSpec, ModelPlugin, Plugin};

use crate::current::{CurrentEncoder, CurrentParams};
use crate::latency::{LatencyEncoder, LatencyParams};
use crate::rate::{RateEncoder, RateParams};
use crate::tas::{TasEncoder, TasParams};

/// A built-in ENCODER plugin: the generic factory around one [`EncoderModel`].
pub type BuiltinEncoder = ModelPlugin<EncoderModel>;

/// The encoders of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderModel {
    /// `RateEncoder`.
    Rate,
    /// `LatencyEncoder`.
    Latency,
    /// `TASEncoder`.
    Tas,
    /// `CurrentEncoder`.
    Current,
}

impl EncoderModel {
    /// Every encoder, in registration order.
    pub const ALL: [EncoderModel; 4] = [Self::Rate, Self::Latency, Self::Tas, Self::Current];

    /// The encoder's plugin.
    pub fn plugin(self) -> BuiltinEncoder {
        ModelPlugin::new(self, evospike_plugin_api::crate_version!())
    }
}

impl Model for EncoderModel {
    type Family = EncoderFamily;

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

/// The ENCODER plugins of this crate, for static registration (see the `evospike-plugins` bundle).
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    evospike_plugin_api::factory::plugins(EncoderModel::ALL, &evospike_plugin_api::crate_version!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::spikes;
    use evospike_plugin_api::{EncoderPlugin, PluginConfig, PluginError, PluginType};
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
        assert_eq!(outputs, [10, 10, 20, 10]);
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
            if enc.analog() {
                // Graded values, not spikes.
                let mut values = vec![0.0; enc.num_outputs()];
                enc.encode_step_analog(0, &mut values);
                assert_eq!(values, [1.0, 0.5, 0.8], "{}", p.metadata().name);
                continue;
            }
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
        let mut p = EncoderModel::Rate.plugin();
        let mut cfg = PluginConfig::new();
        cfg.insert("max_rate_hz".into(), json!(-5));
        let err = p.initialize(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `RateEncoder`: invalid config setting `max_rate_hz`: must be >= 0, got -5"
        );
        let err = EncoderModel::Tas
            .plugin()
            .create_encoder(&spec(0, json!({})))
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParameter { param, .. } if param == "num_inputs"),
            "{err}"
        );
    }
}
