//! `evospike train --workers K`: the coordinator in this process, K
//! `train_worker` processes of this same binary, one Zenoh session each, meeting
//! over loopback TCP and exchanging tensors through shared memory.
//!
//! The workers are started with the same data, labels, holdout, learner
//! parameters and seed as this run, and die with it (`PR_SET_PDEATHSIG`). A
//! worker that exits or falls behind is reported on stderr and started again;
//! the run's figures (time per step in computing and on the bus, worker faults)
//! go into the model's metrics as `dp_*`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use evospike_bus::{Bus, BusConfig};
use evospike_dataparallel::pool::Pool;
use evospike_dataparallel::{wire, Coordinator, DataParallel, Settings, Stats};
use evospike_learning::data::Data;
use evospike_learning::surrogate::SurrogateGradient;
use evospike_plugin_api::LearnerSpec;
use serde_json::json;

use crate::learn::TrainArgs;

/// A data-parallel learner, its counters, and the runtime that keeps its bus
/// running (drop it after the learner).
#[derive(Debug)]
pub(crate) struct Parallel {
    /// The learner `fit` trains.
    pub(crate) learner: DataParallel,
    /// Its coordinator's counters.
    pub(crate) stats: Arc<Mutex<Stats>>,
    /// Workers.
    pub(crate) workers: usize,
    /// Runs the bus.
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// A free loopback TCP port for the coordinator's session.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port for the coordinator")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `workers` workers and waits until they are ready.
pub(crate) fn start(
    args: &TrainArgs,
    workers: usize,
    spec: &LearnerSpec,
    train: &Data,
) -> anyhow::Result<Parallel> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let endpoint = format!("tcp/127.0.0.1:{}", free_port()?);
    let bus = runtime
        .block_on(Bus::open(BusConfig::peer(
            std::slice::from_ref(&endpoint),
            &[],
        )))
        .context("cannot open the coordinator's bus")?;
    let job = format!("cli-{}", std::process::id());
    let exe = std::env::current_exe().context("cannot find the evospike executable")?;
    let worker_args = worker_args(args, spec, &job, workers, &endpoint)?;
    let pool = Pool::spawn(
        workers,
        Box::new(move |index| {
            let mut command = Command::new(&exe);
            command
                .args(&worker_args)
                .args(["--name", &format!("dp-worker-{index}")])
                .args(["--param", &format!("index={index}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            // A worker is told everything by its flags: none of this process's
            // node settings (a training service's parameters, name, bus) apply.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("EVOSPIKE_") {
                    command.env_remove(key);
                }
            }
            // The workers' own progress lines would drown this run's.
            if std::env::var_os("RUST_LOG").is_none() {
                command.env("RUST_LOG", "warn");
            }
            command
        }),
    )
    .context("cannot start the workers")?;
    let mut settings = Settings::new(job, workers);
    settings.step_timeout = Duration::from_secs_f64(args.step_timeout);
    let mut coordinator = Coordinator::new(
        bus,
        settings,
        wire::fingerprint(spec, train),
        Some(pool),
        Box::new(|event| eprintln!("data-parallel: {event}")),
    )?;
    coordinator.wait_for_workers()?;
    let learner = SurrogateGradient::new(spec).context("cannot build the learner")?;
    Ok(Parallel {
        stats: coordinator.stats_handle(),
        learner: DataParallel::new(learner, coordinator),
        workers,
        runtime,
    })
}

/// `run train_worker …` for this run: everything but the index and name.
fn worker_args(
    args: &TrainArgs,
    spec: &LearnerSpec,
    job: &str,
    workers: usize,
    endpoint: &str,
) -> anyhow::Result<Vec<String>> {
    let path = |p: &Path| -> anyhow::Result<String> {
        let p = if p.exists() {
            std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?
        } else {
            p.to_path_buf()
        };
        Ok(p.display().to_string())
    };
    let mut out = vec![
        "run".to_owned(),
        "train_worker".to_owned(),
        "--connect".to_owned(),
        endpoint.to_owned(),
    ];
    let mut param = |key: &str, value: serde_json::Value| {
        out.push("--param".to_owned());
        out.push(format!("{key}={value}"));
    };
    param("data", json!(path(&args.data)?));
    if let Some(labels) = &args.labels {
        param("labels", json!(path(labels)?));
    }
    if let Some(h) = args.holdout {
        param("holdout", json!(h));
    }
    param("classes", json!(spec.classes.len()));
    param(
        "learner_params",
        serde_json::Value::Object(spec.params.clone()),
    );
    param("seed", json!(spec.seed));
    param("job", json!(job));
    param("workers", json!(workers));
    Ok(out)
}
