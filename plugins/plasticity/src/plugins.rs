//! The plugin objects: `STDP`, `MetaPlasticity`, `Homeostasis`.
//!
//! The config section given to `initialize` holds default parameters; a
//! [`RuleSpec`]'s `params` override them per projection. Both go through the same
//! parser, so a bad value fails at `initialize` already, naming the key.

use evospike_compute::params::merged;
use evospike_compute::{ParamError, ParamReader, Params};
use evospike_plugin_api::semver::Version;
use evospike_plugin_api::{
    PlasticityPlugin, PlasticityRule, Plugin, PluginConfig, PluginError, PluginMetadata,
    PluginType, RuleSpec,
};

use crate::homeostasis::{Homeostasis, HomeostasisParams};
use crate::stdp::{MetaParams, Stdp, StdpParams};

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
    Stdp,
    Meta,
    Homeostasis,
}

impl Kind {
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

    fn meta_params(params: &Params) -> Result<(StdpParams, MetaParams), ParamError> {
        let r = ParamReader::new(params);
        let stdp = StdpParams::read(&r)?;
        let meta = MetaParams::read(&r)?;
        r.finish()?;
        Ok((stdp, meta))
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

/// One of the built-in PLASTICITY plugins.
#[derive(Debug)]
pub struct BuiltinRule {
    meta: PluginMetadata,
    kind: Kind,
    defaults: Params,
}

impl BuiltinRule {
    fn new(kind: Kind) -> Self {
        let meta = PluginMetadata::new(kind.name(), crate_version(), PluginType::Plasticity)
            .with_description(kind.description())
            .with_author("evospike")
            .with_capability("plasticity-rule");
        Self {
            meta,
            kind,
            defaults: Params::new(),
        }
    }

    /// `STDP`.
    pub fn stdp() -> Self {
        Self::new(Kind::Stdp)
    }

    /// `MetaPlasticity`.
    pub fn meta_plasticity() -> Self {
        Self::new(Kind::Meta)
    }

    /// `Homeostasis`.
    pub fn homeostasis() -> Self {
        Self::new(Kind::Homeostasis)
    }

    fn param_error(&self, e: ParamError) -> PluginError {
        PluginError::invalid_parameter(&self.meta.name, e.param, e.reason)
    }
}

impl Plugin for BuiltinRule {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    /// The config holds default rule parameters (e.g. `a_plus`).
    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        self.kind
            .check(config)
            .map_err(|e| PluginError::invalid_config(&self.meta.name, e.param, e.reason))?;
        self.defaults = config.clone();
        Ok(())
    }

    fn as_plasticity(&self) -> Option<&dyn PlasticityPlugin> {
        Some(self)
    }
}

impl PlasticityPlugin for BuiltinRule {
    fn create_rule(&self, spec: &RuleSpec) -> Result<Box<dyn PlasticityRule>, PluginError> {
        if spec.pre == 0 || spec.post == 0 {
            let which = if spec.pre == 0 { "pre" } else { "post" };
            return Err(self.param_error(ParamError::new(which, "must be at least 1")));
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

/// The PLASTICITY plugins of this crate, for static registration by the plugin host.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(BuiltinRule::stdp()),
        Box::new(BuiltinRule::meta_plasticity()),
        Box::new(BuiltinRule::homeostasis()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_plugin_api::WeightsMut;
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
        let mut p = BuiltinRule::meta_plasticity();
        let mut cfg = PluginConfig::new();
        cfg.insert("tau_rate".into(), json!(5));
        let err = p.initialize(&cfg).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig { plugin, key, .. } if plugin == "MetaPlasticity" && key == "tau_rate"),
            "{err}"
        );
        let err = BuiltinRule::stdp()
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
