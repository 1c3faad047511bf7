//! The plugin objects: `STDP`, `MetaPlasticity`, `Homeostasis`.
//!
//! Each is a [`ModelPlugin`] of one [`RuleModel`]: the config section given to
//! `initialize` holds default parameters; a [`RuleSpec`]'s `params` override them
//! per projection. Both go through the same parser, so a bad value fails at
//! `initialize` already, naming the key.

use evospike_compute::{ParamError, ParamReader, Params};
use evospike_plugin_api::factory::{Model, PlasticityFamily};
use evospike_plugin_api::{ModelPlugin, PlasticityRule, Plugin, RuleSpec};

use crate::homeostasis::{Homeostasis, HomeostasisParams};
use crate::stdp::{MetaParams, Stdp, StdpParams};

/// A built-in PLASTICITY plugin: the generic factory around one [`RuleModel`].
pub type BuiltinRule = ModelPlugin<RuleModel>;

/// The plasticity rules of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleModel {
    /// `STDP`.
    Stdp,
    /// `MetaPlasticity`.
    Meta,
    /// `Homeostasis`.
    Homeostasis,
}

impl RuleModel {
    /// Every rule, in registration order.
    pub const ALL: [RuleModel; 3] = [Self::Stdp, Self::Meta, Self::Homeostasis];

    /// The rule's plugin.
    pub fn plugin(self) -> BuiltinRule {
        ModelPlugin::new(self, evospike_plugin_api::crate_version!())
    }

    fn meta_params(params: &Params) -> Result<(StdpParams, MetaParams), ParamError> {
        let r = ParamReader::new(params);
        let stdp = StdpParams::read(&r)?;
        let meta = MetaParams::read(&r)?;
        r.finish()?;
        Ok((stdp, meta))
    }
}

impl Model for RuleModel {
    type Family = PlasticityFamily;

    fn name(self) -> &'static str {
        match self {
            Self::Stdp => "STDP",
            Self::Meta => "MetaPlasticity",
            Self::Homeostasis => "Homeostasis",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Stdp => "Trace-based pair STDP, additive or multiplicative",
            Self::Meta => "STDP with a BCM-style sliding threshold: depression scales with the slow postsynaptic rate",
            Self::Homeostasis => "Adaptive thresholds (Diehl & Cook 2015) and multiplicative synaptic scaling",
        }
    }

    fn check(self, params: &Params) -> Result<(), ParamError> {
        match self {
            Self::Stdp => StdpParams::from_params(params).map(drop),
            Self::Meta => Self::meta_params(params).map(drop),
            Self::Homeostasis => HomeostasisParams::from_params(params).map(drop),
        }
    }

    fn build(
        self,
        spec: &RuleSpec,
        params: &Params,
    ) -> Result<Box<dyn PlasticityRule>, ParamError> {
        let (pre, post, dt) = (spec.pre, spec.post, spec.dt_ms);
        Ok(match self {
            Self::Stdp => Box::new(Stdp::new(pre, post, dt, StdpParams::from_params(params)?)),
            Self::Meta => {
                let (stdp, meta) = Self::meta_params(params)?;
                Box::new(Stdp::meta(pre, post, dt, stdp, meta))
            }
            Self::Homeostasis => Box::new(Homeostasis::new(
                post,
                dt,
                HomeostasisParams::from_params(params)?,
            )),
        })
    }
}

/// The PLASTICITY plugins of this crate, for static registration (see the `evospike-plugins` bundle).
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    evospike_plugin_api::factory::plugins(RuleModel::ALL, &evospike_plugin_api::crate_version!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_plugin_api::{
        PlasticityPlugin, PluginConfig, PluginError, PluginType, WeightsMut,
    };
    use serde_json::json;

    fn spec(params: serde_json::Value) -> RuleSpec {
        RuleSpec {
            pre: 2,
            post: 3,
            dt_ms: 1.0,
            params: params.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn names_types_and_rules_that_change_weights() {
        let plugins = builtin_plugins();
        let names: Vec<_> = plugins.iter().map(|p| p.metadata().name.as_str()).collect();
        assert_eq!(names, ["STDP", "MetaPlasticity", "Homeostasis"]);
        for p in &plugins {
            assert_eq!(p.metadata().plugin_type, PluginType::Plasticity);
            let mut rule = p
                .as_plasticity()
                .unwrap()
                .create_rule(&spec(json!({})))
                .unwrap();
            let mut w = vec![0.5f32; 6];
            // pre 0 then post 1 a step later, repeatedly.
            for t in 0..200u64 {
                let pre = [u64::from(t % 20 == 0)];
                let post = [u64::from(t % 20 == 1) << 1];
                rule.update(
                    &pre,
                    &post,
                    WeightsMut::Dense {
                        rows: 2,
                        cols: 3,
                        values: &mut w,
                    },
                );
            }
            assert_ne!(
                w,
                vec![0.5f32; 6],
                "{} left the weights alone",
                p.metadata().name
            );
        }
        let homeo = plugins[2]
            .as_plasticity()
            .unwrap()
            .create_rule(&spec(json!({})))
            .unwrap();
        assert_eq!(homeo.threshold_offsets().map(<[f32]>::len), Some(3));
    }

    #[test]
    fn config_and_spec_errors_name_plugin_and_key() {
        let mut p = RuleModel::Meta.plugin();
        let mut cfg = PluginConfig::new();
        cfg.insert("tau_rate".into(), json!(5));
        let err = p.initialize(&cfg).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig { plugin, key, .. } if plugin == "MetaPlasticity" && key == "tau_rate"),
            "{err}"
        );
        let err = RuleModel::Stdp
            .plugin()
            .create_rule(&RuleSpec {
                pre: 0,
                ..spec(json!({}))
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `STDP`: invalid parameter `pre`: must be at least 1"
        );
    }
}
