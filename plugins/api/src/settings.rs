//! Reading a plugin's config section into a typed struct, with errors that
//! name the plugin and the key (for [`Plugin::initialize`](crate::Plugin::initialize)).

use serde::de::DeserializeOwned;

use crate::{PluginConfig, PluginError};

/// `config` as `T`. A key not in `known` is refused by name, with the accepted
/// keys; a value of the wrong type by its path.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Gain { gain: f64 }
/// let mut config = evospike_plugin_api::PluginConfig::new();
/// config.insert("gian".into(), serde_json::json!(2.0));
/// let err = evospike_plugin_api::settings::read::<Gain>("Amp", &["gain"], &config).unwrap_err();
/// assert_eq!(err.to_string(), "plugin `Amp`: invalid config setting `gian`: unknown setting (expected one of: gain)");
/// ```
pub fn read<T: DeserializeOwned>(
    plugin: &str,
    known: &[&str],
    config: &PluginConfig,
) -> Result<T, PluginError> {
    if let Some(key) = config.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(PluginError::invalid_config(
            plugin,
            key,
            format!("unknown setting (expected one of: {})", known.join(", ")),
        ));
    }
    let value = serde_json::Value::Object(config.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        PluginError::invalid_config(plugin, key, e.into_inner().to_string())
    })
}
