//! The `plugins` section of a node's config file.
//!
//! ```toml
//! [plugins.LIFNeuron]
//! enabled = true        # optional, default true
//! tau_ms = 20.0         # the plugin's own settings, validated by its `initialize`
//!
//! [plugins.Recorder]
//! enabled = false       # never initialized
//! ```
//!
//! Plugins without a section are enabled with empty settings. A section for a
//! plugin that is not registered is an error (a typo would otherwise go unnoticed).

use std::collections::BTreeMap;

use evospike_plugin_api::PluginConfig;
use serde_json::Value;

use crate::error::ConfigError;

/// One `plugins.<name>` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSection {
    /// `plugins.<name>.enabled` (default true).
    pub enabled: bool,
    /// Every other key: the plugin's own settings.
    pub settings: PluginConfig,
}

impl Default for PluginSection {
    fn default() -> Self {
        Self {
            enabled: true,
            settings: PluginConfig::new(),
        }
    }
}

/// All `plugins.<name>` sections of a node config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginsConfig {
    sections: BTreeMap<String, PluginSection>,
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a table".into(),
    }
}

impl PluginsConfig {
    /// No sections: every plugin enabled with empty settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read the `plugins` table of a whole node config in TOML. A config without
    /// a `plugins` table gives an empty [`PluginsConfig`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            reason: e.to_string(),
        })?;
        let value = serde_json::to_value(table).map_err(|e| ConfigError::Parse {
            reason: e.to_string(),
        })?;
        Self::from_node_config(&value)
    }

    /// Read the `plugins` key of a whole node config already parsed (from YAML,
    /// JSON, TOML, …) into a JSON value.
    pub fn from_node_config(config: &Value) -> Result<Self, ConfigError> {
        match config {
            Value::Object(map) => match map.get("plugins") {
                Some(plugins) => Self::from_plugins_value(plugins),
                None => Ok(Self::new()),
            },
            other => Err(ConfigError::NotATable {
                path: "<node config>".into(),
                found: kind_of(other),
            }),
        }
    }

    /// Read the value of the `plugins` key itself.
    pub fn from_plugins_value(plugins: &Value) -> Result<Self, ConfigError> {
        let Value::Object(map) = plugins else {
            return Err(ConfigError::NotATable {
                path: "plugins".into(),
                found: kind_of(plugins),
            });
        };
        let mut sections = BTreeMap::new();
        for (name, section) in map {
            let Value::Object(section) = section else {
                return Err(ConfigError::NotATable {
                    path: format!("plugins.{name}"),
                    found: kind_of(section),
                });
            };
            let mut settings = section.clone();
            let enabled = match settings.remove("enabled") {
                None => true,
                Some(Value::Bool(b)) => b,
                Some(other) => {
                    return Err(ConfigError::EnabledNotBool {
                        plugin: name.clone(),
                        found: kind_of(&other),
                    })
                }
            };
            sections.insert(name.clone(), PluginSection { enabled, settings });
        }
        Ok(Self { sections })
    }

    /// Set (or replace) the section of `name`.
    pub fn set(&mut self, name: impl Into<String>, section: PluginSection) {
        self.sections.insert(name.into(), section);
    }

    /// Whether plugin `name` is enabled (true without a section).
    pub fn is_enabled(&self, name: &str) -> bool {
        self.sections.get(name).is_none_or(|s| s.enabled)
    }

    /// The settings of plugin `name` (empty without a section).
    pub fn settings(&self, name: &str) -> PluginConfig {
        self.sections
            .get(name)
            .map(|s| s.settings.clone())
            .unwrap_or_default()
    }

    /// Names that have a section.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Error if a section names a plugin not in `registered`.
    pub fn check_known<'a>(
        &self,
        registered: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConfigError> {
        let mut all: Vec<&str> = registered.into_iter().collect();
        all.sort_unstable();
        for name in self.names() {
            if !all.contains(&name) {
                return Err(ConfigError::UnknownPlugin {
                    plugin: name.to_owned(),
                    registered: all.join(", "),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_enabled_and_settings_from_toml() {
        let cfg = PluginsConfig::from_toml_str(
            r#"
            name = "layer1"
            [plugins.LIFNeuron]
            tau_ms = 20.0
            [plugins.Recorder]
            enabled = false
            "#,
        )
        .unwrap();
        assert!(cfg.is_enabled("LIFNeuron"));
        assert!(!cfg.is_enabled("Recorder"));
        assert!(cfg.is_enabled("NotMentioned"));
        assert_eq!(cfg.settings("LIFNeuron").get("tau_ms"), Some(&json!(20.0)));
        assert!(!cfg.settings("Recorder").contains_key("enabled"));
    }

    #[test]
    fn bad_sections_give_errors_naming_the_key() {
        let err = PluginsConfig::from_toml_str("[plugins.X]\nenabled = \"yes\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`plugins.X.enabled` must be true or false, found the string \"yes\""
        );
        let err = PluginsConfig::from_toml_str("plugins = { X = 3 }").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`plugins.X` must be a table, found the number 3"
        );
        let err = PluginsConfig::from_toml_str("[plugins").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }));
        let err = PluginsConfig::from_node_config(&json!({"plugins": [1]})).unwrap_err();
        assert_eq!(err.to_string(), "`plugins` must be a table, found an array");
    }

    #[test]
    fn unknown_section_is_reported_with_the_known_names() {
        let cfg = PluginsConfig::from_node_config(&json!({"plugins": {"LIFNeuorn": {}}})).unwrap();
        let err = cfg.check_known(["STDP", "LIFNeuron"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config has a section `plugins.LIFNeuorn` but no plugin of that name is registered (registered: LIFNeuron, STDP)"
        );
        assert!(cfg.check_known(["LIFNeuorn"]).is_ok());
    }
}
