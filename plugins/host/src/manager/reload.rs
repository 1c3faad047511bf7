//! Unloading and reloading one plugin.

use evospike_plugin_api::{PluginStatus, PluginType};

use super::{call_guarded, PluginManager};
use crate::error::{HostError, LoadError};
use crate::loader::{self, ExternalPlugin};
use crate::registry::PluginSource;

impl PluginManager {
    /// Deactivate (if active) and drop the plugin object; the entry stays, as
    /// [`PluginStatus::Unloaded`]. An external library stays mapped (see the loader).
    pub fn unload_plugin(&mut self, plugin_type: PluginType, name: &str) -> Result<(), HostError> {
        let deactivated = match self.status(plugin_type, name)? {
            PluginStatus::Active => self.deactivate_plugin(plugin_type, name),
            _ => Ok(()),
        };
        self.hooks.remove_owner(name);
        let entry = self.registry.entry_mut(plugin_type, name)?;
        let plugin = entry.plugin.take();
        entry.status = PluginStatus::Unloaded;
        if let Some(plugin) = plugin {
            // Dropping runs the plugin's destructor: keep a panic there from escaping.
            let _ = call_guarded("unload", name, || {
                drop(plugin);
                Ok(())
            });
        }
        self.start_order.retain(|n| n != name);
        deactivated
    }

    /// Reload a plugin and bring it back to where it was.
    ///
    /// External plugins are loaded again from their manifest and a fresh copy of
    /// their library file (so a rebuilt library is picked up); if that fails the old
    /// plugin is left untouched. Built-in plugins are restarted (deactivate,
    /// initialize with the current config, activate). A plugin that was active is
    /// active again afterwards; one that was failed or unloaded comes back as
    /// discovered (external) or is refused (built-in, unloaded).
    pub fn reload_plugin(&mut self, plugin_type: PluginType, name: &str) -> Result<(), HostError> {
        let entry = self
            .registry
            .entry(plugin_type, name)
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })?;
        let previous = entry.status().clone();
        let source = entry.source().clone();
        let was_active = previous == PluginStatus::Active;
        let was_initialized = matches!(
            previous,
            PluginStatus::Initialized | PluginStatus::Active | PluginStatus::Inactive
        );

        match source {
            PluginSource::External { manifest, .. } => {
                let discovered = loader::read_manifest(&manifest)?;
                if discovered.manifest.metadata.name != name
                    || discovered.manifest.metadata.plugin_type != plugin_type
                {
                    return Err(LoadError::ManifestMismatch {
                        path: manifest,
                        field: "name/type",
                        manifest: format!(
                            "{} {}",
                            discovered.manifest.metadata.plugin_type,
                            discovered.manifest.metadata.name
                        ),
                        library: format!("{plugin_type} {name}"),
                    }
                    .into());
                }
                let fresh = ExternalPlugin::load(&discovered)?;
                if was_active {
                    // The old copy goes away whatever its deactivate says.
                    let _ = self.deactivate_plugin(plugin_type, name);
                }
                self.hooks.remove_owner(name);
                let entry = self.registry.entry_mut(plugin_type, name)?;
                let old = entry.plugin.replace(Box::new(fresh));
                entry.metadata = discovered.manifest.metadata.clone();
                entry.source = PluginSource::External {
                    manifest: discovered.manifest_path.clone(),
                    library: discovered.library_path.clone(),
                };
                entry.status = PluginStatus::Discovered;
                if let Some(old) = old {
                    let _ = call_guarded("unload", name, || {
                        drop(old);
                        Ok(())
                    });
                }
            }
            PluginSource::Builtin => {
                if matches!(previous, PluginStatus::Unloaded) {
                    return Err(HostError::InvalidTransition {
                        name: name.to_owned(),
                        operation:
                            "reload (a built-in plugin cannot be loaded again once unloaded)",
                        status: previous,
                    });
                }
                if was_active {
                    self.deactivate_plugin(plugin_type, name)?;
                }
                let entry = self.registry.entry_mut(plugin_type, name)?;
                entry.status = PluginStatus::Discovered;
            }
        }
        if was_initialized {
            self.initialize_plugin(plugin_type, name)?;
        }
        if was_active {
            self.activate_plugin(plugin_type, name)?;
        }
        Ok(())
    }
}
