//! The plugin objects: `LIFNeuron`, `IzhikevichNeuron`, `EntangledSynchrony`,
//! `LeakyIntegrator`.
//!
//! Each is a [`ModelPlugin`] of one [`NeuronModel`]: its config section (given to
//! `initialize`) holds default layer parameters; a [`LayerSpec`]'s `params`
//! override them per layer. Both are validated with the same parser, so a bad
//! value fails at `initialize` already, naming the key.

use evospike_compute::{ParamError, ParamReader, Params};
use evospike_plugin_api::factory::{Model, NeuronFamily};
use evospike_plugin_api::{LayerSpec, ModelPlugin, NeuronLayer, Plugin};

use crate::izhikevich::{IzhikevichLayer, IzhikevichParams};
use crate::leaky::{LeakyLayer, LeakyParams};
use crate::lif::{LifLayer, LifParams};
use crate::synchrony::{EntangledSynchronyLayer, SynchronyParams};

/// A built-in NEURON plugin: the generic factory around one [`NeuronModel`].
pub type BuiltinNeuron = ModelPlugin<NeuronModel>;

/// The neuron models of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeuronModel {
    /// `LIFNeuron`.
    Lif,
    /// `IzhikevichNeuron`.
    Izhikevich,
    /// `EntangledSynchrony`.
    Synchrony,
    /// `LeakyIntegrator`.
    Leaky,
}

impl NeuronModel {
    /// Every model, in registration order.
    pub const ALL: [NeuronModel; 4] = [Self::Lif, Self::Izhikevich, Self::Synchrony, Self::Leaky];

    /// The model's plugin.
    pub fn plugin(self) -> BuiltinNeuron {
        ModelPlugin::new(self, evospike_plugin_api::crate_version!())
    }
}

impl Model for NeuronModel {
    type Family = NeuronFamily;

    fn name(self) -> &'static str {
        match self {
            Self::Lif => "LIFNeuron",
            Self::Izhikevich => "IzhikevichNeuron",
            Self::Synchrony => "EntangledSynchrony",
            Self::Leaky => "LeakyIntegrator",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Lif => "Leaky integrate-and-fire neurons, exact exponential integration, current-based synapses",
            Self::Izhikevich => "Izhikevich (2003) neurons with presets RS, IB, CH, FS, LTS, TC, RZ",
            Self::Synchrony => "LIF neurons with Kuramoto phase coupling gating their input (classical, not quantum)",
            Self::Leaky => "Leaky integrators (non-spiking): the readout layer of trained networks",
        }
    }

    fn capabilities(self) -> &'static [&'static str] {
        match self {
            Self::Lif => &["lif"],
            Self::Izhikevich => &["izhikevich"],
            Self::Synchrony => &["kuramoto"],
            Self::Leaky => &["leaky-integrator"],
        }
    }

    /// Parses parameters, rejecting unknown keys.
    fn check(self, params: &Params) -> Result<(), ParamError> {
        match self {
            Self::Lif => LifParams::from_params(params).map(drop),
            Self::Izhikevich => IzhikevichParams::from_params(params).map(drop),
            Self::Synchrony => synchrony_params(params).map(drop),
            Self::Leaky => LeakyParams::from_params(params).map(drop),
        }
    }

    fn build(self, spec: &LayerSpec, params: &Params) -> Result<Box<dyn NeuronLayer>, ParamError> {
        let (n, dt) = (spec.num_neurons, spec.dt_ms);
        Ok(match self {
            Self::Lif => Box::new(LifLayer::new(
                n,
                dt,
                LifParams::from_params(params)?,
                spec.seed,
            )?),
            Self::Izhikevich => Box::new(IzhikevichLayer::new(
                n,
                dt,
                IzhikevichParams::from_params(params)?,
            )?),
            Self::Synchrony => {
                let (lif, sync) = synchrony_params(params)?;
                Box::new(EntangledSynchronyLayer::new(n, dt, lif, sync, spec.seed)?)
            }
            Self::Leaky => Box::new(LeakyLayer::new(n, dt, &LeakyParams::from_params(params)?)?),
        })
    }
}

fn synchrony_params(params: &Params) -> Result<(LifParams, SynchronyParams), ParamError> {
    let r = ParamReader::new(params);
    let lif = LifParams::read(&r)?;
    let sync = SynchronyParams::read(&r)?;
    r.finish()?;
    Ok((lif, sync))
}

/// The NEURON plugins of this crate, for static registration (see the `evospike-plugins` bundle).
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    evospike_plugin_api::factory::plugins(NeuronModel::ALL, &evospike_plugin_api::crate_version!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::spikes;
    use evospike_plugin_api::{NeuronPlugin, PluginConfig, PluginError, PluginType};
    use serde_json::json;

    fn spec(n: usize, params: serde_json::Value) -> LayerSpec {
        LayerSpec {
            num_neurons: n,
            dt_ms: 0.1,
            params: params.as_object().cloned().unwrap_or_default(),
            seed: 1,
        }
    }

    #[test]
    fn the_seed_lif_check_get_by_type_and_name_initialize_activate() {
        let mut plugins = builtin_plugins();
        let lif = plugins
            .iter_mut()
            .find(|p| {
                p.metadata().plugin_type == PluginType::Neuron && p.metadata().name == "LIFNeuron"
            })
            .expect("LIFNeuron is built in");
        let mut cfg = PluginConfig::new();
        cfg.insert("tau_ms".into(), json!(10.0));
        lif.initialize(&cfg).unwrap();
        lif.activate().unwrap();
        let neuron = lif.as_neuron().expect("LIFNeuron is a neuron plugin");
        let mut layer = neuron
            .create_layer(&spec(3, json!({"i_bias_na": 30.0})))
            .unwrap();
        let mut s = vec![0u64; spikes::spike_words_len(3)];
        let mut fired = 0;
        for _ in 0..200 {
            layer.step(&[0.0; 3], &mut s);
            fired += spikes::count(&s);
        }
        assert!(fired > 0, "a driven LIF layer spikes");
        assert_eq!(layer.state("v").map(<[f32]>::len), Some(3));
    }

    #[test]
    fn names_types_and_family_views() {
        let names: Vec<_> = builtin_plugins()
            .iter()
            .map(|p| p.metadata().name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "LIFNeuron",
                "IzhikevichNeuron",
                "EntangledSynchrony",
                "LeakyIntegrator"
            ]
        );
        for p in builtin_plugins() {
            assert_eq!(p.metadata().plugin_type, PluginType::Neuron);
            assert!(p.as_neuron().is_some() && p.as_encoder().is_none());
        }
    }

    #[test]
    fn every_model_builds_steps_and_exposes_state() {
        for (p, state) in builtin_plugins().iter().zip(["v", "u", "phase"]) {
            let mut layer = p
                .as_neuron()
                .unwrap()
                .create_layer(&spec(70, json!({})))
                .unwrap();
            let mut s = vec![0u64; 2];
            layer.step(&[1.0; 70], &mut s);
            assert_eq!(
                layer.state(state).map(<[f32]>::len),
                Some(70),
                "{}",
                p.metadata().name
            );
            assert!(layer.state("nope").is_none());
        }
    }

    #[test]
    fn bad_config_and_params_name_the_plugin_and_key() {
        let mut p = NeuronModel::Izhikevich.plugin();
        let mut cfg = PluginConfig::new();
        cfg.insert("preset".into(), json!("QQ"));
        let err = p.initialize(&cfg).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig { key, .. } if key == "preset"),
            "{err}"
        );
        let err = NeuronModel::Lif
            .plugin()
            .create_layer(&spec(0, json!({})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `LIFNeuron`: invalid parameter `num_neurons`: must be at least 1"
        );
        let err = NeuronModel::Synchrony
            .plugin()
            .create_layer(&spec(4, json!({"kappa": 1})))
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParameter { param, .. } if param == "kappa"),
            "{err}"
        );
    }

    #[test]
    fn config_defaults_apply_and_spec_params_override_them() {
        let mut p = NeuronModel::Lif.plugin();
        let mut cfg = PluginConfig::new();
        cfg.insert("v_rest".into(), json!(-70.0));
        p.initialize(&cfg).unwrap();
        let a = p.create_layer(&spec(1, json!({}))).unwrap();
        let b = p.create_layer(&spec(1, json!({"v_rest": -60.0}))).unwrap();
        assert_eq!(a.state("v"), Some(&[-70.0f32][..]));
        assert_eq!(b.state("v"), Some(&[-60.0f32][..]));
    }
}
