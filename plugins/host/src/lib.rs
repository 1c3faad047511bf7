//! The plugin host of evospike: registry, manager, dependency order, hooks,
//! configuration and the dynamic loader.
//!
//! # Concepts
//!
//! * The [`PluginRegistry`] holds every known plugin with its status and source
//!   (built-in or an external library). Look-ups go by `(PluginType, name)`
//!   ([`PluginRegistry::get`]), by capability ([`PluginRegistry::by_capability`]) or
//!   straight to a family view ([`PluginRegistry::neuron`]).
//! * The [`PluginManager`] drives the lifecycle (initialize → activate → execute →
//!   deactivate, unload, reload), starts everything in dependency-then-priority
//!   order ([`order`]) and stops in reverse. A plugin that fails is marked failed
//!   with its reason and the others carry on.
//! * [`initialize_plugin_system`] registers the plugins a program links in and
//!   discovers external ones (`*.plugin.toml` manifest + cdylib) in the given
//!   directories. The host itself knows no plugin: the `evospike-plugins` bundle
//!   crate lists the built-in ones, as zenohd links its plugins.
//! * [`PluginsConfig`] is the `plugins.<name>` part of a node's config: `enabled`
//!   plus the plugin's own settings; disabled plugins are never initialized.
//! * [`HookRegistry`] runs before / around / replace / after chains at named hook points.
//! * [`loader`] opens external plugins through the versioned C ABI of
//!   `evospike_plugin_api::abi`, after checking magic, ABI, API and rustc versions.
//! * [`scaffold::new_plugin`] writes a new external plugin crate.
//!
//! # Example
//!
//! ```
//! use evospike_plugin_host::{PluginManager, PluginsConfig};
//! use evospike_plugin_api::{Plugin, PluginMetadata, PluginStatus, PluginType};
//! use semver::Version;
//!
//! #[derive(Debug)]
//! struct Recorder(PluginMetadata);
//! impl Plugin for Recorder {
//!     fn metadata(&self) -> &PluginMetadata { &self.0 }
//! }
//!
//! let mut manager = PluginManager::new();
//! let meta = PluginMetadata::new("Recorder", Version::new(1, 0, 0), PluginType::Monitoring);
//! manager.register_builtin(Box::new(Recorder(meta))).unwrap();
//! manager.set_config(PluginsConfig::from_toml_str("[plugins.Recorder]\nenabled = true").unwrap()).unwrap();
//!
//! let report = manager.start_all().unwrap();
//! assert_eq!(report.started, ["Recorder"]);
//! assert_eq!(manager.status(PluginType::Monitoring, "Recorder").unwrap(), PluginStatus::Active);
//! let health = manager.health_check(PluginType::Monitoring, "Recorder").unwrap();
//! assert!(health.enabled);
//! manager.stop_all();
//! assert_eq!(manager.status(PluginType::Monitoring, "Recorder").unwrap(), PluginStatus::Inactive);
//! ```

pub mod config;
pub mod error;
pub mod hooks;
pub mod loader;
pub mod manager;
pub mod order;
pub mod registry;
pub mod scaffold;

pub use config::{PluginSection, PluginsConfig};
pub use error::{BuildInfo, ConfigError, DependencyError, HookError, HostError, LoadError};
pub use hooks::HookRegistry;
pub use manager::{initialize_plugin_system, PluginManager, StartReport, StopReport};
pub use registry::{Entry, PluginRegistry, PluginSource};

/// The text of a panic payload (for error messages).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
