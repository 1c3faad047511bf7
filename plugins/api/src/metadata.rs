//! What a plugin says about itself: type, name, version, priority, dependencies, capabilities.

use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

/// The seven kinds of plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginType {
    /// Neuron models (LIF, Izhikevich, …): factories of neuron layers.
    Neuron,
    /// Encoders that turn analog samples into spikes.
    Encoder,
    /// Plasticity rules (STDP, homeostasis, …).
    Plasticity,
    /// General-purpose functions (pre/post-processing, decoders, …).
    Functional,
    /// Learning procedures that drive training.
    Learning,
    /// Observers: metrics, recorders, health.
    Monitoring,
    /// Transports: the bus itself and bridges.
    Communication,
}

impl PluginType {
    /// All types, in declaration order.
    pub const ALL: [PluginType; 7] = [
        Self::Neuron,
        Self::Encoder,
        Self::Plasticity,
        Self::Functional,
        Self::Learning,
        Self::Monitoring,
        Self::Communication,
    ];

    /// Lower-case name (`"neuron"`, …), as used in manifests and config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Neuron => "neuron",
            Self::Encoder => "encoder",
            Self::Plasticity => "plasticity",
            Self::Functional => "functional",
            Self::Learning => "learning",
            Self::Monitoring => "monitoring",
            Self::Communication => "communication",
        }
    }

    /// The priority a plugin of this type gets unless it says otherwise: transports
    /// start first (infrastructure), observers and helpers next (middleware), model
    /// code last (business).
    pub const fn default_priority(self) -> Priority {
        match self {
            Self::Communication => Priority::INFRASTRUCTURE,
            Self::Monitoring | Self::Functional => Priority::MIDDLEWARE,
            Self::Neuron | Self::Encoder | Self::Plasticity | Self::Learning => Priority::BUSINESS,
        }
    }

    /// Stable numeric code used across the C ABI.
    pub const fn code(self) -> u32 {
        match self {
            Self::Neuron => 0,
            Self::Encoder => 1,
            Self::Plasticity => 2,
            Self::Functional => 3,
            Self::Learning => 4,
            Self::Monitoring => 5,
            Self::Communication => 6,
        }
    }

    /// Inverse of [`PluginType::code`].
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Neuron),
            1 => Some(Self::Encoder),
            2 => Some(Self::Plasticity),
            3 => Some(Self::Functional),
            4 => Some(Self::Learning),
            5 => Some(Self::Monitoring),
            6 => Some(Self::Communication),
            _ => None,
        }
    }
}

impl fmt::Display for PluginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown plugin type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plugin type `{0}` (expected one of: neuron, encoder, plasticity, functional, learning, monitoring, communication)")]
pub struct UnknownPluginType(pub String);

impl FromStr for PluginType {
    type Err = UnknownPluginType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPluginType(s.to_owned()))
    }
}

/// Start priority: lower starts earlier (after dependencies) and stops later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub u32);

impl Priority {
    /// Transports and other things everything else needs.
    pub const INFRASTRUCTURE: Priority = Priority(10);
    /// Access control, validation.
    pub const SECURITY: Priority = Priority(20);
    /// Observers, adapters, helpers.
    pub const MIDDLEWARE: Priority = Priority(30);
    /// Model code: neurons, encoders, rules, learning.
    pub const BUSINESS: Priority = Priority(40);
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// "This plugin needs plugin `name` in a version matching `version`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Name of the required plugin.
    pub name: String,
    /// Accepted versions (semver requirement such as `^1.2`).
    pub version: VersionReq,
}

impl Dependency {
    /// A dependency on `name` with requirement `version`.
    pub fn new(name: impl Into<String>, version: VersionReq) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }
}

/// Everything the host needs to know about a plugin before using it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMetadata {
    /// Unique name within its type, e.g. `LIFNeuron`.
    pub name: String,
    /// Semantic version of the plugin.
    pub version: Version,
    /// Its kind.
    #[serde(rename = "type")]
    pub plugin_type: PluginType,
    /// One line about what it does.
    #[serde(default)]
    pub description: String,
    /// Who wrote it.
    #[serde(default)]
    pub author: String,
    /// Start priority; defaults to [`PluginType::default_priority`].
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Plugins that must be started before this one.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Free-form capability tags (`"spiking"`, `"stdp"`, …) used for look-up by capability.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl PluginMetadata {
    /// Metadata with the given identity and everything else empty or default.
    pub fn new(name: impl Into<String>, version: Version, plugin_type: PluginType) -> Self {
        Self {
            name: name.into(),
            version,
            plugin_type,
            description: String::new(),
            author: String::new(),
            priority: None,
            dependencies: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    /// Set the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Set the author.
    pub fn with_author(mut self, author: impl Into<String>) -> Self {
        self.author = author.into();
        self
    }

    /// Override the type's default priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Add a dependency.
    pub fn with_dependency(mut self, dependency: Dependency) -> Self {
        self.dependencies.push(dependency);
        self
    }

    /// Add a capability tag.
    pub fn with_capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// The priority in effect (explicit, or the type's default).
    pub fn effective_priority(&self) -> Priority {
        self.priority
            .unwrap_or_else(|| self.plugin_type.default_priority())
    }

    /// `true` if the plugin lists `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_type_round_trips_through_str_and_code() {
        for t in PluginType::ALL {
            assert_eq!(t.as_str().parse::<PluginType>().unwrap(), t);
            assert_eq!(PluginType::from_code(t.code()), Some(t));
        }
        assert_eq!("NEURON".parse::<PluginType>().unwrap(), PluginType::Neuron);
        let err = "synapse".parse::<PluginType>().unwrap_err();
        assert!(err.to_string().contains("synapse"));
        assert_eq!(PluginType::from_code(7), None);
    }

    #[test]
    fn default_priority_follows_type_and_can_be_overridden() {
        let m = PluginMetadata::new("Zenoh", Version::new(1, 0, 0), PluginType::Communication);
        assert_eq!(m.effective_priority(), Priority::INFRASTRUCTURE);
        let m = PluginMetadata::new("LIFNeuron", Version::new(1, 0, 0), PluginType::Neuron);
        assert_eq!(m.effective_priority(), Priority::BUSINESS);
        let m = m.with_priority(Priority::SECURITY);
        assert_eq!(m.effective_priority(), Priority(20));
    }

    #[test]
    fn metadata_reads_from_json_with_defaults() {
        let m: PluginMetadata = serde_json::from_str(
            r#"{"name":"Foo","version":"1.2.3","type":"encoder",
                "dependencies":[{"name":"Bar","version":"^0.4"}],
                "capabilities":["rate"]}"#,
        )
        .unwrap();
        assert_eq!(m.plugin_type, PluginType::Encoder);
        assert_eq!(m.version, Version::new(1, 2, 3));
        assert!(m.dependencies[0].version.matches(&Version::new(0, 4, 9)));
        assert!(!m.dependencies[0].version.matches(&Version::new(0, 5, 0)));
        assert!(m.has_capability("rate"));
        assert_eq!(m.priority, None);
    }
}
