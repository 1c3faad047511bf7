//! One generic plugin for every family of model factories.
//!
//! A built-in NEURON, ENCODER or PLASTICITY plugin is always the same object: a
//! name and description, default parameters taken from its config section at
//! `initialize`, and a `create_*` method that checks the spec, merges the spec's
//! parameters over the defaults and builds the model. What differs is only the
//! *model* — which parameters it reads and what it builds. So a plugin crate
//! describes its models by implementing [`Model`] (usually on a small `enum` of
//! the models it has), and [`ModelPlugin`] turns each into a [`Plugin`] of the
//! model's [`Family`].
//!
//! Parameters are checked twice with the same parser: at `initialize` (the
//! config's defaults, so a bad value fails before any layer is built) and at
//! `create_*` (defaults merged with the spec's own parameters). Errors name the
//! plugin and the key.
//!
//! ```
//! use evospike_plugin_api::factory::{Model, ModelPlugin, NeuronFamily};
//! use evospike_plugin_api::{LayerSpec, NeuronLayer, ParamError, Params, Plugin, SpikeWords};
//!
//! #[derive(Debug)]
//! struct Silent(usize);
//! impl NeuronLayer for Silent {
//!     fn len(&self) -> usize { self.0 }
//!     fn step(&mut self, _input: &[f32], spikes: &mut SpikeWords) { spikes.fill(0) }
//!     fn reset(&mut self) {}
//!     fn state(&self, _name: &str) -> Option<&[f32]> { None }
//! }
//!
//! #[derive(Debug, Clone, Copy)]
//! struct SilentModel;
//! impl Model for SilentModel {
//!     type Family = NeuronFamily;
//!     fn name(self) -> &'static str { "Silent" }
//!     fn description(self) -> &'static str { "never fires" }
//!     fn check(self, params: &Params) -> Result<(), ParamError> {
//!         match params.keys().next() {
//!             Some(key) => Err(ParamError::new(key.clone(), "unknown parameter")),
//!             None => Ok(()),
//!         }
//!     }
//!     fn build(self, spec: &LayerSpec, params: &Params) -> Result<Box<dyn NeuronLayer>, ParamError> {
//!         self.check(params)?;
//!         Ok(Box::new(Silent(spec.num_neurons)))
//!     }
//! }
//!
//! let plugin = ModelPlugin::new(SilentModel, evospike_plugin_api::crate_version!());
//! let spec = LayerSpec { num_neurons: 3, dt_ms: 1.0, params: Params::new(), seed: 0 };
//! let layer = plugin.as_neuron().unwrap().create_layer(&spec).unwrap();
//! assert_eq!(layer.len(), 3);
//! let zero = LayerSpec { num_neurons: 0, ..spec };
//! let err = plugin.as_neuron().unwrap().create_layer(&zero).unwrap_err();
//! assert_eq!(err.to_string(), "plugin `Silent`: invalid parameter `num_neurons`: must be at least 1");
//! ```

use std::fmt;

use semver::Version;

use crate::family::{
    EncoderPlugin, EncoderSpec, LayerSpec, NeuronPlugin, Params, PlasticityPlugin, RuleSpec,
};
use crate::{
    Encoder, NeuronLayer, PlasticityRule, Plugin, PluginConfig, PluginError, PluginMetadata,
    PluginType,
};

/// A parameter is missing, of the wrong type, out of range or unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {reason}")]
pub struct ParamError {
    /// The key.
    pub param: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl ParamError {
    /// An error about `param`.
    pub fn new(param: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            reason: reason.into(),
        }
    }
}

/// The semver version of the crate this macro is expanded in (for plugin metadata).
#[macro_export]
macro_rules! crate_version {
    () => {
        $crate::semver::Version::new(
            $crate::factory::__version_part(env!("CARGO_PKG_VERSION_MAJOR")),
            $crate::factory::__version_part(env!("CARGO_PKG_VERSION_MINOR")),
            $crate::factory::__version_part(env!("CARGO_PKG_VERSION_PATCH")),
        )
    };
}

#[doc(hidden)]
pub fn __version_part(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// A family of factories: its plugin type, its spec and what it builds.
///
/// Implemented by [`NeuronFamily`], [`EncoderFamily`] and [`PlasticityFamily`]; each
/// also gives [`ModelPlugin`] its family view (`as_neuron`, …).
pub trait Family: Sized + 'static {
    /// The plugin type of the family's plugins.
    const PLUGIN_TYPE: PluginType;
    /// A capability tag every plugin of the family has.
    const CAPABILITY: &'static str;
    /// What a factory is given.
    type Spec;
    /// What a factory builds.
    type Product: ?Sized;

    /// Checks the spec fields every model of the family needs (sizes, time step).
    fn check_spec(spec: &Self::Spec) -> Result<(), ParamError>;

    /// The spec's own model parameters.
    fn params(spec: &Self::Spec) -> &Params;

    /// The NEURON view of a plugin of this family.
    fn as_neuron<M: Model<Family = Self>>(_plugin: &ModelPlugin<M>) -> Option<&dyn NeuronPlugin> {
        None
    }

    /// The ENCODER view of a plugin of this family.
    fn as_encoder<M: Model<Family = Self>>(_plugin: &ModelPlugin<M>) -> Option<&dyn EncoderPlugin> {
        None
    }

    /// The PLASTICITY view of a plugin of this family.
    fn as_plasticity<M: Model<Family = Self>>(
        _plugin: &ModelPlugin<M>,
    ) -> Option<&dyn PlasticityPlugin> {
        None
    }
}

/// One model a plugin crate offers: what it is called and how it is built.
pub trait Model: Copy + fmt::Debug + Send + Sync + 'static {
    /// The family the model belongs to.
    type Family: Family;

    /// The plugin name, e.g. `LIFNeuron`.
    fn name(self) -> &'static str;

    /// One line for `evospike plugin list`.
    fn description(self) -> &'static str;

    /// Capability tags besides the family's.
    fn capabilities(self) -> &'static [&'static str] {
        &[]
    }

    /// Parses `params` as this model would, rejecting unknown keys and bad values.
    fn check(self, params: &Params) -> Result<(), ParamError>;

    /// Builds the model for `spec` with `params` (defaults merged with the spec's).
    fn build(
        self,
        spec: &<Self::Family as Family>::Spec,
        params: &Params,
    ) -> Result<Box<<Self::Family as Family>::Product>, ParamError>;
}

/// The [`Plugin`] of one [`Model`]: its config section holds default parameters,
/// which a spec's `params` override key by key.
#[derive(Debug)]
pub struct ModelPlugin<M: Model> {
    meta: PluginMetadata,
    model: M,
    defaults: Params,
}

impl<M: Model> ModelPlugin<M> {
    /// The plugin of `model`, at version `version` (see [`crate_version!`](crate::crate_version)).
    pub fn new(model: M, version: Version) -> Self {
        let mut meta = PluginMetadata::new(model.name(), version, M::Family::PLUGIN_TYPE)
            .with_description(model.description())
            .with_author("evospike")
            .with_capability(M::Family::CAPABILITY);
        for capability in model.capabilities() {
            meta = meta.with_capability(*capability);
        }
        ModelPlugin {
            meta,
            model,
            defaults: Params::new(),
        }
    }

    /// The model.
    pub fn model(&self) -> M {
        self.model
    }

    /// Checks the spec, merges its parameters over the defaults and builds.
    fn create(
        &self,
        spec: &<M::Family as Family>::Spec,
    ) -> Result<Box<<M::Family as Family>::Product>, PluginError> {
        let invalid =
            |e: ParamError| PluginError::invalid_parameter(&self.meta.name, e.param, e.reason);
        M::Family::check_spec(spec).map_err(invalid)?;
        let mut params = self.defaults.clone();
        params.extend(
            M::Family::params(spec)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        self.model.build(spec, &params).map_err(invalid)
    }
}

impl<M: Model> Plugin for ModelPlugin<M> {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    /// The config holds default model parameters (e.g. `tau_ms`, `max_rate_hz`).
    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        self.model
            .check(config)
            .map_err(|e| PluginError::invalid_config(&self.meta.name, e.param, e.reason))?;
        self.defaults = config.clone();
        Ok(())
    }

    fn as_neuron(&self) -> Option<&dyn NeuronPlugin> {
        M::Family::as_neuron(self)
    }

    fn as_encoder(&self) -> Option<&dyn EncoderPlugin> {
        M::Family::as_encoder(self)
    }

    fn as_plasticity(&self) -> Option<&dyn PlasticityPlugin> {
        M::Family::as_plasticity(self)
    }
}

/// One plugin per model, boxed for registration (a plugin crate's `builtin_plugins`).
pub fn plugins<M: Model>(
    models: impl IntoIterator<Item = M>,
    version: &Version,
) -> Vec<Box<dyn Plugin>> {
    models
        .into_iter()
        .map(|model| Box::new(ModelPlugin::new(model, version.clone())) as Box<dyn Plugin>)
        .collect()
}

fn at_least_one(name: &str, value: usize) -> Result<(), ParamError> {
    match value {
        0 => Err(ParamError::new(name, "must be at least 1")),
        _ => Ok(()),
    }
}

fn positive_dt(dt_ms: f32) -> Result<(), ParamError> {
    if dt_ms > 0.0 && dt_ms.is_finite() {
        Ok(())
    } else {
        Err(ParamError::new(
            "dt_ms",
            format!("must be > 0, got {dt_ms}"),
        ))
    }
}

/// NEURON plugins: build [`NeuronLayer`]s from a [`LayerSpec`].
#[derive(Debug)]
pub struct NeuronFamily;

impl Family for NeuronFamily {
    const PLUGIN_TYPE: PluginType = PluginType::Neuron;
    const CAPABILITY: &'static str = "neuron-layer";
    type Spec = LayerSpec;
    type Product = dyn NeuronLayer;

    fn check_spec(spec: &LayerSpec) -> Result<(), ParamError> {
        at_least_one("num_neurons", spec.num_neurons)?;
        positive_dt(spec.dt_ms)
    }

    fn params(spec: &LayerSpec) -> &Params {
        &spec.params
    }

    fn as_neuron<M: Model<Family = Self>>(plugin: &ModelPlugin<M>) -> Option<&dyn NeuronPlugin> {
        Some(plugin)
    }
}

impl<M: Model<Family = NeuronFamily>> NeuronPlugin for ModelPlugin<M> {
    fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
        self.create(spec)
    }
}

/// ENCODER plugins: build [`Encoder`]s from an [`EncoderSpec`].
#[derive(Debug)]
pub struct EncoderFamily;

impl Family for EncoderFamily {
    const PLUGIN_TYPE: PluginType = PluginType::Encoder;
    const CAPABILITY: &'static str = "spike-encoder";
    type Spec = EncoderSpec;
    type Product = dyn Encoder;

    fn check_spec(spec: &EncoderSpec) -> Result<(), ParamError> {
        at_least_one("num_inputs", spec.num_inputs)?;
        at_least_one("num_steps", spec.num_steps as usize)?;
        positive_dt(spec.dt_ms)
    }

    fn params(spec: &EncoderSpec) -> &Params {
        &spec.params
    }

    fn as_encoder<M: Model<Family = Self>>(plugin: &ModelPlugin<M>) -> Option<&dyn EncoderPlugin> {
        Some(plugin)
    }
}

impl<M: Model<Family = EncoderFamily>> EncoderPlugin for ModelPlugin<M> {
    fn create_encoder(&self, spec: &EncoderSpec) -> Result<Box<dyn Encoder>, PluginError> {
        self.create(spec)
    }
}

/// PLASTICITY plugins: build [`PlasticityRule`]s from a [`RuleSpec`].
#[derive(Debug)]
pub struct PlasticityFamily;

impl Family for PlasticityFamily {
    const PLUGIN_TYPE: PluginType = PluginType::Plasticity;
    const CAPABILITY: &'static str = "plasticity-rule";
    type Spec = RuleSpec;
    type Product = dyn PlasticityRule;

    fn check_spec(spec: &RuleSpec) -> Result<(), ParamError> {
        at_least_one("pre", spec.pre)?;
        at_least_one("post", spec.post)?;
        positive_dt(spec.dt_ms)
    }

    fn params(spec: &RuleSpec) -> &Params {
        &spec.params
    }

    fn as_plasticity<M: Model<Family = Self>>(
        plugin: &ModelPlugin<M>,
    ) -> Option<&dyn PlasticityPlugin> {
        Some(plugin)
    }
}

impl<M: Model<Family = PlasticityFamily>> PlasticityPlugin for ModelPlugin<M> {
    fn create_rule(&self, spec: &RuleSpec) -> Result<Box<dyn PlasticityRule>, PluginError> {
        self.create(spec)
    }
}
