//! The plugin manager: drives the lifecycle of every registered plugin.
//!
//! * One plugin at a time: [`PluginManager::initialize_plugin`],
//!   [`activate_plugin`](PluginManager::activate_plugin),
//!   [`execute_plugin`](PluginManager::execute_plugin),
//!   [`deactivate_plugin`](PluginManager::deactivate_plugin),
//!   [`unload_plugin`](PluginManager::unload_plugin),
//!   [`reload_plugin`](PluginManager::reload_plugin).
//! * All at once: [`start_all`](PluginManager::start_all) in dependency order then
//!   priority, [`stop_all`](PluginManager::stop_all) in reverse.
//!
//! Every call into plugin code is wrapped in `catch_unwind` (external plugins also
//! catch on their side of the ABI). A lifecycle call that errs or panics marks the
//! plugin [`PluginStatus::Failed`] with its reason; the other plugins carry on.

mod bulk;
mod reload;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use evospike_plugin_api::{
    EncoderPlugin, HealthReport, LearningPlugin, NeuronPlugin, PlasticityPlugin, Plugin,
    PluginError, PluginHealth, PluginMetadata, PluginStatus, PluginType,
};

use crate::config::PluginsConfig;
use crate::error::{DependencyError, HostError, LoadError};
use crate::hooks::HookRegistry;
use crate::loader::{self, Discovered, ExternalPlugin};
use crate::panic_message;
use crate::registry::{PluginRegistry, PluginSource};

/// What [`PluginManager::start_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Plugins activated, in start order.
    pub started: Vec<String>,
    /// Plugins that failed (or could not start because a dependency failed), with the reason.
    pub failed: Vec<(String, String)>,
    /// Plugins left alone because config disables them.
    pub disabled: Vec<String>,
}

/// What [`PluginManager::stop_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Plugins deactivated, in stop order.
    pub stopped: Vec<String>,
    /// Plugins whose deactivation failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Registry + config + hooks + loader: everything a node needs to run plugins.
#[derive(Debug, Default)]
pub struct PluginManager {
    registry: PluginRegistry,
    config: PluginsConfig,
    hooks: HookRegistry,
    load_errors: Vec<LoadError>,
    start_order: Vec<String>,
}

fn call_guarded<T>(
    operation: &str,
    name: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(PluginError::Panicked {
            plugin: name.to_owned(),
            operation: operation.to_owned(),
            message: panic_message(payload.as_ref()),
        })
    })
}

impl PluginManager {
    /// A manager with no plugins and an empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry (look-ups by type and name, by capability, family views).
    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    /// The hooks plugins registered.
    pub fn hooks(&self) -> &HookRegistry {
        &self.hooks
    }

    /// The hooks, for host code that adds its own handlers.
    pub fn hooks_mut(&mut self) -> &mut HookRegistry {
        &mut self.hooks
    }

    /// The config in effect.
    pub fn config(&self) -> &PluginsConfig {
        &self.config
    }

    /// Use `config` from now on. A section for an unregistered plugin is an error;
    /// call this after registering and discovering plugins.
    pub fn set_config(&mut self, config: PluginsConfig) -> Result<(), HostError> {
        config.check_known(self.registry.entries().map(|e| e.metadata().name.as_str()))?;
        self.config = config;
        Ok(())
    }

    /// Problems met while discovering external plugins (bad manifests, libraries
    /// that failed their checks). Plugins with a readable manifest also appear in
    /// the registry, as failed with the same reason.
    pub fn load_errors(&self) -> &[LoadError] {
        &self.load_errors
    }

    /// Register a plugin compiled into the host.
    pub fn register_builtin(&mut self, plugin: Box<dyn Plugin>) -> Result<(), HostError> {
        self.registry.register(plugin, PluginSource::Builtin)
    }

    /// Find `*.plugin.toml` manifests in `dir` and load their libraries. Returns the
    /// names registered (loaded or failed). Problems are kept in
    /// [`load_errors`](Self::load_errors); an unreadable directory is an error.
    pub fn discover_plugins(&mut self, dir: &Path) -> Result<Vec<String>, HostError> {
        let mut names = Vec::new();
        for found in loader::discover(dir)? {
            match found {
                Ok(discovered) => {
                    names.push(discovered.manifest.metadata.name.clone());
                    self.load_discovered(&discovered)?;
                }
                Err(e) => self.load_errors.push(e),
            }
        }
        Ok(names)
    }

    /// Load one external plugin from its manifest. A library that fails its checks
    /// is registered as failed (with the reason) and the error is kept in
    /// [`load_errors`](Self::load_errors); only a name clash is returned as an error.
    pub fn load_discovered(&mut self, discovered: &Discovered) -> Result<(), HostError> {
        let source = PluginSource::External {
            manifest: discovered.manifest_path.clone(),
            library: discovered.library_path.clone(),
        };
        match ExternalPlugin::load(discovered) {
            Ok(plugin) => self.registry.register(Box::new(plugin), source),
            Err(e) => {
                let reason = e.to_string();
                self.load_errors.push(e);
                self.registry
                    .register_failed(discovered.manifest.metadata.clone(), source, reason)
            }
        }
    }

    /// The plugin `(plugin_type, name)`.
    pub fn get_plugin(
        &self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<&dyn Plugin, HostError> {
        let entry = self
            .registry
            .entry(plugin_type, name)
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })?;
        entry.plugin().ok_or_else(|| HostError::InvalidTransition {
            name: name.to_owned(),
            operation: "use",
            status: entry.status().clone(),
        })
    }

    /// The family view of plugin `(plugin_type, name)`, through `view`
    /// (e.g. [`Plugin::as_neuron`]).
    pub fn family<'a, T: ?Sized>(
        &'a self,
        plugin_type: PluginType,
        name: &str,
        view: impl FnOnce(&'a dyn Plugin) -> Option<&'a T>,
    ) -> Result<&'a T, HostError> {
        view(self.get_plugin(plugin_type, name)?).ok_or_else(|| HostError::NotFound {
            plugin_type,
            name: name.to_owned(),
        })
    }

    /// The NEURON family view of `name` (e.g. to create layers for a pipeline node).
    pub fn neuron(&self, name: &str) -> Result<&dyn NeuronPlugin, HostError> {
        self.family(PluginType::Neuron, name, |p| p.as_neuron())
    }

    /// The ENCODER family view of `name`.
    pub fn encoder(&self, name: &str) -> Result<&dyn EncoderPlugin, HostError> {
        self.family(PluginType::Encoder, name, |p| p.as_encoder())
    }

    /// The PLASTICITY family view of `name`.
    pub fn plasticity(&self, name: &str) -> Result<&dyn PlasticityPlugin, HostError> {
        self.family(PluginType::Plasticity, name, |p| p.as_plasticity())
    }

    /// The LEARNING family view of `name`.
    pub fn learning(&self, name: &str) -> Result<&dyn LearningPlugin, HostError> {
        self.family(PluginType::Learning, name, |p| p.as_learning())
    }

    /// The status of `(plugin_type, name)`.
    pub fn status(&self, plugin_type: PluginType, name: &str) -> Result<PluginStatus, HostError> {
        self.registry
            .entry(plugin_type, name)
            .map(|e| e.status().clone())
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })
    }

    /// Run a lifecycle step on one plugin: check the status allows it, call it with
    /// panics caught, and record the new status (or failure).
    fn transition(
        &mut self,
        plugin_type: PluginType,
        name: &str,
        operation: &'static str,
        allowed: fn(&PluginStatus) -> bool,
        success: PluginStatus,
        f: impl FnOnce(&mut dyn Plugin) -> Result<(), PluginError>,
    ) -> Result<(), HostError> {
        let entry = self.registry.entry_mut(plugin_type, name)?;
        let invalid = |status: &PluginStatus| HostError::InvalidTransition {
            name: name.to_owned(),
            operation,
            status: status.clone(),
        };
        if !allowed(&entry.status) {
            return Err(invalid(&entry.status));
        }
        let Some(plugin) = entry.plugin.as_deref_mut() else {
            return Err(invalid(&entry.status));
        };
        match call_guarded(operation, name, || f(plugin)) {
            Ok(()) => {
                entry.status = success;
                Ok(())
            }
            Err(source) => {
                entry.status = PluginStatus::Failed(source.to_string());
                Err(HostError::Plugin {
                    name: name.to_owned(),
                    operation,
                    source,
                })
            }
        }
    }

    /// Check that `name`'s dependencies are registered, enabled and of matching versions.
    fn check_dependencies(&self, metadata: &PluginMetadata) -> Result<(), DependencyError> {
        for dep in &metadata.dependencies {
            let Some(entry) = self.registry.find_name(&dep.name) else {
                return Err(DependencyError::Missing {
                    plugin: metadata.name.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.version.clone(),
                });
            };
            if !self.config.is_enabled(&dep.name) {
                return Err(DependencyError::Disabled {
                    plugin: metadata.name.clone(),
                    dependency: dep.name.clone(),
                });
            }
            if !dep.version.matches(&entry.metadata().version) {
                return Err(DependencyError::Incompatible {
                    plugin: metadata.name.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.version.clone(),
                    found: entry.metadata().version.clone(),
                });
            }
        }
        Ok(())
    }

    fn metadata_of(
        &self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<PluginMetadata, HostError> {
        self.registry
            .entry(plugin_type, name)
            .map(|e| e.metadata().clone())
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })
    }

    /// Validate and apply the plugin's config section (`plugins.<name>.*`).
    /// A disabled plugin is refused and never initialized.
    pub fn initialize_plugin(
        &mut self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<(), HostError> {
        let metadata = self.metadata_of(plugin_type, name)?;
        if !self.config.is_enabled(name) {
            return Err(HostError::Disabled {
                name: name.to_owned(),
            });
        }
        self.check_dependencies(&metadata)?;
        let settings = self.config.settings(name);
        self.transition(
            plugin_type,
            name,
            "initialize",
            |s| {
                matches!(
                    s,
                    PluginStatus::Discovered | PluginStatus::Initialized | PluginStatus::Inactive
                )
            },
            PluginStatus::Initialized,
            |p| p.initialize(&settings),
        )
    }

    /// Start an initialized (or deactivated) plugin; its dependencies must be active.
    /// Its hook handlers are registered right after.
    pub fn activate_plugin(
        &mut self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<(), HostError> {
        let metadata = self.metadata_of(plugin_type, name)?;
        if !self.config.is_enabled(name) {
            return Err(HostError::Disabled {
                name: name.to_owned(),
            });
        }
        for dep in &metadata.dependencies {
            let status = self
                .registry
                .find_name(&dep.name)
                .map(|e| e.status().clone())
                .ok_or_else(|| DependencyError::Missing {
                    plugin: name.to_owned(),
                    dependency: dep.name.clone(),
                    requirement: dep.version.clone(),
                })?;
            if status != PluginStatus::Active {
                return Err(DependencyError::NotActive {
                    plugin: name.to_owned(),
                    dependency: dep.name.clone(),
                    status,
                }
                .into());
            }
        }
        self.transition(
            plugin_type,
            name,
            "activate",
            |s| matches!(s, PluginStatus::Initialized | PluginStatus::Inactive),
            PluginStatus::Active,
            |p| p.activate(),
        )?;
        self.register_hooks_of(plugin_type, name)
    }

    fn register_hooks_of(&mut self, plugin_type: PluginType, name: &str) -> Result<(), HostError> {
        let entry = self.registry.entry_mut(plugin_type, name)?;
        let Some(plugin) = entry.plugin.as_deref() else {
            return Ok(());
        };
        let mut registrar = self.hooks.registrar(name);
        let result = call_guarded("register_hooks", name, || {
            plugin.register_hooks(&mut registrar)
        });
        if let Err(source) = result {
            self.hooks.remove_owner(name);
            entry.status = PluginStatus::Failed(source.to_string());
            return Err(HostError::Plugin {
                name: name.to_owned(),
                operation: "register_hooks",
                source,
            });
        }
        Ok(())
    }

    /// Call an active plugin's `execute`. An error is returned as-is (the plugin stays
    /// active); a panic marks the plugin failed.
    pub fn execute_plugin(
        &mut self,
        plugin_type: PluginType,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, HostError> {
        let entry = self.registry.entry_mut(plugin_type, name)?;
        let status = entry.status.clone();
        let plugin = match (&status, entry.plugin.as_deref_mut()) {
            (PluginStatus::Active, Some(plugin)) => plugin,
            _ => {
                return Err(HostError::InvalidTransition {
                    name: name.to_owned(),
                    operation: "execute",
                    status,
                })
            }
        };
        call_guarded("execute", name, || plugin.execute(input)).map_err(|source| {
            if matches!(source, PluginError::Panicked { .. }) {
                entry.status = PluginStatus::Failed(source.to_string());
            }
            HostError::Plugin {
                name: name.to_owned(),
                operation: "execute",
                source,
            }
        })
    }

    /// Stop an active plugin; its hook handlers are removed first.
    pub fn deactivate_plugin(
        &mut self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<(), HostError> {
        if self.status(plugin_type, name)? == PluginStatus::Active {
            self.hooks.remove_owner(name);
        }
        self.transition(
            plugin_type,
            name,
            "deactivate",
            |s| matches!(s, PluginStatus::Active),
            PluginStatus::Inactive,
            |p| p.deactivate(),
        )
    }

    /// Status, the plugin's own health, version, priority and enabled flag.
    pub fn health_check(
        &self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<HealthReport, HostError> {
        let entry = self
            .registry
            .entry(plugin_type, name)
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })?;
        let state = match (entry.status(), entry.plugin()) {
            (PluginStatus::Failed(reason), _) => PluginHealth::Unhealthy(reason.clone()),
            (PluginStatus::Unloaded, _) | (_, None) => PluginHealth::Unhealthy("not loaded".into()),
            (_, Some(plugin)) => catch_unwind(AssertUnwindSafe(|| plugin.health_check()))
                .unwrap_or_else(|p| {
                    PluginHealth::Unhealthy(format!(
                        "health_check panicked: {}",
                        panic_message(p.as_ref())
                    ))
                }),
        };
        Ok(HealthReport {
            name: name.to_owned(),
            status: entry.status().clone(),
            state,
            version: entry.metadata().version.clone(),
            priority: entry.metadata().effective_priority(),
            enabled: self.config.is_enabled(name),
        })
    }

    /// [`health_check`](Self::health_check) of every registered plugin.
    pub fn health_all(&self) -> Vec<HealthReport> {
        self.registry
            .entries()
            .filter_map(|e| {
                self.health_check(e.metadata().plugin_type, &e.metadata().name)
                    .ok()
            })
            .collect()
    }

    /// Run the hook chain at `point` around `operation`.
    pub fn run_hook(
        &self,
        point: &str,
        data: &mut evospike_plugin_api::HookData,
        operation: impl FnMut(&mut evospike_plugin_api::HookData) -> Result<(), PluginError>,
    ) -> Result<(), HostError> {
        Ok(self.hooks.run(point, data, operation)?)
    }
}

/// Build a manager: register `builtins` (the plugins linked into the program,
/// e.g. `evospike_plugins::builtin_plugins()`), then discover external plugins in
/// each of `plugin_dirs` (loading happens now, at run time). Returns an error
/// only if a directory cannot be read or two plugins share a name; individual
/// plugins that fail to load are registered as failed (see
/// [`PluginManager::load_errors`]).
pub fn initialize_plugin_system<P: AsRef<Path>>(
    builtins: impl IntoIterator<Item = Box<dyn Plugin>>,
    plugin_dirs: &[P],
) -> Result<PluginManager, HostError> {
    let mut manager = PluginManager::new();
    for plugin in builtins {
        manager.register_builtin(plugin)?;
    }
    for dir in plugin_dirs {
        manager.discover_plugins(dir.as_ref())?;
    }
    Ok(manager)
}
