//! The per-step path of every built-in plugin — encoder, projection, neuron layer,
//! plasticity rule — must not allocate. A counting global allocator checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use evospike_compute::{
    spikes, CpuBackend, DenseWeights, FixedProbability, Projection, Target, WeightInit,
};
use evospike_plugin_api::{EncoderSpec, LayerSpec, Plugin, RuleSpec};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Counts allocations made by the current thread while `COUNTING` is set.
struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter
// only reads and writes const-initialised thread-locals, which do not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn find<'a>(plugins: &'a [Box<dyn Plugin>], name: &str) -> &'a dyn Plugin {
    plugins
        .iter()
        .find(|p| p.metadata().name == name)
        .map(|p| p.as_ref())
        .expect("built in")
}

#[test]
fn every_builtin_plugin_steps_without_allocating() {
    let (n_in, n, dt) = (40usize, 300usize, 0.5f32);
    let neurons = evospike_neuron::builtin_plugins();
    let encoders = evospike_encoder::builtin_plugins();
    let rules = evospike_plasticity::builtin_plugins();
    let backend = CpuBackend::single_threaded();

    for (enc_name, layer_name, rule_name, layer_params) in [
        ("RateEncoder", "LIFNeuron", "STDP", serde_json::json!({})),
        // A bias current keeps the Izhikevich neurons firing between sparse latency spikes.
        (
            "LatencyEncoder",
            "IzhikevichNeuron",
            "MetaPlasticity",
            serde_json::json!({"i_bias": 10.0}),
        ),
        (
            "TASEncoder",
            "EntangledSynchrony",
            "Homeostasis",
            serde_json::json!({}),
        ),
    ] {
        let layer_params = layer_params.as_object().cloned().unwrap_or_default();
        let mut encoder = find(&encoders, enc_name)
            .as_encoder()
            .unwrap()
            .create_encoder(&EncoderSpec {
                num_inputs: n_in,
                num_steps: 50,
                dt_ms: dt,
                params: Default::default(),
                seed: 1,
            })
            .unwrap();
        let n_enc = encoder.num_outputs();
        let mut layer = find(&neurons, layer_name)
            .as_neuron()
            .unwrap()
            .create_layer(&LayerSpec {
                num_neurons: n,
                dt_ms: dt,
                params: layer_params,
                seed: 2,
            })
            .unwrap();
        let mut rule = find(&rules, rule_name)
            .as_plasticity()
            .unwrap()
            .create_rule(&RuleSpec {
                pre: n_enc,
                post: n,
                dt_ms: dt,
                params: Default::default(),
            })
            .unwrap();
        // A dense feed-forward projection with plasticity and a sparse, delayed recurrent one.
        let mut ff = Projection::new(
            DenseWeights::filled(n_enc, n, 0.8).unwrap().into(),
            Target::Excitatory,
            0,
        )
        .unwrap();
        let rec_w = FixedProbability::new(0.05, 3)
            .unwrap()
            .connect(n, n, WeightInit::Constant(0.5))
            .unwrap();
        let mut rec = Projection::new(rec_w.into(), Target::Inhibitory, 4).unwrap();

        let mut in_spikes = vec![0u64; spikes::spike_words_len(n_enc)];
        let mut out_spikes = vec![0u64; spikes::spike_words_len(n)];
        let mut input = vec![0.0f32; n];
        let sample: Vec<f32> = (0..n_in).map(|i| i as f32 / n_in as f32).collect();
        let mut fired = 0;
        let mut run = |steps: u32, count_from: u32| {
            for t in 0..steps {
                if t == count_from {
                    COUNTING.with(|c| c.set(true));
                }
                if t % 50 == 0 {
                    encoder.set_sample(&sample);
                }
                encoder.encode_step(t % 50, &mut in_spikes);
                input.fill(0.0);
                ff.step(&backend, &in_spikes, &mut input).unwrap();
                rec.step(&backend, &out_spikes, &mut input).unwrap();
                layer.step(&input, &mut out_spikes);
                rule.update(&in_spikes, &out_spikes, ff.weights_mut());
                fired += spikes::count(&out_spikes);
            }
            COUNTING.with(|c| c.set(false));
        };
        run(400, 100);
        let allocations = ALLOCATIONS.with(|a| a.replace(0));
        assert_eq!(allocations, 0, "{enc_name} -> {layer_name} with {rule_name} allocated {allocations} times in 300 steps");
        assert!(
            fired > 0,
            "{layer_name} never fired, so the spiking paths were not exercised"
        );
    }
}

#[test]
fn the_counter_sees_allocations() {
    COUNTING.with(|c| c.set(true));
    let v = std::hint::black_box(vec![1u8; 16]);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(ALLOCATIONS.with(|a| a.replace(0)) >= 1);
}
