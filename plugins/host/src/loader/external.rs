//! [`ExternalPlugin`]: the host-side adapter that makes an external plugin look
//! exactly like a built-in one. It implements [`Plugin`] over the plugin's vtable,
//! and [`NeuronPlugin`] for NEURON plugins (layers are [`ExternalLayer`]s).
//!
//! Every call goes through the plugin's `extern "C"` shims, which catch panics and
//! return a status code. A panic poisons the plugin: the host never calls into it
//! again, never drops what it owns (its state may be broken), and reports it as
//! failed with the panic message.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use evospike_plugin_api::abi::{Instance, Layer, NeuronVTable, PluginVTable, RawBuf};
use evospike_plugin_api::{
    LayerSpec, NeuronLayer, NeuronPlugin, Plugin, PluginConfig, PluginError, PluginHealth,
    PluginMetadata,
};

use super::boundary::{outcome, poisoned_error, take};
use super::layer::ExternalLayer;
use super::library::{self, OpenedLibrary};
use super::manifest::Discovered;
use crate::error::LoadError;

/// An external plugin loaded from a cdylib.
pub struct ExternalPlugin {
    metadata: PluginMetadata,
    library: PathBuf,
    vtable: &'static PluginVTable,
    neuron: Option<&'static NeuronVTable>,
    instance: Instance,
    poisoned: OnceLock<String>,
}

// SAFETY: the instance is a boxed plugin object whose type implements `Plugin`
// (Send + Sync, enforced by `export_plugin!`); `&self` methods only reach its
// `&self` methods and `&mut self` methods its `&mut self` ones.
unsafe impl Send for ExternalPlugin {}
// SAFETY: see `Send`.
unsafe impl Sync for ExternalPlugin {}

impl std::fmt::Debug for ExternalPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalPlugin")
            .field("name", &self.metadata.name)
            .field("library", &self.library)
            .field("poisoned", &self.poisoned.get())
            .finish()
    }
}

impl ExternalPlugin {
    /// Load the plugin `discovered` describes: open a fresh copy of its library,
    /// check the header, construct the plugin object and compare its metadata with
    /// the manifest. Metadata (and so dependencies) come from the manifest.
    pub fn load(discovered: &Discovered) -> Result<Self, LoadError> {
        let expected = &discovered.manifest.metadata;
        let path = &discovered.library_path;
        let OpenedLibrary { vtable, neuron } = library::open(path, expected.plugin_type)?;
        let poisoned = OnceLock::new();
        let plugin_error = |source| LoadError::Plugin {
            path: path.clone(),
            source,
        };

        let mut instance: Instance = std::ptr::null_mut();
        let mut err = RawBuf::EMPTY;
        // SAFETY: `create` writes the instance and, on failure, an error buffer.
        let status = unsafe { (vtable.create)(&mut instance, &mut err) };
        outcome(
            vtable.free_buf,
            &expected.name,
            "create",
            status,
            err,
            &poisoned,
        )
        .map_err(plugin_error)?;
        let plugin = Self {
            metadata: expected.clone(),
            library: path.clone(),
            vtable,
            neuron,
            instance,
            poisoned,
        };

        let reported = plugin.reported_metadata().map_err(plugin_error)?;
        let mismatch = |field, manifest: String, library: String| LoadError::ManifestMismatch {
            path: path.clone(),
            field,
            manifest,
            library,
        };
        if reported.name != expected.name {
            return Err(mismatch("name", expected.name.clone(), reported.name));
        }
        if reported.version != expected.version {
            return Err(mismatch(
                "version",
                expected.version.to_string(),
                reported.version.to_string(),
            ));
        }
        Ok(plugin)
    }

    /// The library file this plugin was loaded from (not the private copy).
    pub fn library(&self) -> &Path {
        &self.library
    }

    fn call(&self, operation: &str, f: impl FnOnce(*mut RawBuf) -> i32) -> Result<(), PluginError> {
        if let Some(why) = self.poisoned.get() {
            return Err(poisoned_error(&self.metadata.name, operation, why));
        }
        let mut err = RawBuf::EMPTY;
        let status = f(&mut err);
        outcome(
            self.vtable.free_buf,
            &self.metadata.name,
            operation,
            status,
            err,
            &self.poisoned,
        )
    }

    fn call_with_output(
        &self,
        operation: &str,
        f: impl FnOnce(*mut RawBuf, *mut RawBuf) -> i32,
    ) -> Result<Vec<u8>, PluginError> {
        let mut out = RawBuf::EMPTY;
        self.call(operation, |err| f(&mut out, err))?;
        Ok(take(self.vtable.free_buf, out))
    }

    fn reported_metadata(&self) -> Result<PluginMetadata, PluginError> {
        let json = self.call_with_output("metadata", |out, err| {
            // SAFETY: live instance, valid out-pointers.
            unsafe { (self.vtable.metadata)(self.instance, out, err) }
        })?;
        serde_json::from_slice(&json).map_err(|e| {
            PluginError::failed(
                &self.metadata.name,
                format!("metadata is not valid JSON metadata: {e}"),
            )
        })
    }

    fn json_bytes(
        &self,
        what: &str,
        value: &impl serde::Serialize,
    ) -> Result<Vec<u8>, PluginError> {
        serde_json::to_vec(value).map_err(|e| {
            PluginError::failed(&self.metadata.name, format!("cannot encode {what}: {e}"))
        })
    }
}

impl Drop for ExternalPlugin {
    fn drop(&mut self) {
        // A poisoned plugin's state may be broken: leak it rather than run its Drop.
        if self.poisoned.get().is_none() && !self.instance.is_null() {
            // SAFETY: the instance came from `create` and is destroyed exactly once.
            unsafe { (self.vtable.destroy)(self.instance) };
        }
    }
}

impl Plugin for ExternalPlugin {
    fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        let json = self.json_bytes("config", config)?;
        self.call("initialize", |err| {
            // SAFETY: exclusive access to a live instance; `json` outlives the call.
            unsafe { (self.vtable.initialize)(self.instance, json.as_ptr(), json.len(), err) }
        })
    }

    fn activate(&mut self) -> Result<(), PluginError> {
        // SAFETY: exclusive access to a live instance.
        self.call("activate", |err| unsafe {
            (self.vtable.activate)(self.instance, err)
        })
    }

    fn execute(&mut self, input: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        let json = self.json_bytes("execute input", input)?;
        let reply = self.call_with_output("execute", |out, err| {
            // SAFETY: exclusive access to a live instance; `json` outlives the call.
            unsafe { (self.vtable.execute)(self.instance, json.as_ptr(), json.len(), out, err) }
        })?;
        serde_json::from_slice(&reply).map_err(|e| {
            PluginError::failed(
                &self.metadata.name,
                format!("execute reply is not JSON: {e}"),
            )
        })
    }

    fn deactivate(&mut self) -> Result<(), PluginError> {
        // SAFETY: exclusive access to a live instance.
        self.call("deactivate", |err| unsafe {
            (self.vtable.deactivate)(self.instance, err)
        })
    }

    fn health_check(&self) -> PluginHealth {
        let reply = self.call_with_output("health_check", |out, err| {
            // SAFETY: live instance, valid out-pointers.
            unsafe { (self.vtable.health_check)(self.instance, out, err) }
        });
        match reply.map(|json| serde_json::from_slice::<PluginHealth>(&json)) {
            Ok(Ok(health)) => health,
            Ok(Err(e)) => PluginHealth::Unhealthy(format!("health reply is not valid: {e}")),
            Err(e) => PluginHealth::Unhealthy(e.to_string()),
        }
    }

    fn as_neuron(&self) -> Option<&dyn NeuronPlugin> {
        self.neuron.is_some().then_some(self as &dyn NeuronPlugin)
    }
}

impl NeuronPlugin for ExternalPlugin {
    fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
        let name = &self.metadata.name;
        let vt = self
            .neuron
            .ok_or_else(|| PluginError::unsupported(name, "create_layer"))?;
        let json = self.json_bytes("layer spec", spec)?;
        let mut layer: Layer = std::ptr::null_mut();
        let mut len = 0usize;
        self.call("create_layer", |err| {
            // SAFETY: live instance; `json` outlives the call; valid out-pointers.
            unsafe {
                (vt.create_layer)(
                    self.instance,
                    json.as_ptr(),
                    json.len(),
                    &mut layer,
                    &mut len,
                    err,
                )
            }
        })?;
        match ExternalLayer::new(name.clone(), vt, self.vtable.free_buf, layer, len) {
            Ok(adapter) => Ok(Box::new(adapter)),
            Err(e) => {
                // SAFETY: the layer came from `create_layer` and no adapter owns it.
                unsafe { (vt.destroy_layer)(layer) };
                Err(e)
            }
        }
    }
}
