//! An example external NEURON plugin: `ExampleNeuron`, a non-leaky integrate-and-fire
//! layer, built as a `cdylib` and loaded by the host at run time.
//!
//! It is the template for plugin authors (see docs/PLUGINS.md): one type implementing
//! [`Plugin`] and [`NeuronPlugin`], one [`NeuronLayer`], and one
//! [`export_plugin!`](evospike_plugin_api::export_plugin) line. The manifest the host
//! reads before loading the library is `example_neuron.plugin.toml` beside this crate.
//!
//! Model: `v += gain * input`; when `v >= threshold` the neuron spikes and `v` goes
//! back to 0. Settings (`plugins.ExampleNeuron.*`): `gain` (number > 0, default 1).
//! Layer parameters: `threshold` (number > 0, default 1).
//!
//! ```
//! use evospike_example_neuron::ExampleNeuron;
//! use evospike_plugin_api::{LayerSpec, NeuronPlugin, Plugin, PluginConfig};
//!
//! let mut plugin = ExampleNeuron::new();
//! plugin.initialize(&PluginConfig::new()).unwrap();
//! let spec = LayerSpec { num_neurons: 2, dt_ms: 1.0, params: Default::default(), seed: 0 };
//! let mut layer = plugin.create_layer(&spec).unwrap();
//! let mut spikes = [0u64; 1];
//! layer.step(&[0.6, 1.5], &mut spikes);
//! assert_eq!(spikes[0], 0b10);
//! layer.step(&[0.6, 0.0], &mut spikes);
//! assert_eq!(spikes[0], 0b01);
//! ```

use evospike_plugin_api::semver::Version;
use evospike_plugin_api::serde_json::{json, Value};
use evospike_plugin_api::{
    LayerSpec, NeuronLayer, NeuronPlugin, Plugin, PluginConfig, PluginError, PluginMetadata,
    PluginType, SpikeWords,
};

/// Which build this is: the reload test tells builds apart by it.
const VARIANT: &str = if cfg!(fixture_variant_b) { "b" } else { "a" };

/// The plugin object.
#[derive(Debug)]
pub struct ExampleNeuron {
    meta: PluginMetadata,
    gain: f32,
    active: bool,
}

impl ExampleNeuron {
    /// Name under which the plugin registers.
    pub const NAME: &'static str = "ExampleNeuron";

    /// A fresh, uninitialized plugin.
    pub fn new() -> Self {
        let version =
            Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0));
        let meta = PluginMetadata::new(Self::NAME, version, PluginType::Neuron)
            .with_description("Non-leaky integrate-and-fire neurons (example external plugin)")
            .with_author("evospike")
            .with_capability("spiking")
            .with_capability("integrate-and-fire");
        Self {
            meta,
            gain: 1.0,
            active: false,
        }
    }
}

impl Default for ExampleNeuron {
    fn default() -> Self {
        Self::new()
    }
}

fn positive(plugin: &str, key: &str, value: &Value, config: bool) -> Result<f32, PluginError> {
    let invalid = |reason: String| {
        if config {
            PluginError::invalid_config(plugin, key, reason)
        } else {
            PluginError::invalid_parameter(plugin, key, reason)
        }
    };
    match value.as_f64() {
        Some(v) if v > 0.0 && v.is_finite() => Ok(v as f32),
        Some(v) => Err(invalid(format!("must be a finite number > 0, got {v}"))),
        None => Err(invalid(format!("must be a number, got {value}"))),
    }
}

impl Plugin for ExampleNeuron {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        for (key, value) in config {
            match key.as_str() {
                "gain" => self.gain = positive(Self::NAME, key, value, true)?,
                _ => {
                    return Err(PluginError::invalid_config(
                        Self::NAME,
                        key,
                        "unknown setting (accepted: gain)",
                    ))
                }
            }
        }
        Ok(())
    }

    fn activate(&mut self) -> Result<(), PluginError> {
        self.active = true;
        Ok(())
    }

    fn execute(&mut self, input: &Value) -> Result<Value, PluginError> {
        if cfg!(fixture_panic) {
            panic!("ExampleNeuron was built to panic in execute");
        }
        if !self.active {
            return Err(PluginError::NotReady {
                plugin: Self::NAME.into(),
                operation: "execute".into(),
                reason: "not active".into(),
            });
        }
        Ok(json!({ "plugin": Self::NAME, "variant": VARIANT, "gain": self.gain, "echo": input }))
    }

    fn deactivate(&mut self) -> Result<(), PluginError> {
        self.active = false;
        Ok(())
    }

    fn as_neuron(&self) -> Option<&dyn NeuronPlugin> {
        Some(self)
    }
}

impl NeuronPlugin for ExampleNeuron {
    fn create_layer(&self, spec: &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
        if spec.num_neurons == 0 {
            return Err(PluginError::invalid_parameter(
                Self::NAME,
                "num_neurons",
                "must be at least 1",
            ));
        }
        let mut threshold = 1.0;
        for (key, value) in &spec.params {
            match key.as_str() {
                "threshold" => threshold = positive(Self::NAME, key, value, false)?,
                _ => {
                    return Err(PluginError::invalid_parameter(
                        Self::NAME,
                        key,
                        "unknown parameter (accepted: threshold)",
                    ))
                }
            }
        }
        // The "rebuilt" variant fires at half the threshold, so a test can see which
        // library a reloaded plugin runs.
        if cfg!(fixture_variant_b) {
            threshold /= 2.0;
        }
        Ok(Box::new(IfLayer {
            v: vec![0.0; spec.num_neurons],
            gain: self.gain,
            threshold,
        }))
    }
}

/// Non-leaky integrate-and-fire neurons.
#[derive(Debug)]
struct IfLayer {
    v: Vec<f32>,
    gain: f32,
    threshold: f32,
}

impl NeuronLayer for IfLayer {
    fn len(&self) -> usize {
        self.v.len()
    }

    fn step(&mut self, input: &[f32], spikes: &mut SpikeWords) {
        if cfg!(fixture_panic) && input.first().is_some_and(|x| x.is_nan()) {
            panic!("ExampleNeuron was built to panic on a NaN input");
        }
        for (i, (v, x)) in self.v.iter_mut().zip(input).enumerate() {
            *v += self.gain * x;
            let word = &mut spikes[i / 64];
            if *v >= self.threshold {
                *word |= 1 << (i % 64);
                *v = 0.0;
            } else {
                *word &= !(1 << (i % 64));
            }
        }
    }

    fn reset(&mut self) {
        self.v.fill(0.0);
    }

    fn state(&self, name: &str) -> Option<&[f32]> {
        (name == "v").then_some(self.v.as_slice())
    }
}

#[cfg(not(fixture_abi_mismatch))]
evospike_plugin_api::export_plugin!(neuron: ExampleNeuron => ExampleNeuron::new());

/// A header that claims the next ABI major version, as a plugin built against a
/// future, incompatible `evospike-plugin-api` would. The host must reject it
/// before touching anything past the header's stable prefix.
#[cfg(fixture_abi_mismatch)]
pub mod future_abi {
    use evospike_plugin_api::abi::{self, AbiStr, PluginHeader};

    static HEADER: PluginHeader = PluginHeader {
        magic: abi::MAGIC,
        abi_major: abi::ABI_MAJOR + 1,
        abi_minor: 0,
        api_version: AbiStr::new("99.0.0"),
        rustc_version: AbiStr::new(abi::RUSTC_VERSION),
        plugin_type: 0,
        vtable: std::ptr::null(),
    };

    /// The entry symbol, with the future header.
    #[unsafe(no_mangle)]
    pub extern "C" fn evospike_plugin_entry_v1() -> *const PluginHeader {
        &HEADER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_bad_gain_by_name() {
        let mut p = ExampleNeuron::new();
        let mut cfg = PluginConfig::new();
        cfg.insert("gain".into(), json!(-1));
        let err = p.initialize(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `ExampleNeuron`: invalid config setting `gain`: must be a finite number > 0, got -1"
        );
        let mut cfg = PluginConfig::new();
        cfg.insert("gian".into(), json!(1));
        assert!(p
            .initialize(&cfg)
            .unwrap_err()
            .to_string()
            .contains("`gian`"));
    }

    #[test]
    fn layer_integrates_and_fires_across_words() {
        let p = ExampleNeuron::new();
        let mut params = evospike_plugin_api::Params::new();
        params.insert("threshold".into(), json!(2.0));
        let spec = LayerSpec {
            num_neurons: 70,
            dt_ms: 1.0,
            params,
            seed: 0,
        };
        let mut layer = p.create_layer(&spec).unwrap();
        let mut spikes = [0u64; 2];
        let mut input = vec![0.0; 70];
        input[69] = 1.0;
        layer.step(&input, &mut spikes);
        assert_eq!(spikes, [0, 0]);
        assert_eq!(layer.state("v").unwrap()[69], 1.0);
        layer.step(&input, &mut spikes);
        let expected_high = if cfg!(fixture_variant_b) { 0 } else { 1 << 5 };
        assert_eq!(spikes, [0, expected_high]);
        layer.reset();
        assert_eq!(layer.state("v").unwrap()[69], 0.0);
        assert!(layer.state("u").is_none());
    }
}
