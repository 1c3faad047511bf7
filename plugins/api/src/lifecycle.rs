//! The [`Plugin`] trait every plugin implements, and the status the host tracks for it.
//!
//! Lifecycle: `initialize(config)` → `activate` → `execute`* → `deactivate`
//! (→ `activate` again, …). The host (plugins/host) drives these calls, records a
//! [`PluginStatus`] per plugin and composes a [`HealthReport`] from the plugin's own
//! [`Plugin::health_check`] and what it tracks.

use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::family::{EncoderPlugin, NeuronPlugin, PlasticityPlugin};
use crate::hooks::HookRegistrar;
use crate::metadata::{PluginMetadata, Priority};
use crate::PluginError;

/// A plugin's own settings: the keys of `plugins.<name>` in a node's config file,
/// minus `enabled` (which the host consumes).
pub type PluginConfig = serde_json::Map<String, serde_json::Value>;

/// The lifecycle every plugin goes through. Only [`Plugin::metadata`] is required.
///
/// A plugin of a computing family also implements the family trait and returns
/// itself from the matching accessor, so the host can hand out the family view:
///
/// ```
/// # use evospike_plugin_api::*;
/// #[derive(Debug)]
/// struct Quiet(PluginMetadata);
/// impl Plugin for Quiet {
///     fn metadata(&self) -> &PluginMetadata { &self.0 }
///     fn as_neuron(&self) -> Option<&dyn NeuronPlugin> { Some(self) }
/// }
/// impl NeuronPlugin for Quiet {
///     fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
///         Err(PluginError::invalid_parameter(&self.0.name, "num_neurons", format!("{} is too many", spec.num_neurons)))
///     }
/// }
/// let p = Quiet(PluginMetadata::new("Quiet", semver::Version::new(0, 1, 0), PluginType::Neuron));
/// assert!(p.as_neuron().is_some());
/// assert!(p.as_encoder().is_none());
/// ```
pub trait Plugin: Send + Sync + fmt::Debug {
    /// Name, version, type, priority, dependencies, capabilities.
    fn metadata(&self) -> &PluginMetadata;

    /// Validate and take the plugin's settings. Called once before `activate`.
    ///
    /// The default accepts only an empty config: a plugin without settings rejects
    /// any key with [`PluginError::InvalidConfig`] instead of silently ignoring a typo.
    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        match config.keys().next() {
            None => Ok(()),
            Some(key) => Err(PluginError::invalid_config(
                &self.metadata().name,
                key,
                "this plugin takes no settings",
            )),
        }
    }

    /// Start serving (acquire resources, start threads). Default: nothing to start.
    fn activate(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    /// Generic request/response entry point (for FUNCTIONAL, LEARNING, … plugins).
    /// Default: [`PluginError::Unsupported`].
    fn execute(&mut self, input: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        let _ = input;
        Err(PluginError::unsupported(&self.metadata().name, "execute"))
    }

    /// Stop serving (release what `activate` acquired). Default: nothing to stop.
    fn deactivate(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    /// Register hook handlers (called by the host right after a successful
    /// `activate`; the host removes them on `deactivate`). Default: none.
    fn register_hooks(&self, hooks: &mut dyn HookRegistrar) -> Result<(), PluginError> {
        let _ = hooks;
        Ok(())
    }

    /// The plugin's own view of its health. Default: healthy.
    fn health_check(&self) -> PluginHealth {
        PluginHealth::Healthy
    }

    /// The NEURON family view, if this is a neuron plugin.
    fn as_neuron(&self) -> Option<&dyn NeuronPlugin> {
        None
    }

    /// The ENCODER family view, if this is an encoder plugin.
    fn as_encoder(&self) -> Option<&dyn EncoderPlugin> {
        None
    }

    /// The PLASTICITY family view, if this is a plasticity plugin.
    fn as_plasticity(&self) -> Option<&dyn PlasticityPlugin> {
        None
    }

    /// The LEARNING family view, if this is a learning plugin.
    fn as_learning(&self) -> Option<&dyn crate::LearningPlugin> {
        None
    }

    /// The MONITORING view, if this plugin watches spikes and metrics.
    fn as_monitor(&self) -> Option<&dyn crate::monitor::MonitorPlugin> {
        None
    }

    /// The HTTP middleware view, if this plugin checks requests at a front end.
    fn as_middleware(&self) -> Option<&dyn crate::middleware::MiddlewarePlugin> {
        None
    }
}

/// Where a plugin is in its lifecycle, as tracked by the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum PluginStatus {
    /// Registered or found on disk; no plugin code has run yet.
    Discovered,
    /// `initialize` succeeded.
    Initialized,
    /// `activate` succeeded; the plugin is serving.
    Active,
    /// `deactivate` succeeded.
    Inactive,
    /// A lifecycle call failed or panicked; the plugin is out of service.
    Failed(String),
    /// Removed from the registry.
    Unloaded,
}

impl fmt::Display for PluginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovered => f.write_str("discovered"),
            Self::Initialized => f.write_str("initialized"),
            Self::Active => f.write_str("active"),
            Self::Inactive => f.write_str("inactive"),
            Self::Failed(reason) => write!(f, "failed: {reason}"),
            Self::Unloaded => f.write_str("unloaded"),
        }
    }
}

/// A plugin's own opinion of its health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum PluginHealth {
    /// Working normally.
    Healthy,
    /// Working, but something needs attention.
    Degraded(String),
    /// Not working.
    Unhealthy(String),
}

/// What `health_check` on the host reports for one plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Plugin name.
    pub name: String,
    /// Lifecycle status tracked by the host.
    pub status: PluginStatus,
    /// The plugin's own health (`Unhealthy` without asking it when the plugin has failed).
    pub state: PluginHealth,
    /// Plugin version.
    pub version: Version,
    /// Effective start priority.
    pub priority: Priority,
    /// Whether config enables it.
    pub enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PluginType;

    #[derive(Debug)]
    struct Bare(PluginMetadata);
    impl Plugin for Bare {
        fn metadata(&self) -> &PluginMetadata {
            &self.0
        }
    }

    fn bare() -> Bare {
        Bare(PluginMetadata::new(
            "Bare",
            Version::new(0, 1, 0),
            PluginType::Functional,
        ))
    }

    #[test]
    fn default_initialize_rejects_unknown_settings_by_name() {
        let mut p = bare();
        assert_eq!(p.initialize(&PluginConfig::new()), Ok(()));
        let mut cfg = PluginConfig::new();
        cfg.insert("gain".into(), serde_json::json!(2));
        let err = p.initialize(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `Bare`: invalid config setting `gain`: this plugin takes no settings"
        );
    }

    #[test]
    fn default_execute_is_unsupported_and_names_the_plugin() {
        let err = bare().execute(&serde_json::Value::Null).unwrap_err();
        assert_eq!(err.plugin(), "Bare");
        assert!(matches!(err, PluginError::Unsupported { .. }));
    }

    #[test]
    fn status_displays_its_reason() {
        assert_eq!(
            PluginStatus::Failed("boom".into()).to_string(),
            "failed: boom"
        );
    }
}
