//! Measures what crossing the C ABI costs per step: the example NEURON plugin run
//! in-process (as a built-in would be) and as an external cdylib through the host.
//!
//! ```text
//! cargo build --release -p evospike-example-neuron
//! cargo run --release -p evospike-plugin-host --example step_cost -- target/release/libevospike_example_neuron.so [neurons] [steps]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use evospike_example_neuron::ExampleNeuron;
use evospike_plugin_api::{spike_words_len, LayerSpec, NeuronLayer, NeuronPlugin};
use evospike_plugin_host::initialize_plugin_system;
use evospike_plugin_host::loader::library_file_name;

fn time_steps(layer: &mut dyn NeuronLayer, inputs: &[Vec<f32>], steps: usize) -> (f64, u64) {
    let mut spikes = vec![0u64; spike_words_len(layer.len())];
    let mut fired = 0u64;
    let start = Instant::now();
    for t in 0..steps {
        layer.step(&inputs[t % inputs.len()], &mut spikes);
        fired += spikes
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum::<u64>();
    }
    (start.elapsed().as_nanos() as f64 / steps as f64, fired)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let library = PathBuf::from(
        args.next()
            .ok_or("usage: step_cost <path to libevospike_example_neuron> [neurons] [steps]")?,
    );
    let neurons: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let steps: usize = args.next().map_or(Ok(20_000), |s| s.parse())?;

    let dir = tempfile::tempdir()?;
    std::fs::copy(
        &library,
        dir.path()
            .join(library_file_name("evospike_example_neuron")),
    )?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/example-neuron/example_neuron.plugin.toml");
    std::fs::copy(manifest, dir.path().join("example_neuron.plugin.toml"))?;
    let manager = initialize_plugin_system(Vec::new(), &[dir.path()])?;
    if let Some(e) = manager.load_errors().first() {
        return Err(format!("{e}").into());
    }

    let spec = LayerSpec {
        num_neurons: neurons,
        dt_ms: 1.0,
        params: Default::default(),
        seed: 0,
    };
    let inputs: Vec<Vec<f32>> = (0..16u32)
        .map(|k| {
            (0..neurons as u32)
                .map(|i| ((i * 31 + k * 17) % 23) as f32 / 40.0)
                .collect()
        })
        .collect();
    let mut builtin = ExampleNeuron::new().create_layer(&spec)?;
    let mut external = manager.neuron("ExampleNeuron")?.create_layer(&spec)?;
    time_steps(builtin.as_mut(), &inputs, steps / 10);
    time_steps(external.as_mut(), &inputs, steps / 10);
    let (in_process, fired_a) = time_steps(builtin.as_mut(), &inputs, steps);
    let (across_abi, fired_b) = time_steps(external.as_mut(), &inputs, steps);
    if fired_a != fired_b {
        return Err(format!("the two layers disagree: {fired_a} vs {fired_b} spikes").into());
    }
    println!("neurons={neurons} steps={steps} spikes={fired_a}");
    println!("in-process layer : {in_process:>10.0} ns/step");
    println!("external (C ABI) : {across_abi:>10.0} ns/step");
    println!(
        "ABI overhead     : {:>10.0} ns/step",
        across_abi - in_process
    );
    Ok(())
}
