//! The registry: every known plugin, its status, where it came from.
//!
//! Plugins are looked up by `(PluginType, name)` or by capability. Names are unique
//! across types, because a node's config addresses plugins by name alone
//! (`plugins.<name>`). The family view of a computing plugin comes from the
//! accessors on [`Plugin`]: [`PluginRegistry::neuron`] is
//! `get(PluginType::Neuron, name)?.as_neuron()`.

use std::path::PathBuf;

use evospike_plugin_api::{
    EncoderPlugin, NeuronPlugin, PlasticityPlugin, Plugin, PluginMetadata, PluginStatus, PluginType,
};

use crate::error::HostError;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Compiled into the host (registered statically).
    Builtin,
    /// Loaded from a cdylib found in a plugin directory.
    External {
        /// The manifest read before loading.
        manifest: PathBuf,
        /// The library file in the plugin directory (not the private copy loaded).
        library: PathBuf,
    },
}

/// One registry entry.
#[derive(Debug)]
pub struct Entry {
    pub(crate) metadata: PluginMetadata,
    /// `None` when the plugin could not be loaded or was unloaded.
    pub(crate) plugin: Option<Box<dyn Plugin>>,
    pub(crate) status: PluginStatus,
    pub(crate) source: PluginSource,
}

impl Entry {
    /// The plugin's metadata (for external plugins: from the manifest).
    pub fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    /// The lifecycle status.
    pub fn status(&self) -> &PluginStatus {
        &self.status
    }

    /// Where it came from.
    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// The plugin object, if loaded.
    pub fn plugin(&self) -> Option<&dyn Plugin> {
        self.plugin.as_deref()
    }
}

/// Every plugin the host knows, in registration order.
#[derive(Debug, Default)]
pub struct PluginRegistry {
    entries: Vec<Entry>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a plugin with status [`PluginStatus::Discovered`].
    pub fn register(
        &mut self,
        plugin: Box<dyn Plugin>,
        source: PluginSource,
    ) -> Result<(), HostError> {
        let metadata = plugin.metadata().clone();
        self.insert(Entry {
            metadata,
            plugin: Some(plugin),
            status: PluginStatus::Discovered,
            source,
        })
    }

    /// Add a plugin that could not be loaded, so it shows up as failed with its reason.
    pub(crate) fn register_failed(
        &mut self,
        metadata: PluginMetadata,
        source: PluginSource,
        reason: String,
    ) -> Result<(), HostError> {
        self.insert(Entry {
            metadata,
            plugin: None,
            status: PluginStatus::Failed(reason),
            source,
        })
    }

    fn insert(&mut self, entry: Entry) -> Result<(), HostError> {
        // An unloaded plugin's name is free again.
        self.entries.retain(|e| {
            !(e.metadata.name == entry.metadata.name && e.status == PluginStatus::Unloaded)
        });
        if let Some(existing) = self.find_name(&entry.metadata.name) {
            return Err(HostError::AlreadyRegistered {
                name: entry.metadata.name.clone(),
                plugin_type: entry.metadata.plugin_type,
                existing_type: existing.metadata.plugin_type,
            });
        }
        self.entries.push(entry);
        Ok(())
    }

    /// The entry of `name`, whatever its type.
    pub fn find_name(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.metadata.name == name)
    }

    /// The entry of `(plugin_type, name)`.
    pub fn entry(&self, plugin_type: PluginType, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.metadata.plugin_type == plugin_type && e.metadata.name == name)
    }

    pub(crate) fn entry_mut(
        &mut self,
        plugin_type: PluginType,
        name: &str,
    ) -> Result<&mut Entry, HostError> {
        self.entries
            .iter_mut()
            .find(|e| e.metadata.plugin_type == plugin_type && e.metadata.name == name)
            .ok_or_else(|| HostError::NotFound {
                plugin_type,
                name: name.to_owned(),
            })
    }

    /// The loaded plugin `(plugin_type, name)`.
    pub fn get(&self, plugin_type: PluginType, name: &str) -> Option<&dyn Plugin> {
        self.entry(plugin_type, name)?.plugin()
    }

    /// The NEURON family view of plugin `name`.
    pub fn neuron(&self, name: &str) -> Option<&dyn NeuronPlugin> {
        self.get(PluginType::Neuron, name)?.as_neuron()
    }

    /// The ENCODER family view of plugin `name`.
    pub fn encoder(&self, name: &str) -> Option<&dyn EncoderPlugin> {
        self.get(PluginType::Encoder, name)?.as_encoder()
    }

    /// The PLASTICITY family view of plugin `name`.
    pub fn plasticity(&self, name: &str) -> Option<&dyn PlasticityPlugin> {
        self.get(PluginType::Plasticity, name)?.as_plasticity()
    }

    /// The LEARNING family view of plugin `name`.
    pub fn learning(&self, name: &str) -> Option<&dyn evospike_plugin_api::LearningPlugin> {
        self.get(PluginType::Learning, name)?.as_learning()
    }

    /// Metadata of every plugin that lists `capability`, in registration order.
    pub fn by_capability(&self, capability: &str) -> Vec<&PluginMetadata> {
        self.entries
            .iter()
            .map(|e| &e.metadata)
            .filter(|m| m.has_capability(capability))
            .collect()
    }

    /// Metadata of every plugin of `plugin_type`.
    pub fn of_type(&self, plugin_type: PluginType) -> Vec<&PluginMetadata> {
        self.entries
            .iter()
            .map(|e| &e.metadata)
            .filter(|m| m.plugin_type == plugin_type)
            .collect()
    }

    /// All entries, in registration order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use evospike_plugin_api::{Encoder, EncoderPlugin, EncoderSpec, PluginError};
    use semver::Version;

    use super::*;

    #[derive(Debug)]
    struct Plain(PluginMetadata);
    impl Plugin for Plain {
        fn metadata(&self) -> &PluginMetadata {
            &self.0
        }
    }

    #[derive(Debug)]
    struct Coder(PluginMetadata);
    impl Plugin for Coder {
        fn metadata(&self) -> &PluginMetadata {
            &self.0
        }
        fn as_encoder(&self) -> Option<&dyn EncoderPlugin> {
            Some(self)
        }
    }
    impl EncoderPlugin for Coder {
        fn create_encoder(&self, spec: &EncoderSpec) -> Result<Box<dyn Encoder>, PluginError> {
            Err(PluginError::invalid_parameter(
                &self.0.name,
                "num_inputs",
                format!("{} refused", spec.num_inputs),
            ))
        }
    }

    fn meta(name: &str, t: PluginType, caps: &[&str]) -> PluginMetadata {
        caps.iter().fold(
            PluginMetadata::new(name, Version::new(1, 0, 0), t),
            |m, c| m.with_capability(*c),
        )
    }

    #[test]
    fn looks_up_by_type_and_name_capability_and_family() {
        let mut r = PluginRegistry::new();
        r.register(
            Box::new(Plain(meta("Rec", PluginType::Monitoring, &["record"]))),
            PluginSource::Builtin,
        )
        .unwrap();
        r.register(
            Box::new(Coder(meta(
                "Rate",
                PluginType::Encoder,
                &["rate", "record"],
            ))),
            PluginSource::Builtin,
        )
        .unwrap();
        assert!(r.get(PluginType::Monitoring, "Rec").is_some());
        assert!(r.get(PluginType::Encoder, "Rec").is_none());
        let names: Vec<&str> = r
            .by_capability("record")
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["Rec", "Rate"]);
        assert!(r.by_capability("none").is_empty());
        assert!(r.encoder("Rate").is_some());
        assert!(r.neuron("Rate").is_none());
        assert_eq!(r.of_type(PluginType::Encoder).len(), 1);
        assert_eq!(
            r.entry(PluginType::Encoder, "Rate").unwrap().status(),
            &PluginStatus::Discovered
        );
    }

    #[test]
    fn names_are_unique_across_types_until_unloaded() {
        let mut r = PluginRegistry::new();
        r.register(
            Box::new(Plain(meta("X", PluginType::Learning, &[]))),
            PluginSource::Builtin,
        )
        .unwrap();
        let err = r
            .register(
                Box::new(Plain(meta("X", PluginType::Functional, &[]))),
                PluginSource::Builtin,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                HostError::AlreadyRegistered {
                    existing_type: PluginType::Learning,
                    ..
                }
            ),
            "{err}"
        );
        r.entry_mut(PluginType::Learning, "X").unwrap().status = PluginStatus::Unloaded;
        r.register(
            Box::new(Plain(meta("X", PluginType::Functional, &[]))),
            PluginSource::Builtin,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
    }
}
