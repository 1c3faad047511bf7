//! Reading a plugin's settings into a typed struct, with errors that name the key.

use evospike_plugin_api::{PluginConfig, PluginError};
use serde::de::DeserializeOwned;

/// `config` as `T`. A key not in `known` is refused by name (with the accepted
/// keys), a value of the wrong type by its path.
pub(crate) fn read<T: DeserializeOwned>(
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
