//! One 3-layer spiking network (encoder → 3 × 1,000 LIF → sink, 1,000 steps), run
//! two ways in one run:
//!
//! - single process: every node is a task of this process, on the in-process bus;
//! - multi-process: every node is its own `evospike run` process, on Zenoh with
//!   shared memory, through a local router.
//!
//! The sink (this process) times the last layer's steps after a warm-up tenth (the
//! processes' first steps also pay for their start: shared-memory pools made,
//! segments mapped, peer links still forming) to the last; the table gives steps
//! per second for both and the ratio multi/single.
//!
//! ```sh
//! cargo build --release -p evospike && cargo bench -p evospike-node --bench pipeline
//! ```
//!
//! `PIPELINE_STEPS` sets the steps per run (default 10,000) and `PIPELINE_ONLY`
//! (`single` or `multi`) runs one of the two ways alone.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use evospike_bus::{Bus, BusConfig};
use evospike_node::NodeArgs;

/// Steps per run: `PIPELINE_STEPS` (default 10,000).
fn steps() -> u64 {
    std::env::var("PIPELINE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &u64| n >= 20)
        .unwrap_or(10_000)
}

/// Whether to run the single-process (`"single"`) or multi-process (`"multi"`)
/// way: `PIPELINE_ONLY` names one, unset runs both.
fn runs(way: &str) -> bool {
    std::env::var("PIPELINE_ONLY")
        .ok()
        .is_none_or(|only| only == way)
}
const SIZE: usize = 1000;
const REPEATS: usize = 3;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

/// (kind, name, params) of the network's nodes.
fn network() -> Vec<(&'static str, String, Vec<String>)> {
    let steps = format!("max_steps={}", steps());
    let layer = |name: &str, input: &str, seed: u32| {
        (
            "layer",
            name.to_string(),
            vec![
                format!("size={SIZE}"),
                format!(r#"inputs=[{{"topic":"{input}","p":0.1,"weight":4.0,"seed":{seed}}}]"#),
                r#"neuron_params={"tau_ms":20.0,"t_ref_ms":2.0}"#.to_string(),
                steps.clone(),
            ],
        )
    };
    vec![
        (
            "encoder",
            "encoder".to_string(),
            vec![
                r#"source="generator:bars""#.to_string(),
                "steps_per_sample=50".to_string(),
                r#"encoder_params={"max_rate_hz":200.0}"#.to_string(),
                steps.clone(),
            ],
        ),
        layer("layer1", "encoder/spikes", 1),
        layer("layer2", "layer1/spikes", 2),
        layer("layer3", "layer2/spikes", 3),
    ]
}

fn argv(name: &str, params: &[String]) -> Vec<String> {
    let mut argv = vec!["--name".to_string(), name.to_string()];
    for p in params {
        argv.push("-p".into());
        argv.push(p.clone());
    }
    argv
}

/// Receives the last layer's steps and returns steps per second, timed from the
/// end of the warm-up tenth to the last.
async fn sink(subscriber: evospike_bus::SpikeSubscriber) -> (f64, u64) {
    let mut first = None;
    let mut spikes = 0u64;
    let steps = steps();
    let warm_up = steps / 10;
    for expected in 0..steps {
        let msg = tokio::time::timeout(Duration::from_secs(120), subscriber.recv())
            .await
            .unwrap_or_else(|_| panic!("the pipeline stalled waiting for step {expected}"))
            .expect("valid tensor");
        assert_eq!(
            msg.view().header.step.to_native(),
            expected,
            "steps out of order"
        );
        spikes += msg.view().active_count() as u64;
        if expected == warm_up {
            first = Some(Instant::now());
        }
    }
    let elapsed = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    ((steps - 1 - warm_up) as f64 / elapsed, spikes)
}

async fn single_process() -> (f64, u64) {
    let observer = Bus::open(BusConfig::local("default"))
        .await
        .expect("local bus");
    let subscriber = observer
        .spike_subscriber("layer3/spikes")
        .expect("subscriber");
    let mut tasks = Vec::new();
    for (kind, name, params) in network() {
        let mut args = vec!["node".to_string(), "--local".to_string()];
        args.extend(argv(&name, &params));
        let node = Cli::parse_from(args).node;
        tasks.push(tokio::spawn(
            async move { evospike_node::run(kind, node).await },
        ));
    }
    let result = sink(subscriber).await;
    for task in tasks {
        task.await.expect("node task").expect("node");
    }
    result
}

fn evospike_exe() -> PathBuf {
    // target/release/deps/pipeline-… → target/release/evospike
    let exe = std::env::current_exe().expect("current exe");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("evospike");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p evospike` first",
        path.display()
    );
    path
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn multi_process() -> (f64, u64) {
    let exe = evospike_exe();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let router = format!("tcp/127.0.0.1:{port}");
    let spawn = |args: Vec<String>| {
        Command::new(&exe)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PIPELINE_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn evospike")
    };
    let mut children = Killed(vec![spawn(vec![
        "router".into(),
        "--listen".into(),
        router.clone(),
    ])]);
    let mut config = BusConfig::peer(
        &["tcp/127.0.0.1:0".to_string()],
        std::slice::from_ref(&router),
    );
    let observer = loop {
        // The router may take a moment to listen.
        match Bus::open(config.clone()).await {
            Ok(bus) => break bus,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    config.connect.clear();
    let subscriber = observer
        .spike_subscriber("layer3/spikes")
        .expect("subscriber");
    for (kind, name, params) in network() {
        let mut args = evospike_schemas::contract::run_args(kind).to_vec();
        args.extend(["--connect".to_string(), router.clone()]);
        args.extend(argv(&name, &params));
        children.0.push(spawn(args));
    }
    let result = sink(subscriber).await;
    for child in children.0.iter_mut().skip(1) {
        let status = child.wait().expect("node exit");
        assert!(status.success(), "a node failed: {status}");
    }
    result
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mut single, mut multi) = (Vec::new(), Vec::new());
    let mut spikes = (0, 0);
    for _ in 0..REPEATS {
        if runs("single") {
            let (rate, s) = runtime.block_on(single_process());
            single.push(rate);
            spikes.0 = s;
        }
        if runs("multi") {
            let (rate, s) = runtime.block_on(multi_process());
            multi.push(rate);
            spikes.1 = s;
        }
    }
    println!(
        "| run | steps/s (median of {REPEATS}, {} steps) | last-layer spikes |",
        steps()
    );
    println!("|---|---|---|");
    if !single.is_empty() {
        println!(
            "| single process, local transport | {:.0} | {} |",
            median(single.clone()),
            spikes.0
        );
    }
    if !multi.is_empty() {
        println!(
            "| 5 processes, Zenoh shared memory | {:.0} | {} |",
            median(multi.clone()),
            spikes.1
        );
    }
    if !single.is_empty() && !multi.is_empty() {
        println!(
            "\nratio multi/single: {:.2}",
            median(multi) / median(single)
        );
    }
}
