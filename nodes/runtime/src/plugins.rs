//! The node's plugin manager: built-ins (the `evospike-plugins` bundle) plus the
//! plugins found in its plugin folders, configured from the node's `plugins`
//! parameter and its launch-file plugin list.

use evospike_plugin_api::{PluginStatus, PluginType};
use evospike_plugin_host::{PluginManager, PluginSection, PluginsConfig};
use evospike_schemas::proto::PluginHealth;
use serde_json::{Map, Value};

use crate::args::ArgsError;
use crate::node::Node;
use crate::NodeError;

/// Plugin settings by plugin name, `{LIFNeuron: {tau_ms: 10}, X: {enabled: false}}`:
/// the `plugins` parameter of kinds that use plugins.
pub type PluginSettings = Map<String, Value>;

fn entry_error(entry: &Value, problem: &'static str) -> NodeError {
    NodeError::Args(ArgsError::PluginEntry {
        entry: entry.to_string(),
        problem,
    })
}

/// Plugin settings of a node: the `plugins` parameter, then the launch file's
/// plugin list (names, or objects with a `name`).
fn plugins_config(node: &Node, settings: &PluginSettings) -> Result<PluginsConfig, NodeError> {
    let mut config = PluginsConfig::from_plugins_value(&Value::Object(settings.clone()))
        .map_err(|err| NodeError::plugin("configure the plugins", err))?;
    for entry in node.plugin_entries() {
        match entry {
            Value::String(_) => {}
            Value::Object(map) => {
                let name = map
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| entry_error(entry, "has no \"name\""))?;
                let mut settings = map.clone();
                settings.remove("name");
                let enabled = match settings.remove("enabled") {
                    None => true,
                    Some(Value::Bool(enabled)) => enabled,
                    Some(_) => return Err(entry_error(entry, "`enabled` must be true or false")),
                };
                config.set(name, PluginSection { enabled, settings });
            }
            other => return Err(entry_error(other, "must be a name or a mapping")),
        }
    }
    Ok(config)
}

/// Registers built-in and external plugins and applies the node's plugin settings.
pub(crate) fn manager(node: &Node, settings: &PluginSettings) -> Result<PluginManager, NodeError> {
    let mut manager = evospike_plugins::plugin_manager(node.plugin_dirs())
        .map_err(|err| NodeError::plugin("discover the plugins", err))?;
    for err in manager.load_errors() {
        tracing::warn!(%err, "external plugin not loaded");
    }
    manager
        .set_config(plugins_config(node, settings)?)
        .map_err(|err| NodeError::plugin("configure the plugins", err))?;
    Ok(manager)
}

/// Initializes and activates one plugin (a no-op for a plugin already active).
pub(crate) fn activate(
    manager: &mut PluginManager,
    plugin_type: PluginType,
    name: &str,
) -> Result<(), NodeError> {
    manager
        .initialize_plugin(plugin_type, name)
        .map_err(|err| {
            NodeError::plugin(format!("initialize {plugin_type} plugin `{name}`"), err)
        })?;
    manager
        .activate_plugin(plugin_type, name)
        .map_err(|err| NodeError::plugin(format!("activate {plugin_type} plugin `{name}`"), err))
}

/// The health of the active plugins, for the node's health reply.
pub(crate) fn health(manager: &PluginManager) -> Vec<PluginHealth> {
    manager
        .health_all()
        .into_iter()
        .filter(|report| report.status != PluginStatus::Discovered)
        .map(|report| PluginHealth {
            name: report.name.clone(),
            plugin_type: manager
                .registry()
                .find_name(&report.name)
                .map(|e| e.metadata().plugin_type.to_string())
                .unwrap_or_default(),
            status: report.status.to_string(),
            version: report.version.to_string(),
            priority: report.priority.0,
            enabled: report.enabled,
            detail: format!("{:?}", report.state),
        })
        .collect()
}
