//! Vogels–Abbott CUBA benchmark: evospike's CPU backend against Brian2's C++
//! standalone mode, in one run.
//!
//! ```text
//! BRIAN2_PYTHON=/path/to/venv/bin/python cargo bench -p evospike-neuron --bench cuba
//! ```
//!
//! 4000 LIF neurons (3200 excitatory), connection probability 0.02, dt 0.1 ms,
//! τ_m 20 ms, V_th −50 mV, V_reset −60 mV, E_L −49 mV, t_ref 5 ms, τ_e 5 ms,
//! τ_i 10 ms, w_e +1.62 mV, w_i −9 mV, 1 s simulated, v(0) = V_r + U(0,1)(V_t − V_r).
//! Timed: the simulation loop only (network construction and, on the Brian2 side,
//! code generation and compilation are excluded). One thread on both sides.
//! Brian2's own timer (`Network::run`, `std::clock` without OpenMP) measures the
//! process's CPU time, so the ratio compares CPU time with CPU time; evospike's
//! wall time is printed too (on an idle machine the two agree). The runs of the
//! two simulators alternate, so both see the same machine load.
//!
//! Environment: `BRIAN2_PYTHON` (default `python3`) must have `brian2==2.9.*` and
//! `numpy<2`; without it the Brian2 column says why it is missing.
//! `CUBA_REPEATS` (default 5): runs per side, the median is reported.

use std::process::Command;
use std::time::Instant;

use cpu_time::ProcessTime;

use evospike_compute::{
    spikes, Backend, CpuBackend, FixedProbability, Projection, Target, WeightInit,
};
use evospike_neuron::{LifLayer, LifParams, NeuronLayer};

const N: usize = 4000;
const N_EXC: usize = 3200;
const DT_MS: f32 = 0.1;
const STEPS: usize = 10_000;

struct Outcome {
    wall_s: f64,
    /// CPU time of the process during the loop (what Brian2's timer measures).
    cpu_s: f64,
    spikes: u64,
    events: u64,
}

fn build_network(
    seed: u64,
) -> Result<(LifLayer, Projection, Projection), Box<dyn std::error::Error>> {
    let params = LifParams {
        tau_ms: 20.0,
        v_rest: -49.0,
        v_reset: -60.0,
        v_threshold: -50.0,
        t_ref_ms: 5.0,
        tau_syn_e_ms: 5.0,
        tau_syn_i_ms: 10.0,
        v_init: Some((-60.0, -50.0)),
        ..LifParams::default()
    };
    let layer = LifLayer::new(N, DT_MS, params, seed)?;
    let exc = FixedProbability::new(0.02, seed + 1)?
        .connect(N_EXC, N, WeightInit::Constant(1.62))?
        .embed_rows(0, N)?;
    let inh = FixedProbability::new(0.02, seed + 2)?
        .connect(N - N_EXC, N, WeightInit::Constant(9.0))?
        .embed_rows(N_EXC, N)?;
    Ok((
        layer,
        Projection::new(exc.into(), Target::Excitatory, 0)?,
        Projection::new(inh.into(), Target::Inhibitory, 0)?,
    ))
}

fn run_once(
    seed: u64,
    backend: &dyn Backend,
    steps: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let (mut layer, mut exc, mut inh) = build_network(seed)?;
    let out_degree: Vec<u64> = (0..N)
        .map(|j| (exc.weights_row_len(j) + inh.weights_row_len(j)) as u64)
        .collect();
    let mut spikes_now = vec![0u64; spikes::spike_words_len(N)];
    let (mut total, mut events) = (0u64, 0u64);

    let start = Instant::now();
    let cpu_start = ProcessTime::now();
    for _ in 0..steps {
        // Last step's spikes add their weights straight into g_e / g_i (Brian2:
        // `on_pre='ge += we'`), then the neurons integrate.
        let (g_e, g_i) = layer.inputs_mut();
        exc.step(backend, &spikes_now, g_e)?;
        inh.step(backend, &spikes_now, g_i)?;
        layer.step_after_inputs(&mut spikes_now);
        for j in spikes::ones(&spikes_now) {
            total += 1;
            events += out_degree[j];
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = cpu_start.elapsed().as_secs_f64();
    std::hint::black_box(layer.state("v"));
    Ok(Outcome {
        wall_s,
        cpu_s,
        spikes: total,
        events,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// What the Brian2 script reports after building (and running) the network.
#[derive(Debug)]
struct Brian2 {
    version: String,
    rate_hz: f64,
    build_dir: std::path::PathBuf,
}

/// Generates, compiles and runs the Brian2 network once (compile time excluded from
/// every number); returns where the compiled binary is.
fn build_brian2() -> Result<Brian2, String> {
    let python = std::env::var("BRIAN2_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../compute/bench/cuba_brian2.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .args(["--repeats", "1", "--build-dir"])
        .arg(concat!(env!("CARGO_TARGET_TMPDIR"), "/cuba-brian2"))
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!(
            "{python} {script} failed ({}); install with `pip install 'brian2==2.9.*' 'numpy<2'`: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .ok_or("Brian2 script printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("bad JSON from Brian2 script: {e}: {line}"))?;
    let field = |k: &str| {
        v.get(k)
            .ok_or_else(|| format!("Brian2 result has no `{k}`: {line}"))
    };
    Ok(Brian2 {
        version: field("simulator")?.as_str().unwrap_or("brian2").to_owned(),
        rate_hz: field("mean_rate_hz")?.as_f64().unwrap_or(f64::NAN),
        build_dir: field("build_dir")?.as_str().unwrap_or_default().into(),
    })
}

/// Runs the compiled Brian2 binary once; returns (its own run timer, spikes).
fn run_brian2_binary(b: &Brian2) -> Result<(f64, u64), String> {
    let results = b.build_dir.join("results");
    // Brian2 appends file names to this argument as a string: it needs the slash.
    let _ = std::fs::remove_file(results.join("last_run_info.txt"));
    let status = Command::new(b.build_dir.join("main"))
        .arg("--results_dir")
        .arg(format!("{}/", results.display()))
        .current_dir(&b.build_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", b.build_dir.join("main").display()))?;
    if !status.success() {
        return Err(format!("Brian2 binary failed: {status}"));
    }
    let info =
        std::fs::read_to_string(results.join("last_run_info.txt")).map_err(|e| e.to_string())?;
    let wall: f64 = info
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unreadable last_run_info.txt: {info:?}"))?;
    let n_file = std::fs::read_dir(&results)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("_array_spikemonitor_N_")
        })
        .ok_or("no spike monitor count in Brian2 results")?;
    let bytes = std::fs::read(n_file.path()).map_err(|e| e.to_string())?;
    let n = bytes
        .get(..4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("short spike monitor file")?;
    Ok((wall, n as u64))
}

fn stats(xs: &[f64]) -> (f64, f64) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    (median(xs.to_vec()), min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run one
    // short repetition there so the harness stays a smoke test.
    let is_bench = std::env::args().any(|a| a == "--bench");
    let repeats: usize = std::env::var("CUBA_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    if !is_bench {
        // 100 ms of network time, to check the harness runs (not a measurement).
        let o = run_once(1, &CpuBackend::single_threaded(), STEPS / 10)?;
        println!("cuba smoke run: {} spikes in 100 ms simulated", o.spikes);
        if o.spikes == 0 {
            return Err("CUBA network produced no spikes".into());
        }
        return Ok(());
    }

    let backend = CpuBackend::single_threaded();
    let brian = build_brian2();
    if let Err(e) = &brian {
        println!("Brian2 side not measured: {e}");
    }
    // Interleave the two simulators so both see the same machine load.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for r in 0..repeats as u64 {
        ours.push(run_once(r + 1, &backend, STEPS)?);
        if let Ok(b) = &brian {
            theirs.push(run_brian2_binary(b)?);
        }
    }
    let walls: Vec<f64> = ours.iter().map(|o| o.wall_s).collect();
    let cpus: Vec<f64> = ours.iter().map(|o| o.cpu_s).collect();
    let (wall_med, _) = stats(&walls);
    let (cpu_med, cpu_min) = stats(&cpus);
    let rates: Vec<f64> = ours.iter().map(|o| o.spikes as f64 / N as f64).collect();
    let events_per_s = median(ours.iter().map(|o| o.events as f64 / o.cpu_s).collect());
    let round = |x: f64, k: f64| (x * k).round() / k;
    let show = |xs: &[f64], k: f64| xs.iter().map(|&x| round(x, k)).collect::<Vec<_>>();
    println!("evospike wall [s]: {:?}", show(&walls, 1e4));
    println!("evospike CPU  [s]: {:?}", show(&cpus, 1e4));
    println!("evospike rates [Hz]: {:?}", show(&rates, 100.0));
    println!();
    println!("| simulator | threads | wall (median of {repeats}) | CPU time (median) | CPU time (best) | spikes (median) | mean rate (median) | synaptic events per CPU-second |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| evospike {} cpu backend | 1 | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} | {:.2} Hz | {:.3e} |",
        env!("CARGO_PKG_VERSION"),
        wall_med * 1e3,
        cpu_med * 1e3,
        cpu_min * 1e3,
        median(ours.iter().map(|o| o.spikes as f64).collect()),
        median(rates.clone()),
        events_per_s
    );
    if let Ok(b) = &brian {
        let bcpus: Vec<f64> = theirs.iter().map(|t| t.0).collect();
        let (b_med, b_min) = stats(&bcpus);
        let b_spikes = median(theirs.iter().map(|t| t.1 as f64).collect());
        // Brian2's synaptic events: its spikes times the mean out-degree (same p).
        let mean_out_degree = median(
            ours.iter()
                .map(|o| o.events as f64 / o.spikes.max(1) as f64)
                .collect(),
        );
        println!(
            "| {} | 1 | – | {:.1} ms | {:.1} ms | {:.0} | {:.2} Hz | {:.3e} |",
            b.version,
            b_med * 1e3,
            b_min * 1e3,
            b_spikes,
            b_spikes / N as f64,
            b_spikes * mean_out_degree / b_med
        );
        println!();
        println!("Brian2 Network::run timer [s]: {:?} (std::clock, i.e. CPU time, single-threaded build)", show(&bcpus, 1e4));
        let b_rates: Vec<f64> = theirs.iter().map(|t| t.1 as f64 / N as f64).collect();
        println!(
            "Brian2 rates [Hz]: {:?} (script's own run: {:.2} Hz)",
            show(&b_rates, 100.0),
            b.rate_hz
        );
        println!(
            "ratio evospike / Brian2 (CPU time of the simulation loop): {:.2}x (medians), {:.2}x (best runs); target <= 1.0x, goal 0.5x",
            cpu_med / b_med,
            cpu_min / b_min
        );
    }
    Ok(())
}
