//! [`ExternalLayer`]: a layer living in an external NEURON plugin, stepped through
//! archived `SpikeTensor`s so a pipeline node cannot tell it from a built-in layer.
//!
//! Per-step cost on the host side: the input currents are copied into a reused
//! analog `SpikeTensor`, archived into a reused 16-byte-aligned buffer, and the
//! plugin's archived bitset output is validated in place in another reused buffer
//! and copied into the caller's spike words. No allocation after the first step
//! (checked by the `external_layer_step_does_not_allocate_on_the_host_side` test).
//! A panic in the plugin faults the layer: it outputs no spikes from then on and
//! [`NeuronLayer::fault`] says why.

use std::sync::OnceLock;

use evospike_plugin_api::abi::{self, Layer, NeuronVTable, RawBuf};
use evospike_plugin_api::{NeuronLayer, PluginError, SpikeWords};
use evospike_schemas::{SpikeBody, SpikeTensor, ALIGNMENT};
use rkyv::util::AlignedVec;

use super::boundary::{outcome, take};

/// A layer living in an external plugin, stepped through archived `SpikeTensor`s.
pub struct ExternalLayer {
    plugin: String,
    vt: &'static NeuronVTable,
    free_buf: unsafe extern "C" fn(RawBuf),
    layer: Layer,
    len: usize,
    input: SpikeTensor,
    input_buf: AlignedVec<ALIGNMENT>,
    output_buf: AlignedVec<ALIGNMENT>,
    step: u64,
    fault: OnceLock<PluginError>,
    panicked: OnceLock<String>,
}

// SAFETY: the plugin-side layer is a boxed `dyn NeuronLayer` (which is Send) and is
// only reached through `&mut self` (step, reset) or `&self` (state).
unsafe impl Send for ExternalLayer {}

impl std::fmt::Debug for ExternalLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalLayer")
            .field("plugin", &self.plugin)
            .field("len", &self.len)
            .field("step", &self.step)
            .field("fault", &self.fault.get())
            .finish()
    }
}

/// Room left in the output buffer for the source name the plugin writes.
const OUTPUT_SLACK: usize = 256;

impl ExternalLayer {
    pub(super) fn new(
        plugin: String,
        vt: &'static NeuronVTable,
        free_buf: unsafe extern "C" fn(RawBuf),
        layer: Layer,
        len: usize,
    ) -> Result<Self, PluginError> {
        let shape = u32::try_from(len).map_err(|_| {
            PluginError::invalid_parameter(&plugin, "num_neurons", "more than u32::MAX neurons")
        })?;
        let schema_error =
            |e: evospike_schemas::SchemaError| PluginError::failed(&plugin, e.to_string());
        let input = SpikeTensor::builder("host")
            .shape([shape])
            .analog(vec![0.0; len])
            .map_err(schema_error)?;
        let output_len = SpikeTensor::zeros(plugin.clone(), &[shape])
            .map_err(schema_error)?
            .serialized_len()
            + OUTPUT_SLACK;
        let mut input_buf = AlignedVec::with_capacity(input.serialized_len());
        input_buf.resize(input.serialized_len(), 0);
        let mut output_buf = AlignedVec::with_capacity(output_len);
        output_buf.resize(output_len, 0);
        Ok(Self {
            plugin,
            vt,
            free_buf,
            layer,
            len,
            input,
            input_buf,
            output_buf,
            step: 0,
            fault: OnceLock::new(),
            panicked: OnceLock::new(),
        })
    }

    fn set_fault(&self, error: PluginError) {
        let _ = self.fault.set(error);
    }

    /// Runs one plugin step; returns the output bytes used.
    fn call_step(&mut self, input_len: usize) -> Result<usize, PluginError> {
        for _attempt in 0..2 {
            let mut used = 0usize;
            let mut err = RawBuf::EMPTY;
            // SAFETY: live layer, exclusive (`&mut self`); both buffers are host-owned,
            // aligned, and outlive the call; `used`/`err` are valid out-pointers.
            let status = unsafe {
                (self.vt.step)(
                    self.layer,
                    self.input_buf.as_ptr(),
                    input_len,
                    self.output_buf.as_mut_ptr(),
                    self.output_buf.len(),
                    &mut used,
                    &mut err,
                )
            };
            if status == abi::STATUS_ERROR && used > self.output_buf.len() {
                // The plugin needs a bigger buffer (a long source name): grow once.
                let _ = take(self.free_buf, err);
                self.output_buf.resize(used, 0);
                continue;
            }
            outcome(
                self.free_buf,
                &self.plugin,
                "step",
                status,
                err,
                &self.panicked,
            )?;
            return Ok(used);
        }
        Err(PluginError::failed(
            &self.plugin,
            "output buffer still too small after growing it",
        ))
    }

    fn try_step(&mut self, input: &[f32], spikes: &mut SpikeWords) -> Result<(), PluginError> {
        if input.len() != self.len {
            return Err(PluginError::failed(
                &self.plugin,
                format!(
                    "step input has {} values, the layer has {} neurons",
                    input.len(),
                    self.len
                ),
            ));
        }
        if let SpikeBody::Analog(values) = &mut self.input.body {
            values.copy_from_slice(input);
        }
        self.input.header.step = self.step;
        self.step += 1;
        let written = match self.input.write_into(&mut self.input_buf) {
            Ok(n) => n,
            Err(too_small) => {
                self.input_buf.resize(too_small.needed, 0);
                self.input
                    .write_into(&mut self.input_buf)
                    .map_err(|e| PluginError::failed(&self.plugin, e.to_string()))?
            }
        };
        let used = self.call_step(written)?;
        let view = SpikeTensor::view(&self.output_buf[..used]).map_err(|e| {
            PluginError::failed(
                &self.plugin,
                format!("step output is not a valid spike tensor: {e}"),
            )
        })?;
        let words = view.bitset().ok_or_else(|| {
            PluginError::failed(
                &self.plugin,
                format!(
                    "step output must be a bitset, got {}",
                    view.encoding().name()
                ),
            )
        })?;
        if words.len() != spikes.len() || view.len() != self.len {
            return Err(PluginError::failed(
                &self.plugin,
                format!(
                    "step output has {} elements, the layer has {}",
                    view.len(),
                    self.len
                ),
            ));
        }
        spikes.copy_from_slice(words);
        Ok(())
    }
}

impl NeuronLayer for ExternalLayer {
    fn len(&self) -> usize {
        self.len
    }

    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        if self.fault.get().is_some() {
            spikes.fill(0);
            return;
        }
        if let Err(e) = self.try_step(input, spikes) {
            spikes.fill(0);
            self.set_fault(e);
        }
    }

    fn reset(&mut self) {
        if self.fault.get().is_some() {
            return;
        }
        self.step = 0;
        let mut err = RawBuf::EMPTY;
        // SAFETY: live layer, exclusive (`&mut self`).
        let status = unsafe { (self.vt.reset)(self.layer, &mut err) };
        if let Err(e) = outcome(
            self.free_buf,
            &self.plugin,
            "reset",
            status,
            err,
            &self.panicked,
        ) {
            self.set_fault(e);
        }
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        if self.fault.get().is_some() {
            return None;
        }
        let mut ptr: *const f32 = std::ptr::null();
        let mut len = 0usize;
        let mut err = RawBuf::EMPTY;
        // SAFETY: live layer; `name` outlives the call; valid out-pointers.
        let status = unsafe {
            (self.vt.state)(
                self.layer,
                name.as_ptr(),
                name.len(),
                &mut ptr,
                &mut len,
                &mut err,
            )
        };
        if let Err(e) = outcome(
            self.free_buf,
            &self.plugin,
            "state",
            status,
            err,
            &self.panicked,
        ) {
            self.set_fault(e);
            return None;
        }
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the plugin guarantees `ptr`/`len` stay valid until the next
        // step/reset/destroy of this layer, which all need `&mut self`: the returned
        // borrow of `self` rules them out while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    fn fault(&self) -> Option<&PluginError> {
        self.fault.get()
    }
}

impl Drop for ExternalLayer {
    fn drop(&mut self) {
        if self.panicked.get().is_none() && !self.layer.is_null() {
            // SAFETY: the layer came from `create_layer` and is destroyed exactly once.
            unsafe { (self.vt.destroy_layer)(self.layer) };
        }
    }
}
