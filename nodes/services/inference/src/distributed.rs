//! Distributed serving: a model's layers run as layer nodes — the pipeline
//! `launch/model.yaml` runs — and the service feeds them and reads their answers
//! over the bus.
//!
//! A [`Pipeline`] is one model served this way:
//!
//! ```text
//!   service ──► <base>-<layer 1> ──► … ──► <base>-<layer n> ──► <base>-readout ──► service
//!   (encoder: <base>-input/spikes)                               (<base>-readout/scores)
//! ```
//!
//! - **Launch.** The model's two files go to a private temporary directory; one
//!   `evospike run layer` process per layer and one `evospike run readout` start
//!   on the service's bus (its namespace, router and security settings), each
//!   dying with the service. The pipeline is ready once its first layer
//!   subscribes to the input; every node waits for its own downstream before it
//!   steps, so nothing published from then on is lost.
//! - **Correlation.** The service is the pipeline's encoder: sample *k* is
//!   published as steps `k·S … k·S + S − 1` (`S` the model's steps per sample,
//!   encoded by the model's ENCODER plugin), the layer nodes reset every `S`
//!   steps, and the readout stamps sample *k*'s class scores with step
//!   `k·S + S − 1`. One thread publishes the samples in the order they were
//!   numbered, so concurrent requests share the pipeline without mixing: each
//!   waits for the scores of its own steps. At most [`IN_FLIGHT`] samples are
//!   in the pipeline at a time, so the bus's queues between the nodes stay short.
//! - **Failure.** A node that exits, or an answer that does not come within the
//!   answer timeout, breaks the pipeline: every waiting sample gets a 503 naming
//!   the node (and the last lines of its log), and the service launches a fresh
//!   pipeline for the next request. Nothing waits forever.
//! - **Cleanup.** Dropping the pipeline (the model leaves the cache) or
//!   [`Pipeline::stop`] (the service shuts down) kills its nodes and removes
//!   the directory.
//!
//! The nodes compute what [`InferenceNet`](evospike_learning::infer::InferenceNet)
//! computes (the same plugins, weights and order of operations), so a
//! distributed model predicts what the in-process one predicts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use evospike_bus::{Bus, BusConfig, SpikePublisher, SpikeSubscriber, TransportKind};
use evospike_http::ApiError;
use evospike_learning::model::{MANIFEST_FILE, WEIGHTS_FILE};
use evospike_plugin_api::{Encoder, EncoderSpec, NetworkSpec};
use evospike_schemas::contract::{self, env};
use evospike_schemas::{SpikeBody, SpikeTensor};
use tokio::sync::{oneshot, watch};

use crate::neurons::Neurons;

/// How the service runs distributed models.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// The evospike executable that runs the nodes.
    pub exe: PathBuf,
    /// Prefix of the nodes' names and topics (the service node's name).
    pub prefix: String,
    /// Longest the nodes may take to start.
    pub start_timeout: Duration,
    /// Longest a sample waits for its answer.
    pub answer_timeout: Duration,
}

/// A sample's scores, or why the pipeline cannot give them.
type Scores = Result<Vec<f32>, String>;

struct State {
    next_sample: u64,
    /// Samples whose scores came back.
    answered: u64,
    /// Waiting samples by the step their scores carry.
    pending: HashMap<u64, oneshot::Sender<Scores>>,
}

/// Most samples in the pipeline at a time: the feeder waits for answers past
/// it, so the bus's queues between the nodes never back up (a transport that
/// stays blocked too long closes its link and loses steps).
const IN_FLIGHT: u64 = 8;

/// What the feeder, the collector, the supervisors and the requests share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a sample is answered or the pipeline breaks.
    answered: std::sync::Condvar,
    /// Why the pipeline broke, once it did.
    broken: watch::Sender<Option<String>>,
    /// Tells the supervisors to kill the nodes.
    stop: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `sample` may enter the pipeline ([`IN_FLIGHT`]); false once
    /// the pipeline broke.
    fn wait_for_room(&self, sample: u64) -> bool {
        let mut state = self.lock();
        loop {
            if self.broken.borrow().is_some() {
                return false;
            }
            if sample < state.answered + IN_FLIGHT {
                return true;
            }
            state = self
                .answered
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A sample's scores came back: hand them over and let the next sample in.
    fn answer(&self, step: u64, scores: Scores) {
        let waiting = {
            let mut state = self.lock();
            state.answered += 1;
            state.pending.remove(&step)
        };
        self.answered.notify_all();
        match waiting {
            Some(tx) => {
                let _ = tx.send(scores);
            }
            None => tracing::debug!(step, "scores nobody waits for (a timed-out sample)"),
        }
    }

    /// Breaks the pipeline (the first reason stays), which kills its nodes, and
    /// fails every waiting sample.
    fn fail(&self, reason: String) {
        let _ = self.stop.send(true);
        let first = self.broken.send_if_modified(|broken| {
            if broken.is_none() {
                *broken = Some(reason.clone());
                true
            } else {
                false
            }
        });
        if first {
            tracing::error!(%reason, "a distributed model broke");
        }
        let reason = self.broken.borrow().clone().unwrap_or(reason);
        let waiting: Vec<_> = self.lock().pending.drain().map(|(_, tx)| tx).collect();
        self.answered.notify_all();
        for tx in waiting {
            let _ = tx.send(Err(reason.clone()));
        }
    }
}

/// A sample for the feeder: its number and values.
struct Feed {
    sample: u64,
    values: Vec<f32>,
}

/// A model served by layer nodes (see the module docs).
pub struct Pipeline {
    nodes: Vec<String>,
    steps: u32,
    answer_timeout: Duration,
    shared: Arc<Shared>,
    feed: Mutex<Option<std::sync::mpsc::Sender<Feed>>>,
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    collector: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("nodes", &self.nodes)
            .field("broken", &self.broken())
            .finish_non_exhaustive()
    }
}

/// Node names and topics may hold letters, digits, `-` and `_`.
fn name_part(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::unavailable(message, 1)
}

/// The `EVOSPIKE_*` bus variables that put a node on `config`'s bus: its
/// namespace, the endpoints it connects to (and those it listens on, unless on
/// port 0), shared memory and its security settings.
///
/// # Errors
/// The bus is in-process, or connects nowhere a node could reach.
fn bus_env(config: &BusConfig) -> Result<Vec<(&'static str, String)>, String> {
    if config.transport != TransportKind::Zenoh {
        return Err(
            "distributed serving needs the zenoh bus (this service's bus is in-process)".into(),
        );
    }
    let connect: Vec<&String> = config
        .connect
        .iter()
        .chain(config.listen.iter().filter(|e| !e.ends_with(":0")))
        .collect();
    if connect.is_empty() {
        return Err(
            "distributed serving needs an endpoint the layer nodes can reach: start the service with --connect ROUTER"
                .into(),
        );
    }
    let mut vars = vec![
        (env::BUS_TRANSPORT, "zenoh".to_owned()),
        (env::BUS_MODE, "peer".to_owned()),
        (env::BUS_CONNECT, contract::join_list(connect)),
        (env::NAMESPACE, config.namespace.clone()),
        (
            env::BUS_SHM,
            if config.shared_memory { "1" } else { "0" }.to_owned(),
        ),
    ];
    let path = |p: &Path| p.display().to_string();
    if let Some(tls) = &config.tls {
        vars.push((env::BUS_TLS_CA, path(&tls.ca)));
        vars.extend(tls.cert.as_deref().map(|p| (env::BUS_TLS_CERT, path(p))));
        vars.extend(tls.key.as_deref().map(|p| (env::BUS_TLS_KEY, path(p))));
        vars.push((
            env::BUS_TLS_MTLS,
            if tls.mtls { "1" } else { "0" }.to_owned(),
        ));
    }
    let auth = &config.auth;
    vars.extend(auth.user.clone().map(|u| (env::BUS_USER, u)));
    vars.extend(auth.password.clone().map(|p| (env::BUS_PASSWORD, p)));
    vars.extend(
        auth.secret_file
            .as_deref()
            .map(|p| (env::BUS_SECRET_FILE, path(p))),
    );
    Ok(vars)
}

/// The bus variables a node must not inherit from the service.
const NOT_INHERITED: [&str; 13] = [
    env::BUS_LISTEN,
    env::BUS_ZID,
    env::BUS_ACL,
    env::BUS_USERS_FILE,
    env::BUS_TLS_CA,
    env::BUS_TLS_CERT,
    env::BUS_TLS_KEY,
    env::BUS_TLS_MTLS,
    env::BUS_USER,
    env::BUS_PASSWORD,
    env::BUS_SECRET_FILE,
    env::PLUGINS,
    env::REMAP,
];

/// One node to start: its name, kind and parameters.
struct NodeSpec {
    name: String,
    kind: &'static str,
    params: serde_json::Value,
}

/// The nodes of `network` (model files in `model_dir`) under names `base-…`.
fn node_specs(
    network: &NetworkSpec,
    model_dir: &Path,
    base: &str,
    input: &str,
    wait_s: f64,
) -> Vec<NodeSpec> {
    let model = model_dir.display().to_string();
    let mut specs = Vec::with_capacity(network.layers.len() + 1);
    let mut below = input.to_owned();
    for def in &network.layers {
        let name = format!("{base}-{}", name_part(&def.name));
        specs.push(NodeSpec {
            params: serde_json::json!({
                "model": model,
                "layer": def.name,
                "inputs": [{"topic": below}],
                "wait_subscribers_s": wait_s,
            }),
            kind: "layer",
            name: name.clone(),
        });
        below = format!("{name}/spikes");
    }
    specs.push(NodeSpec {
        name: format!("{base}-readout"),
        kind: "readout",
        params: serde_json::json!({"model": model, "input": below, "wait_subscribers_s": wait_s}),
    });
    specs
}

/// What a launch needs besides the settings.
#[derive(Debug)]
pub struct LaunchModel<'a> {
    /// The model's id, for names and messages.
    pub model_id: &'a str,
    /// Its `model.json`.
    pub manifest: &'a [u8],
    /// Its `weights.safetensors`.
    pub weights: &'a [u8],
    /// Its network.
    pub network: &'a NetworkSpec,
    /// A number that makes the nodes' names unique in this service.
    pub instance: u64,
}

/// Numbers the pipelines of this process, so their nodes' names never repeat.
static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// A model served distributed: its files, and the [`Pipeline`] running it now
/// — launched again when the last one broke, once however many requests find
/// it broken.
pub struct DistributedModel {
    bus: Bus,
    settings: PipelineSettings,
    neurons: Arc<Neurons>,
    model_id: String,
    manifest: Vec<u8>,
    weights: Vec<u8>,
    network: NetworkSpec,
    current: tokio::sync::Mutex<Option<Arc<Pipeline>>>,
    launches: AtomicU64,
}

impl std::fmt::Debug for DistributedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedModel")
            .field("model_id", &self.model_id)
            .field("launches", &self.launches)
            .finish_non_exhaustive()
    }
}

impl DistributedModel {
    /// Launches `model_id` (its two files and network) as layer nodes on `bus`.
    ///
    /// # Errors
    /// As [`Pipeline::launch`].
    pub async fn start(
        bus: Bus,
        settings: PipelineSettings,
        neurons: Arc<Neurons>,
        model_id: String,
        files: (Vec<u8>, Vec<u8>),
        network: NetworkSpec,
    ) -> Result<DistributedModel, ApiError> {
        let (manifest, weights) = files;
        let model = DistributedModel {
            bus,
            settings,
            neurons,
            model_id,
            manifest,
            weights,
            network,
            current: tokio::sync::Mutex::new(None),
            launches: AtomicU64::new(0),
        };
        model.pipeline().await?;
        Ok(model)
    }

    /// The running pipeline; a new one when there is none or it broke.
    ///
    /// # Errors
    /// As [`Pipeline::launch`].
    pub async fn pipeline(&self) -> Result<Arc<Pipeline>, ApiError> {
        let mut current = self.current.lock().await;
        if let Some(pipeline) = current.as_ref().filter(|p| p.broken().is_none()) {
            return Ok(pipeline.clone());
        }
        if let Some(old) = current.take() {
            old.stop().await;
            tracing::warn!(model = %self.model_id, "relaunching the distributed model's nodes");
        }
        let pipeline = Arc::new(
            Pipeline::launch(
                &self.bus,
                &self.settings,
                &self.neurons,
                LaunchModel {
                    model_id: &self.model_id,
                    manifest: &self.manifest,
                    weights: &self.weights,
                    network: &self.network,
                    instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
                },
            )
            .await?,
        );
        self.launches.fetch_add(1, Ordering::Relaxed);
        *current = Some(pipeline.clone());
        Ok(pipeline)
    }

    /// The nodes running it now (none while it is being relaunched).
    pub fn nodes(&self) -> Vec<String> {
        self.current
            .try_lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.nodes().to_vec()))
            .unwrap_or_default()
    }

    /// Samples waiting for their answers.
    pub fn waiting(&self) -> usize {
        self.current
            .try_lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.waiting()))
            .unwrap_or(0)
    }

    /// Stops its nodes (the service is shutting down).
    pub async fn stop(&self) {
        if let Some(pipeline) = self.current.lock().await.take() {
            pipeline.stop().await;
        }
    }
}

impl Pipeline {
    /// Starts `model`'s nodes on `bus` and waits until they take samples.
    ///
    /// Call it from a Tokio worker thread (see
    /// [`die_with_service`](evospike_http::child::die_with_service)).
    ///
    /// # Errors
    /// 400 when the service's bus cannot host nodes, 502 when the model's
    /// encoder cannot be built, 503 when the nodes cannot start (with why).
    pub async fn launch(
        bus: &Bus,
        settings: &PipelineSettings,
        neurons: &Neurons,
        model: LaunchModel<'_>,
    ) -> Result<Pipeline, ApiError> {
        let vars = bus_env(bus.config()).map_err(ApiError::bad_request)?;
        let net = model.network;
        let encoder = neurons
            .encoder(
                &net.encoder.plugin,
                &EncoderSpec {
                    num_inputs: net.input_size,
                    num_steps: net.steps_per_sample,
                    dt_ms: net.dt_ms,
                    params: net.encoder.params.clone(),
                    seed: 0,
                },
            )
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "model `{}`: its encoder cannot be built: {e}",
                        model.model_id
                    ),
                )
            })?;
        let dir = model_dir(&model).map_err(|e| {
            unavailable(format!(
                "cannot write the model's files for its layer nodes: {e}"
            ))
        })?;
        let base = name_part(&format!(
            "{}-{}-{}",
            settings.prefix, model.model_id, model.instance
        ));
        let input = format!("{base}-input/spikes");
        let specs = node_specs(
            net,
            &dir.path().join("model"),
            &base,
            &input,
            settings.start_timeout.as_secs_f64(),
        );
        let bus_err = |e: evospike_bus::BusError| unavailable(format!("the bus refused: {e}"));
        let publisher = bus.spike_publisher(&input).map_err(bus_err)?;
        let readout = &specs[specs.len() - 1].name;
        let subscriber = bus
            .spike_subscriber(&format!("{readout}/scores"))
            .map_err(bus_err)?;

        let (broken, mut broken_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_sample: 0,
                answered: 0,
                pending: HashMap::new(),
            }),
            broken,
            stop: watch::channel(false).0,
            answered: std::sync::Condvar::new(),
        });
        let stop = &shared.stop;
        let mut supervisors = Vec::with_capacity(specs.len());
        for spec in &specs {
            let log = dir.path().join(format!("{}.log", spec.name));
            let child = spawn_node(&settings.exe, spec, &vars, &log).map_err(|e| {
                unavailable(format!(
                    "cannot start node `{}` ({} {}): {e}",
                    spec.name,
                    settings.exe.display(),
                    contract::run_args(spec.kind).join(" ")
                ))
            });
            let child = match child {
                Ok(child) => child,
                Err(err) => {
                    let _ = stop.send(true);
                    return Err(err);
                }
            };
            supervisors.push(tokio::spawn(supervise(
                spec.name.clone(),
                child,
                log,
                stop.subscribe(),
                shared.clone(),
            )));
        }
        let nodes: Vec<String> = specs.into_iter().map(|s| s.name).collect();
        tracing::info!(model = %model.model_id, nodes = ?nodes, "distributed model: layer nodes started");

        let ready = tokio::select! {
            found = publisher.wait_for_subscribers(settings.start_timeout) => match found {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!(
                    "its first layer node did not subscribe within {:.0} s",
                    settings.start_timeout.as_secs_f64()
                )),
                Err(e) => Err(format!("the bus failed: {e}")),
            },
            reason = broken_rx.wait_for(Option::is_some) => Err(reason
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| "it broke".into())),
        };
        if let Err(reason) = ready {
            let _ = stop.send(true);
            for supervisor in supervisors {
                let _ = supervisor.await;
            }
            return Err(unavailable(format!(
                "model `{}` cannot be served distributed: {reason}",
                model.model_id
            )));
        }

        let (feed, feed_rx) = std::sync::mpsc::channel();
        let feeder = Feeder {
            publisher,
            encoder,
            steps: net.steps_per_sample,
            source: base,
        };
        {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("feed-{}", name_part(model.model_id)))
                .spawn(move || feeder.run(&feed_rx, &shared))
                .map_err(|e| unavailable(format!("cannot start the feeder thread: {e}")))?;
        }
        let collector = tokio::spawn(collect(subscriber, shared.clone()));
        Ok(Pipeline {
            nodes,
            steps: net.steps_per_sample,
            answer_timeout: settings.answer_timeout,
            shared,
            feed: Mutex::new(Some(feed)),
            supervisors: Mutex::new(supervisors),
            collector,
            _dir: dir,
        })
    }

    /// The names of its nodes, layers first, the readout last.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Why it cannot answer any more, once it broke.
    pub fn broken(&self) -> Option<String> {
        self.shared.broken.borrow().clone()
    }

    /// Samples waiting for their answers.
    pub fn waiting(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// The class scores of each sample (its values), in order; at most
    /// `max_queue` samples may wait at a time.
    ///
    /// # Errors
    /// 503 when the pipeline is broken or full (or breaks meanwhile), 504 when
    /// an answer does not come in time (which breaks it).
    pub async fn scores(
        &self,
        samples: Vec<Vec<f32>>,
        max_queue: usize,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let receivers = {
            let mut state = self.shared.lock();
            if let Some(reason) = self.broken() {
                return Err(unavailable(reason));
            }
            if state.pending.len() + samples.len() > max_queue {
                return Err(unavailable(format!(
                    "the distributed model's queue is full ({} samples waiting, at most {max_queue}); retry shortly",
                    state.pending.len()
                )));
            }
            let feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = feed.as_ref() else {
                return Err(unavailable("the distributed model was stopped"));
            };
            let mut receivers = Vec::with_capacity(samples.len());
            for values in samples {
                let sample = state.next_sample;
                state.next_sample += 1;
                let last_step = (sample + 1) * u64::from(self.steps) - 1;
                let (tx, rx) = oneshot::channel();
                state.pending.insert(last_step, tx);
                // Sent under the lock: the feeder sees samples in their order.
                if feed.send(Feed { sample, values }).is_err() {
                    state.pending.remove(&last_step);
                    return Err(unavailable("the distributed model's feeder stopped"));
                }
                receivers.push((last_step, rx));
            }
            receivers
        };
        let deadline = tokio::time::Instant::now() + self.answer_timeout;
        let mut answers = Vec::with_capacity(receivers.len());
        for (step, rx) in receivers {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Ok(scores))) => answers.push(scores),
                Ok(Ok(Err(reason))) => return Err(unavailable(reason)),
                Ok(Err(_)) => return Err(unavailable("the distributed model was unloaded")),
                Err(_) => {
                    self.shared.lock().pending.remove(&step);
                    let reason = format!(
                        "no answer from the readout node within {:.0} s (step {step}): a node of the distributed model is stuck; it is restarted on the next request",
                        self.answer_timeout.as_secs_f64()
                    );
                    self.shared.fail(reason.clone());
                    return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, reason));
                }
            }
        }
        Ok(answers)
    }

    /// Kills its nodes and waits for them to end; waiting samples get a 503.
    pub async fn stop(&self) {
        self.halt();
        let supervisors: Vec<_> =
            std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|e| e.into_inner()));
        for supervisor in supervisors {
            let _ = supervisor.await;
        }
    }

    /// Tells the supervisors to kill the nodes, stops the feeder and the collector.
    fn halt(&self) {
        let _ = self.shared.stop.send(true);
        self.feed.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.collector.abort();
        self.shared
            .fail("the distributed model was unloaded".into());
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The model's files in a fresh private directory (`<dir>/model/`).
fn model_dir(model: &LaunchModel<'_>) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("evospike-inference-")
        .tempdir()?;
    let files = dir.path().join("model");
    std::fs::create_dir(&files)?;
    std::fs::write(files.join(MANIFEST_FILE), model.manifest)?;
    std::fs::write(files.join(WEIGHTS_FILE), model.weights)?;
    Ok(dir)
}

/// Starts one node, its output into `log`.
fn spawn_node(
    exe: &Path,
    spec: &NodeSpec,
    vars: &[(&'static str, String)],
    log: &Path,
) -> std::io::Result<tokio::process::Child> {
    let out = std::fs::File::create(log)?;
    let mut command = tokio::process::Command::new(exe);
    command
        .args(contract::run_args(spec.kind))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .kill_on_drop(true);
    for var in NOT_INHERITED {
        command.env_remove(var);
    }
    command
        .env(env::NODE_NAME, &spec.name)
        .env(env::PARAMS, spec.params.to_string())
        .envs(vars.iter().map(|(k, v)| (k, v)));
    evospike_http::child::die_with_service(&mut command);
    command.spawn()
}

/// The last lines of a node's log, to say why it ended.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// How a process ended, in words.
fn ended(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(9)) => "was killed (SIGKILL)".to_owned(),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        },
        Err(err) => format!("cannot be waited for: {err}"),
    }
}

/// Waits for a node to end (which breaks the pipeline) or to be stopped (it
/// is killed).
async fn supervise(
    name: String,
    mut child: tokio::process::Child,
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    tokio::select! {
        status = child.wait() => {
            let tail = log_tail(&log);
            let mut reason = format!("node `{name}` of the distributed model {}", ended(status));
            if !tail.is_empty() {
                reason.push_str(&format!(" (its log: {tail})"));
            }
            reason.push_str("; it is restarted on the next request");
            shared.fail(reason);
        }
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// Publishes the samples as the pipeline's encoder.
struct Feeder {
    publisher: SpikePublisher,
    encoder: Box<dyn Encoder>,
    steps: u32,
    source: String,
}

impl Feeder {
    fn run(mut self, samples: &std::sync::mpsc::Receiver<Feed>, shared: &Shared) {
        let outputs = self.encoder.num_outputs();
        let tensor = if self.encoder.analog() {
            SpikeTensor::builder(self.source.as_str())
                .shape([outputs as u32])
                .analog(vec![0.0; outputs])
        } else {
            SpikeTensor::zeros(self.source.as_str(), &[outputs as u32])
        };
        let mut tensor = match tensor {
            Ok(tensor) => tensor,
            Err(err) => return shared.fail(format!("cannot build the input tensor: {err}")),
        };
        while let Ok(Feed { sample, values }) = samples.recv() {
            if !shared.wait_for_room(sample) {
                return;
            }
            self.encoder.set_sample(&values);
            for t in 0..self.steps {
                match &mut tensor.body {
                    SpikeBody::Analog(values) => self.encoder.encode_step_analog(t, values),
                    SpikeBody::Bitset(words) => {
                        words.fill(0);
                        self.encoder.encode_step(t, words);
                    }
                    _ => unreachable!("built as a bitset or analog tensor"),
                }
                tensor.header.step = sample * u64::from(self.steps) + u64::from(t);
                if let Err(err) = self.publisher.publish(&mut tensor) {
                    return shared.fail(format!("cannot publish to the first layer node: {err}"));
                }
            }
        }
    }
}

/// Hands the readout's scores to the samples waiting for them.
async fn collect(subscriber: SpikeSubscriber, shared: Arc<Shared>) {
    loop {
        let msg = match subscriber.recv().await {
            Ok(msg) => msg,
            Err(err) => {
                return shared.fail(format!("cannot read the readout's scores: {err}"));
            }
        };
        let view = msg.view();
        let step = view.header.step.to_native();
        let scores = view
            .analog()
            .map(<[f32]>::to_vec)
            .ok_or_else(|| "the readout sent spikes, not class scores".to_owned());
        shared.answer(step, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_chain_from_the_input_to_the_readout() {
        let net: NetworkSpec = serde_json::from_value(serde_json::json!({
            "input_size": 4, "input_shape": [2, 2],
            "encoder": {"plugin": "CurrentEncoder"},
            "dt_ms": 1.0, "steps_per_sample": 8,
            "layers": [
                {"name": "hidden", "size": 3, "neuron": "LIFNeuron"},
                {"name": "out put", "size": 2, "neuron": "LIFNeuron"}
            ],
            "readout": "membrane", "classes": ["a", "b"]
        }))
        .unwrap();
        let specs = node_specs(
            &net,
            Path::new("/m"),
            "inf-x-1",
            "inf-x-1-input/spikes",
            5.0,
        );
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["inf-x-1-hidden", "inf-x-1-out_put", "inf-x-1-readout"]
        );
        assert_eq!(
            specs[0].params["inputs"][0]["topic"],
            "inf-x-1-input/spikes"
        );
        assert_eq!(
            specs[1].params["inputs"][0]["topic"],
            "inf-x-1-hidden/spikes"
        );
        assert_eq!(specs[2].params["input"], "inf-x-1-out_put/spikes");
        assert_eq!(specs[2].kind, "readout");
        assert_eq!(name_part("a/b c*é"), "a_b_c__");
    }

    #[test]
    fn nodes_join_the_services_bus_but_never_its_listeners() {
        let mut config = BusConfig::peer(
            &["tcp/127.0.0.1:0".into(), "tcp/127.0.0.1:7450".into()],
            &["tcp/127.0.0.1:7447".into()],
        );
        config.namespace = "lab".into();
        let vars: HashMap<_, _> = bus_env(&config).unwrap().into_iter().collect();
        assert_eq!(
            vars[env::BUS_CONNECT],
            "tcp/127.0.0.1:7447,tcp/127.0.0.1:7450"
        );
        assert_eq!(vars[env::NAMESPACE], "lab");
        assert!(!vars.contains_key(env::BUS_LISTEN));
        assert!(NOT_INHERITED.contains(&env::BUS_LISTEN));
        config.connect.clear();
        config.listen = vec!["tcp/127.0.0.1:0".into()];
        assert!(bus_env(&config).unwrap_err().contains("--connect"));
        assert!(bus_env(&BusConfig::local("x"))
            .unwrap_err()
            .contains("zenoh"));
    }

    #[test]
    fn an_ended_node_says_how() {
        use std::os::unix::process::ExitStatusExt as _;
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(ended(Ok(killed)), "was killed (SIGKILL)");
        let failed = std::process::ExitStatus::from_raw(2 << 8);
        assert_eq!(ended(Ok(failed)), "exited with code 2");
    }
}
