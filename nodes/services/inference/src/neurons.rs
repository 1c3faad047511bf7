//! The NEURON plugins that build a model's layers: the built-in ones plus those
//! found in the node's plugin folders, activated on first use.

use std::path::Path;
use std::sync::Mutex;

use evospike_plugin_api::{LayerDef, LayerSpec, NeuronLayer, PluginError, PluginType};
use evospike_plugin_host::{HostError, PluginManager};

/// Builds layers with the NEURON plugin each layer names.
#[derive(Debug)]
pub struct Neurons {
    manager: Mutex<PluginManager>,
}

impl Neurons {
    /// The built-in plugins and those in `plugin_dirs`.
    ///
    /// # Errors
    /// The plugin folders cannot be read.
    pub fn new<P: AsRef<Path>>(plugin_dirs: &[P]) -> Result<Neurons, HostError> {
        let manager = evospike_plugins::plugin_manager(plugin_dirs)?;
        for err in manager.load_errors() {
            tracing::warn!(%err, "external plugin not loaded");
        }
        Ok(Neurons {
            manager: Mutex::new(manager),
        })
    }

    /// A layer for `def`, from its NEURON plugin (activated if it is not yet).
    ///
    /// # Errors
    /// The plugin is unknown, cannot be activated, or refuses the layer.
    pub fn layer(
        &self,
        def: &LayerDef,
        spec: &LayerSpec,
    ) -> Result<Box<dyn NeuronLayer>, PluginError> {
        let mut manager = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        let name = def.neuron.as_str();
        if manager.neuron(name).is_err() {
            manager
                .initialize_plugin(PluginType::Neuron, name)
                .and_then(|()| manager.activate_plugin(PluginType::Neuron, name))
                .map_err(|e| PluginError::failed(name, e.to_string()))?;
        }
        manager
            .neuron(name)
            .map_err(|e| PluginError::failed(name, e.to_string()))?
            .create_layer(spec)
    }
}
