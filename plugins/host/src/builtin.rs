//! The plugins compiled into the host, from the built-in plugin crates
//! (`plugins/neuron`, `plugins/encoder`, `plugins/plasticity`).

use evospike_plugin_api::Plugin;

/// Every built-in plugin, fresh and uninitialized.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    let mut all = Vec::new();
    all.extend(evospike_neuron::builtin_plugins());
    all.extend(evospike_encoder::builtin_plugins());
    all.extend(evospike_plasticity::builtin_plugins());
    all.extend(evospike_learning::builtin_plugins());
    all
}
