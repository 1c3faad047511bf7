//! The plugin side of the ABI, exercised in-process: `export_plugin!` on a toy
//! neuron plugin, then every vtable function called the way the host calls it.

use evospike_plugin_api::abi::{self, Instance, Layer, PluginHeader, RawBuf};
use evospike_plugin_api::{
    export_plugin, LayerSpec, NeuronLayer, NeuronPlugin, Plugin, PluginError, PluginMetadata,
    PluginType, SpikeWords,
};
use evospike_schemas::{SpikeTensor, ALIGNMENT};
use rkyv::util::AlignedVec;
use semver::Version;
use serde_json::{json, Value};

#[derive(Debug)]
struct Toy {
    meta: PluginMetadata,
}

impl Plugin for Toy {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }
    fn execute(&mut self, input: &Value) -> Result<Value, PluginError> {
        if input == "panic" {
            panic!("toy panics on request");
        }
        Ok(json!({ "echo": input }))
    }
    fn as_neuron(&self) -> Option<&dyn NeuronPlugin> {
        Some(self)
    }
}

impl NeuronPlugin for Toy {
    fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
        Ok(Box::new(Threshold(vec![0.0; spec.num_neurons])))
    }
}

/// Spikes where the input exceeds 0.5; remembers the last input as state "x".
#[derive(Debug)]
struct Threshold(Vec<f32>);

impl NeuronLayer for Threshold {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        self.0.copy_from_slice(input);
        for (i, x) in input.iter().enumerate() {
            if *x > 0.5 {
                spikes[i / 64] |= 1 << (i % 64);
            }
        }
    }
    fn reset(&mut self) {
        self.0.fill(0.0);
    }
    fn state(&self, name: &str) -> Option<&[f32]> {
        (name == "x").then_some(&self.0[..])
    }
}

export_plugin!(neuron: Toy => Toy {
    meta: PluginMetadata::new("Toy", Version::new(0, 3, 0), PluginType::Neuron),
});

fn header() -> &'static PluginHeader {
    // SAFETY: the entry function returns a pointer to a static header.
    unsafe { &*evospike_plugin_entry_v1() }
}

/// Copy a plugin buffer out and free it through the vtable, as the host does.
fn take(buf: RawBuf) -> Vec<u8> {
    // SAFETY: the buffer was just written by a shim of this plugin.
    let bytes = unsafe { buf.as_slice() }.to_vec();
    // SAFETY: our buffer, freed once.
    unsafe { (vtable().free_buf)(buf) };
    bytes
}

fn vtable() -> &'static abi::PluginVTable {
    // SAFETY: the macro's header points at a static vtable.
    unsafe { &*header().vtable }
}

fn create() -> Instance {
    let mut instance: Instance = std::ptr::null_mut();
    let mut err = RawBuf::EMPTY;
    // SAFETY: valid out-pointers.
    let status = unsafe { (vtable().create)(&mut instance, &mut err) };
    assert_eq!(status, abi::STATUS_OK);
    instance
}

#[test]
fn header_carries_this_builds_identity() {
    let h = header();
    assert_eq!(h.magic, abi::MAGIC);
    assert_eq!((h.abi_major, h.abi_minor), (abi::ABI_MAJOR, abi::ABI_MINOR));
    assert_eq!(
        PluginType::from_code(h.plugin_type),
        Some(PluginType::Neuron)
    );
    // SAFETY: static strings.
    let (api, rustc) = unsafe {
        (
            h.api_version.to_string_lossy(),
            h.rustc_version.to_string_lossy(),
        )
    };
    assert_eq!(api, env!("CARGO_PKG_VERSION"));
    assert!(rustc.starts_with("rustc "), "{rustc}");
    assert!(!vtable().neuron.is_null());
    assert_eq!(abi::ENTRY_SYMBOL, "evospike_plugin_entry_v1");
}

#[test]
fn lifecycle_errors_and_panics_come_back_as_status_codes() {
    let vt = vtable();
    let instance = create();

    let mut out = RawBuf::EMPTY;
    let mut err = RawBuf::EMPTY;
    // SAFETY: live instance, valid out-pointers (same below).
    assert_eq!(
        unsafe { (vt.metadata)(instance, &mut out, &mut err) },
        abi::STATUS_OK
    );
    let meta: PluginMetadata = serde_json::from_slice(&take(out)).unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.version),
        ("Toy", Version::new(0, 3, 0))
    );

    let config = serde_json::to_vec(&json!({ "unexpected": 1 })).unwrap();
    let mut err = RawBuf::EMPTY;
    let status = unsafe { (vt.initialize)(instance, config.as_ptr(), config.len(), &mut err) };
    assert_eq!(status, abi::STATUS_ERROR);
    let error: PluginError = serde_json::from_slice(&take(err)).unwrap();
    assert_eq!(
        error,
        PluginError::invalid_config("Toy", "unexpected", "this plugin takes no settings")
    );

    let garbage = b"{not json";
    let mut err = RawBuf::EMPTY;
    let status = unsafe { (vt.initialize)(instance, garbage.as_ptr(), garbage.len(), &mut err) };
    assert_eq!(status, abi::STATUS_ERROR);
    let error: PluginError = serde_json::from_slice(&take(err)).unwrap();
    assert!(
        error.to_string().contains("host sent an invalid config"),
        "{error}"
    );

    let input = serde_json::to_vec(&json!("hello")).unwrap();
    let (mut out, mut err) = (RawBuf::EMPTY, RawBuf::EMPTY);
    let status = unsafe { (vt.execute)(instance, input.as_ptr(), input.len(), &mut out, &mut err) };
    assert_eq!(status, abi::STATUS_OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&take(out)).unwrap(),
        json!({ "echo": "hello" })
    );

    let input = serde_json::to_vec(&json!("panic")).unwrap();
    let (mut out, mut err) = (RawBuf::EMPTY, RawBuf::EMPTY);
    let status = unsafe { (vt.execute)(instance, input.as_ptr(), input.len(), &mut out, &mut err) };
    assert_eq!(status, abi::STATUS_PANIC);
    assert_eq!(
        String::from_utf8(take(err)).unwrap(),
        "toy panics on request"
    );
    assert!(out.ptr.is_null());

    // SAFETY: created above, destroyed once.
    unsafe { (vt.destroy)(instance) };
}

#[test]
fn neuron_step_reads_and_writes_archived_spike_tensors() {
    let vt = vtable();
    // SAFETY: the neuron vtable of a neuron plugin is static and non-null.
    let nv = unsafe { &*vt.neuron };
    let instance = create();
    let spec = serde_json::to_vec(&LayerSpec {
        num_neurons: 70,
        dt_ms: 1.0,
        params: Default::default(),
        seed: 0,
    })
    .unwrap();
    let (mut layer, mut len, mut err): (Layer, usize, RawBuf) =
        (std::ptr::null_mut(), 0, RawBuf::EMPTY);
    // SAFETY: live instance, readable spec, valid out-pointers.
    let status = unsafe {
        (nv.create_layer)(
            instance,
            spec.as_ptr(),
            spec.len(),
            &mut layer,
            &mut len,
            &mut err,
        )
    };
    assert_eq!((status, len), (abi::STATUS_OK, 70));

    let mut currents = vec![0.0f32; 70];
    currents[3] = 0.9;
    currents[66] = 1.0;
    let input = SpikeTensor::builder("host")
        .shape([70])
        .step(12)
        .analog(currents)
        .unwrap()
        .to_aligned_bytes();
    let mut output = AlignedVec::<ALIGNMENT>::with_capacity(1024);
    output.resize(1024, 0);
    let mut used = 0usize;
    let mut err = RawBuf::EMPTY;
    // SAFETY: live layer, host-owned buffers that outlive the call.
    let status = unsafe {
        (nv.step)(
            layer,
            input.as_ptr(),
            input.len(),
            output.as_mut_ptr(),
            output.len(),
            &mut used,
            &mut err,
        )
    };
    assert_eq!(status, abi::STATUS_OK);
    let view = SpikeTensor::view(&output[..used]).unwrap();
    assert_eq!(view.bitset().unwrap(), &[1 << 3, 1 << 2]);
    assert_eq!((view.header.step.to_native(), view.source()), (12, "Toy"));

    // A buffer that is too small: error, with the size needed.
    let mut small = AlignedVec::<ALIGNMENT>::with_capacity(16);
    small.resize(16, 0);
    let mut needed = 0usize;
    let mut err = RawBuf::EMPTY;
    // SAFETY: as above.
    let status = unsafe {
        (nv.step)(
            layer,
            input.as_ptr(),
            input.len(),
            small.as_mut_ptr(),
            small.len(),
            &mut needed,
            &mut err,
        )
    };
    assert_eq!(status, abi::STATUS_ERROR);
    assert_eq!(needed, used);
    let _ = take(err);

    // Bytes that are not a spike tensor are an error, not a crash.
    let mut err = RawBuf::EMPTY;
    // SAFETY: as above.
    let status = unsafe {
        (nv.step)(
            layer,
            output.as_ptr(),
            8,
            small.as_mut_ptr(),
            small.len(),
            &mut needed,
            &mut err,
        )
    };
    assert_eq!(status, abi::STATUS_ERROR);
    let error: PluginError = serde_json::from_slice(&take(err)).unwrap();
    assert!(
        error.to_string().contains("invalid input tensor"),
        "{error}"
    );

    let name = "x";
    let (mut ptr, mut n, mut err) = (std::ptr::null::<f32>(), 0usize, RawBuf::EMPTY);
    // SAFETY: live layer, valid out-pointers.
    let status =
        unsafe { (nv.state)(layer, name.as_ptr(), name.len(), &mut ptr, &mut n, &mut err) };
    assert_eq!((status, n), (abi::STATUS_OK, 70));
    // SAFETY: valid until the next step/reset/destroy of the layer.
    assert_eq!(unsafe { std::slice::from_raw_parts(ptr, n) }[66], 1.0);

    // SAFETY: created above, destroyed once each.
    unsafe {
        (nv.destroy_layer)(layer);
        (vt.destroy)(instance);
    }
}
