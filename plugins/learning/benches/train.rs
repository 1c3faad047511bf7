//! Training speed: evospike's `SurrogateGradient` against snnTorch on PyTorch's CPU
//! backend, the same network in one run, at 1 and 2 threads.
//!
//! ```text
//! cargo bench -p evospike-learning --bench train
//! ```
//!
//! The network of snnTorch's tutorial 5: 784-1000-10 LIF, β = 0.95, 25 steps, batch
//! 128, Adam (lr 5e-4), the image as input current every step, cross-entropy on the
//! output membrane; no biases on either side. Data: random images (speed does not
//! depend on them). Each figure is the median of `TRAIN_REPEATS` (default 3) runs of
//! `TRAIN_BATCHES` (default 20) batches after 3 warm-up batches; the two sides
//! alternate so both see the same machine load.
//!
//! snnTorch runs twice: as the tutorial writes it (`fc1(x)` inside the time loop)
//! and hoisted (`fc1(x)` once per batch, as evospike does, since the input current
//! is the same every step), so the ratio against the best snnTorch code is shown.
//!
//! The anchor installs itself: without `SNNTORCH_PYTHON` the bench creates a
//! virtualenv under the target directory and installs `snntorch` and `torch` from
//! PyPI into it (once).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use evospike_learning::surrogate::SurrogateGradient;
use evospike_plugin_api::{Control, Dataset, Learner, LearnerSpec};
use rand::{Rng, SeedableRng};

const HIDDEN: usize = 1000;
const STEPS: usize = 25;
const BATCH: usize = 128;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SNNTORCH_PYTHON") {
        return Ok(p.into());
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let venv = PathBuf::from(target).join("bench-venv-snntorch");
    let py = venv.join("bin/python");
    let ready = Command::new(&py)
        .args(["-c", "import snntorch, torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!(
            "installing snntorch and torch into {} (once)…",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&py)
                .args(["-m", "pip", "install", "-q", "snntorch==1.0.0", "torch"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            return Err("could not install snntorch and torch with pip".into());
        }
    }
    Ok(py)
}

fn evospike(threads: usize, batches: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let spec = LearnerSpec {
        input_size: 784,
        input_shape: vec![28, 28],
        classes: (0..10).map(|c| c.to_string()).collect(),
        params: serde_json::json!({
            "hidden": [HIDDEN], "steps": STEPS, "batch": BATCH, "lr": 5e-4, "beta": 0.95,
            "threads": threads, "shift": 0, "schedule": "constant", "weight_decay": 0.0,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
        seed: 0,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let n = BATCH * batches;
    let x: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let mut learner = SurrogateGradient::new(&spec)?;
    let warm = Dataset::new(&x[..3 * BATCH * 784], 784, Some(&y[..3 * BATCH]), 10)?;
    learner.train_epoch(&warm, &mut |_| Control::Continue)?;
    let data = Dataset::new(&x, 784, Some(&y), 10)?;
    let start = Instant::now();
    learner.train_epoch(&data, &mut |_| Control::Continue)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn snntorch(py: &PathBuf, threads: usize, batches: usize, variant: &str) -> Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/snntorch_train.py");
    let out = Command::new(py)
        .arg(script)
        .args([threads, HIDDEN, STEPS, BATCH, batches].map(|v| v.to_string()))
        .arg(variant)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    eprintln!("  {}", String::from_utf8_lossy(&out.stdout).trim());
    v["samples_per_s"]
        .as_f64()
        .ok_or_else(|| "no samples_per_s".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repeats = env_usize("TRAIN_REPEATS", 3);
    let batches = env_usize("TRAIN_BATCHES", 20);
    let py = python()?;
    println!("784-{HIDDEN}-10 LIF, {STEPS} steps, batch {BATCH}, Adam; samples/s, median of {repeats} x {batches} batches");
    println!("| threads | evospike | snnTorch (tutorial) | snnTorch (hoisted) | ratio vs tutorial | ratio vs hoisted |");
    println!("|---|---|---|---|---|---|");
    for threads in [1, 2] {
        let (mut e, mut t, mut h) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            e.push(evospike(threads, batches)?);
            t.push(snntorch(&py, threads, batches, "tutorial")?);
            h.push(snntorch(&py, threads, batches, "hoisted")?);
        }
        let (e, t, h) = (median(e), median(t), median(h));
        println!(
            "| {threads} | {e:.0} | {t:.0} | {h:.0} | {:.2}x | {:.2}x |",
            e / t,
            e / h
        );
    }
    Ok(())
}
