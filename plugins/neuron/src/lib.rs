//! Built-in NEURON plugins: `LIFNeuron`, `IzhikevichNeuron`, `EntangledSynchrony`,
//! `LeakyIntegrator`.
//!
//! # Concepts
//!
//! * A *layer* is a population of one neuron model that advances in steps of `dt`
//!   and implements [`NeuronLayer`]: `step(input, spikes)`, `reset`, `state(name)`.
//!   All buffers are allocated when the layer is created; `step` never allocates.
//! * [`LifLayer`] ([`lif`]): leaky integrate-and-fire with exact exponential
//!   integration, refractory period and current-based exponential (or delta)
//!   synapses — the Vogels–Abbott CUBA neuron.
//! * [`IzhikevichLayer`] ([`izhikevich`]): Izhikevich (2003) with the published
//!   two-half-step integration and the seven presets.
//! * [`EntangledSynchronyLayer`] ([`synchrony`]): LIF neurons whose input gain is
//!   set by classical Kuramoto phase coupling; the equations are in the module docs.
//! * [`LeakyLayer`] ([`leaky`]): non-spiking leaky integrators, the readout of
//!   trained networks (the class score is the summed membrane).
//! * The plugin objects ([`BuiltinNeuron`]: the generic factory plugin around each
//!   [`NeuronModel`]) hand out layers through [`NeuronPlugin::create_layer`];
//!   the `evospike-plugins` bundle registers [`builtin_plugins`]. Parameters come
//!   from the plugin config and the [`LayerSpec`](evospike_plugin_api::LayerSpec).
//!
//! # Example
//!
//! ```
//! use evospike_neuron::builtin_plugins;
//! use evospike_plugin_api::{LayerSpec, PluginType, spike_words_len};
//!
//! let plugins = builtin_plugins();
//! let lif = plugins.iter()
//!     .find(|p| p.metadata().plugin_type == PluginType::Neuron && p.metadata().name == "LIFNeuron")
//!     .and_then(|p| p.as_neuron())
//!     .unwrap();
//! let mut params = serde_json::Map::new();
//! params.insert("i_bias_na".into(), 20.0.into()); // R·I = 20 mV above rest
//! let spec = LayerSpec { num_neurons: 10, dt_ms: 0.1, params, seed: 7 };
//! let mut layer = lif.create_layer(&spec)?;
//!
//! let mut spikes = vec![0u64; spike_words_len(10)];
//! let mut count = 0;
//! for _ in 0..1000 { // 100 ms
//!     layer.step(&[0.0; 10], &mut spikes);
//!     count += spikes.iter().map(|w| w.count_ones()).sum::<u32>();
//! }
//! assert!(count >= 30); // ~ 34 Hz each, 10 neurons, 100 ms
//! # Ok::<(), evospike_plugin_api::PluginError>(())
//! ```

pub mod izhikevich;
pub mod leaky;
pub mod lif;
mod plugins;
pub mod synchrony;

pub use evospike_plugin_api::{NeuronLayer, NeuronPlugin};
pub use izhikevich::{IzhikevichLayer, IzhikevichParams, Preset};
pub use leaky::{LeakyLayer, LeakyParams};
pub use lif::{membrane_decay, LifLayer, LifParams};
pub use plugins::{builtin_plugins, BuiltinNeuron, NeuronModel};
pub use synchrony::{EntangledSynchronyLayer, SynchronyParams};
