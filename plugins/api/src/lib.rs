//! The plugin API of evospike: what a plugin author depends on.
//!
//! # Concepts
//!
//! * A plugin has a [`PluginType`] (one of seven) and [`PluginMetadata`]: name,
//!   semver version, description, author, [`Priority`], [`Dependency`]s and
//!   capability tags.
//! * Every plugin implements the [`Plugin`] lifecycle trait: `initialize(config)` →
//!   `activate` → `execute` → `deactivate`, plus `health_check`. The host tracks a
//!   [`PluginStatus`] per plugin.
//! * Plugins that compute implement a *family trait* from [`family`]:
//!   [`NeuronPlugin`] (creates [`NeuronLayer`]s), [`EncoderPlugin`] (creates
//!   [`Encoder`]s) or [`PlasticityPlugin`] (creates [`PlasticityRule`]s), and return
//!   themselves from [`Plugin::as_neuron`] / [`Plugin::as_encoder`] /
//!   [`Plugin::as_plasticity`]. That accessor is how the host's registry hands out
//!   the family view (`registry.neuron("LIFNeuron")` is
//!   `registry.get(PluginType::Neuron, "LIFNeuron")?.as_neuron()`).
//! * A family plugin is always the same factory around a *model*: [`factory`]
//!   has the one generic [`ModelPlugin`] that turns any [`factory::Model`] into a
//!   plugin of its family, so a plugin crate only describes its models.
//! * Built-in plugin crates register statically: each exports
//!   `pub fn builtin_plugins() -> Vec<Box<dyn Plugin>>`; the bundle crate
//!   (`evospike-plugins`) collects them for the binaries. The host knows none.
//! * External plugins are `cdylib` crates that call
//!   [`export_plugin!`](crate::export_plugin) once; the macro implements the
//!   versioned C ABI described in [`abi`] (one entry symbol, a `#[repr(C)]` header,
//!   panic-catching shims). See docs/PLUGINS.md for the author's walk-through.
//! * [`middleware`]: HTTP middleware plugins (authentication, rate limiting,
//!   validation) that a front end such as the gateway runs on every request,
//!   from [`Plugin::as_middleware`].
//! * [`monitor`]: MONITORING plugins fed with spike streams and bus metrics,
//!   reporting measurements and findings (alerts), from [`Plugin::as_monitor`].
//! * [`hooks`]: plugins add before / around / replace / after handlers at named
//!   hook points from [`Plugin::register_hooks`].
//!
//! # Example
//!
//! ```
//! use evospike_plugin_api::*;
//! use semver::Version;
//!
//! #[derive(Debug)]
//! struct Gain { meta: PluginMetadata, gain: f64 }
//!
//! impl Plugin for Gain {
//!     fn metadata(&self) -> &PluginMetadata { &self.meta }
//!     fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
//!         if let Some(v) = config.get("gain") {
//!             self.gain = v.as_f64().ok_or_else(|| {
//!                 PluginError::invalid_config(&self.meta.name, "gain", "expected a number")
//!             })?;
//!         }
//!         Ok(())
//!     }
//!     fn execute(&mut self, input: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
//!         let x = input.as_f64().ok_or_else(|| PluginError::failed(&self.meta.name, "input is not a number"))?;
//!         Ok(serde_json::json!(x * self.gain))
//!     }
//! }
//!
//! let meta = PluginMetadata::new("Gain", Version::new(1, 0, 0), PluginType::Functional)
//!     .with_capability("scale");
//! let mut p = Gain { meta, gain: 1.0 };
//! let mut cfg = PluginConfig::new();
//! cfg.insert("gain".into(), serde_json::json!(3.0));
//! p.initialize(&cfg).unwrap();
//! p.activate().unwrap();
//! assert_eq!(p.execute(&serde_json::json!(2.0)).unwrap(), serde_json::json!(6.0));
//! assert_eq!(p.metadata().effective_priority(), Priority::MIDDLEWARE);
//! ```

pub mod abi;
pub mod error;
mod export;
pub mod factory;
pub mod family;
pub mod hooks;
pub mod learning;
pub mod lifecycle;
pub mod metadata;
pub mod middleware;
pub mod monitor;
pub mod settings;

pub use error::PluginError;
pub use factory::{ModelPlugin, ParamError};
pub use family::{
    spike_words_len, Encoder, EncoderPlugin, EncoderSpec, LayerSpec, NeuronLayer, NeuronPlugin,
    Params, PlasticityPlugin, PlasticityRule, RuleSpec, SpikeWords, WeightsMut,
};
pub use hooks::{HookData, HookHandler, HookKind, HookRegistrar};
pub use learning::{
    Checkpoint, Control, Dataset, EncoderDef, EpochReport, LayerDef, Learner, LearnerSpec,
    LearningPlugin, NetworkSpec, Progress, Readout, Tensor,
};
pub use lifecycle::{HealthReport, Plugin, PluginConfig, PluginHealth, PluginStatus};
pub use metadata::{Dependency, PluginMetadata, PluginType, Priority, UnknownPluginType};
pub use middleware::{MiddlewarePlugin, MiddlewareRequest, Rejection, RequestHeaders};
pub use monitor::{Finding, LayerId, Measurement, MonitorPlugin, MonitorReport};
pub use semver;
pub use serde_json;
