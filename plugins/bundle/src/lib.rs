//! The built-in plugins of evospike, in one list.
//!
//! The plugin host (`evospike-plugin-host`) knows no plugin by name; a program
//! links the plugin crates it wants and registers them, as `zenohd` links its
//! plugins. This crate is that list for the evospike binaries: every built-in
//! NEURON, ENCODER, PLASTICITY and LEARNING plugin ([`builtin_plugins`]), and
//! [`plugin_manager`], a manager with those plus the external plugins found in
//! plugin folders. A new built-in family is one more crate in
//! [`builtin_plugins`]; neither the host nor the node runtime changes.
//!
//! ```
//! use evospike_plugin_api::PluginType;
//!
//! let no_dirs: [&std::path::Path; 0] = [];
//! let manager = evospike_plugins::plugin_manager(&no_dirs).unwrap();
//! assert!(manager.registry().neuron("LIFNeuron").is_some());
//! assert!(manager.get_plugin(PluginType::Encoder, "RateEncoder").is_ok());
//! ```
#![warn(missing_docs)]

use std::path::Path;

use evospike_plugin_api::Plugin;
use evospike_plugin_host::{initialize_plugin_system, HostError, PluginManager};

/// Every built-in plugin, fresh and uninitialized.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    let mut all = Vec::new();
    all.extend(evospike_neuron::builtin_plugins());
    all.extend(evospike_encoder::builtin_plugins());
    all.extend(evospike_plasticity::builtin_plugins());
    all.extend(evospike_learning::builtin_plugins());
    all
}

/// A plugin manager with every built-in plugin registered and the external
/// plugins of `plugin_dirs` discovered (see [`initialize_plugin_system`]).
pub fn plugin_manager<P: AsRef<Path>>(plugin_dirs: &[P]) -> Result<PluginManager, HostError> {
    initialize_plugin_system(builtin_plugins(), plugin_dirs)
}
