//! The NEURON plugins that build a model's layers (and the ENCODER plugins that
//! feed a distributed model's first layer node): the built-in ones plus those
//! found in the node's plugin folders, activated on first use.

use std::path::Path;
use std::sync::Mutex;

use evospike_plugin_api::{
    Encoder, EncoderSpec, LayerDef, LayerSpec, NeuronLayer, PluginError, PluginType,
};
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
        let name = def.neuron.as_str();
        let manager = self.active(PluginType::Neuron, name)?;
        manager
            .neuron(name)
            .map_err(|e| PluginError::failed(name, e.to_string()))?
            .create_layer(spec)
    }

    /// An encoder of ENCODER plugin `name` (activated if it is not yet).
    ///
    /// # Errors
    /// The plugin is unknown, cannot be activated, or refuses the spec.
    pub fn encoder(&self, name: &str, spec: &EncoderSpec) -> Result<Box<dyn Encoder>, PluginError> {
        let manager = self.active(PluginType::Encoder, name)?;
        manager
            .encoder(name)
            .map_err(|e| PluginError::failed(name, e.to_string()))?
            .create_encoder(spec)
    }

    /// The manager, with plugin `name` of `family` active.
    fn active(
        &self,
        family: PluginType,
        name: &str,
    ) -> Result<std::sync::MutexGuard<'_, PluginManager>, PluginError> {
        let mut manager = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        let active = match family {
            PluginType::Encoder => manager.encoder(name).is_ok(),
            _ => manager.neuron(name).is_ok(),
        };
        if !active {
            manager
                .initialize_plugin(family, name)
                .and_then(|()| manager.activate_plugin(family, name))
                .map_err(|e| PluginError::failed(name, e.to_string()))?;
        }
        Ok(manager)
    }
}
