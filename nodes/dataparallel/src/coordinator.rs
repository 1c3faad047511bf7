//! The coordinator: a [`GradientSource`] that gets each batch's gradient from
//! worker processes over the bus, and [`DataParallel`], the learner that trains
//! with it.
//!
//! Each step it publishes the weights with the next version, then collects the
//! workers' gradients of that version and averages them weighted by their rows:
//! `Σ rows_k·g_k / Σ rows_k`, which is the whole batch's mean gradient, so the
//! optimizer step is the single-process one up to floating-point summation order.
//!
//! Faults never hang a step. A worker that exits, or sends nothing for
//! [`Settings::step_timeout`] after it was sent the weights, is reported
//! ([`Event`], counted in [`Stats`]) and the step goes on with the gradients that
//! came (reweighted by their rows). A worker this coordinator started ([`Pool`])
//! is killed if it still runs and started again; one it did not start (a launch
//! file's node) is no longer waited for until it says hello or sends a gradient
//! of the current version again. A worker that says hello during a step — it
//! started, or its copy of the weights was lost and it waited idle — is sent the
//! step's weights again, its deadline starting then. A step that gets no
//! gradient at all within [`Settings::stall_timeout`] fails training.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evospike_bus::{Bus, BusError, SpikeMsg, SpikePublisher, SpikeSubscriber};
use evospike_learning::surrogate::{BatchPlan, GradientSource, GradientStats, SurrogateGradient};
use evospike_plugin_api::{
    Checkpoint, Control, Dataset, EpochReport, Learner, NetworkSpec, Params, PluginError, Progress,
    Tensor,
};
use evospike_schemas::SpikeTensor;
use serde::Serialize;

use crate::pool::Pool;
use crate::wire::{self, PARAMS_HEADER};

/// How a coordinator runs a job.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The job's name: its topics are `train/<job>/…`.
    pub job: String,
    /// Workers (K).
    pub workers: usize,
    /// How long a step waits for a worker's gradient.
    pub step_timeout: Duration,
    /// How long training waits for the first workers to be ready.
    pub start_timeout: Duration,
    /// How long a step may go without any gradient before training fails.
    pub stall_timeout: Duration,
}

impl Settings {
    /// `workers` workers of job `job`, with timeouts of 30 s per step, 120 s to
    /// start and 300 s without any gradient.
    pub fn new(job: impl Into<String>, workers: usize) -> Settings {
        Settings {
            job: job.into(),
            workers,
            step_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(300),
        }
    }
}

/// Something that happened to a worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A worker said it is ready.
    Joined {
        /// The worker.
        worker: usize,
    },
    /// A worker's process exited.
    Exited {
        /// The worker.
        worker: usize,
        /// How (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
    },
    /// A worker sent no gradient of `version` in time; the step went on without it.
    Late {
        /// The worker.
        worker: usize,
        /// The version it missed.
        version: u64,
    },
    /// A worker was started again.
    Respawned {
        /// The worker.
        worker: usize,
    },
    /// A worker of other parameters or other data was ignored.
    Refused {
        /// The worker.
        worker: usize,
        /// Its fingerprint.
        fingerprint: String,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Joined { worker } => write!(f, "worker {worker} is ready"),
            Event::Exited { worker, status } => write!(f, "worker {worker} exited ({status})"),
            Event::Late { worker, version } => write!(
                f,
                "worker {worker} sent no gradient for version {version} in time; the step went on without it"
            ),
            Event::Respawned { worker } => write!(f, "worker {worker} started again"),
            Event::Refused {
                worker,
                fingerprint,
            } => write!(
                f,
                "worker {worker} runs other parameters or data (fingerprint {fingerprint}); ignored"
            ),
        }
    }
}

/// Counters of a coordinator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Steps taken.
    pub steps: u64,
    /// Worker processes that exited.
    pub exited: u64,
    /// Gradients that did not come in time.
    pub late: u64,
    /// Workers started again.
    pub respawned: u64,
    /// Gradients of an older version, dropped.
    pub stale: u64,
    /// Steps that went on with fewer rows than the batch.
    pub partial_steps: u64,
    /// Seconds from publishing the weights to the last gradient, summed over steps.
    pub round_trip_s: f64,
    /// Seconds the slowest worker of each step computed, summed.
    pub compute_s: f64,
    /// Seconds averaging the gradients, summed.
    pub reduce_s: f64,
}

impl Stats {
    /// The time per step not spent computing: publishing, transfer, waiting.
    pub fn bus_s(&self) -> f64 {
        (self.round_trip_s - self.compute_s).max(0.0)
    }

    /// The figures as model metrics (`dp_*`, milliseconds per step).
    pub fn metrics(&self, workers: usize) -> Vec<(String, f64)> {
        let per_step = |s: f64| 1e3 * s / self.steps.max(1) as f64;
        vec![
            ("dp_workers".into(), workers as f64),
            ("dp_steps".into(), self.steps as f64),
            ("dp_compute_ms_per_step".into(), per_step(self.compute_s)),
            ("dp_bus_ms_per_step".into(), per_step(self.bus_s())),
            ("dp_reduce_ms_per_step".into(), per_step(self.reduce_s)),
            ("dp_worker_exits".into(), self.exited as f64),
            ("dp_late_gradients".into(), self.late as f64),
            ("dp_respawns".into(), self.respawned as f64),
            ("dp_partial_steps".into(), self.partial_steps as f64),
        ]
    }
}

/// Coordinator failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The bus failed.
    #[error("data-parallel job {job}: {source}")]
    Bus {
        /// The job.
        job: String,
        /// What failed.
        #[source]
        source: BusError,
    },
    /// A worker this coordinator started exited again and again before it was
    /// ever ready (its error is on stderr).
    #[error("data-parallel job {job}: worker {worker} exited {exits} times before it was ready; see its error above")]
    WorkerFails {
        /// The job.
        job: String,
        /// The worker.
        worker: usize,
        /// How often it exited.
        exits: u32,
    },
    /// No worker became ready in time.
    #[error("data-parallel job {job}: no worker was ready within {waited:?} (of {workers})")]
    NoWorkers {
        /// The job.
        job: String,
        /// Workers expected.
        workers: usize,
        /// How long it waited.
        waited: Duration,
    },
}

/// Exits before its first hello after which a worker is given up on.
const MAX_EARLY_EXITS: u32 = 3;

/// Reports worker events (the CLI prints them, a node logs them).
pub type OnEvent = Box<dyn FnMut(&Event) + Send>;

/// The coordinator of one job.
pub struct Coordinator {
    settings: Settings,
    fingerprint: String,
    publisher: SpikePublisher,
    subscriber: SpikeSubscriber,
    params: SpikeTensor,
    sum: Vec<f32>,
    version: u64,
    /// Whether a step waits for each worker.
    active: Vec<bool>,
    pool: Option<Pool>,
    /// Exits of each worker that was never ready yet.
    early_exits: Vec<u32>,
    /// Whether each worker said hello at least once.
    ever_ready: Vec<bool>,
    stats: Stats,
    /// A copy of `stats` for whoever holds the coordinator only as a `Learner`.
    shared: Arc<Mutex<Stats>>,
    on_event: OnEvent,
    _bus: Bus,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("settings", &self.settings)
            .field("version", &self.version)
            .field("active", &self.active)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator of `settings.job` on `bus`, for workers whose
    /// [`wire::fingerprint`] is `fingerprint`; `pool` holds the workers when it
    /// started them itself. Subscribes to the gradients at once, so the workers'
    /// hellos are not missed; call [`wait_for_workers`](Self::wait_for_workers) next.
    ///
    /// # Errors
    /// The topics cannot be declared.
    pub fn new(
        bus: Bus,
        settings: Settings,
        fingerprint: String,
        pool: Option<Pool>,
        on_event: OnEvent,
    ) -> Result<Coordinator, CoordinatorError> {
        let bus_err = |source| CoordinatorError::Bus {
            job: settings.job.clone(),
            source,
        };
        let subscriber = bus
            .spike_subscriber(&wire::all_grads_topic(&settings.job))
            .map_err(bus_err)?;
        let publisher = bus
            .spike_publisher(&wire::params_topic(&settings.job))
            .map_err(bus_err)?;
        let workers = settings.workers;
        Ok(Coordinator {
            active: vec![false; workers],
            settings,
            fingerprint,
            publisher,
            subscriber,
            params: wire::analog("coordinator", PARAMS_HEADER),
            sum: Vec::new(),
            version: 0,
            early_exits: vec![0; workers],
            ever_ready: vec![false; workers],
            pool,
            stats: Stats::default(),
            shared: Arc::default(),
            on_event,
            _bus: bus,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The counters, kept up to date after every step, for a caller that gave the
    /// coordinator away (inside a boxed [`DataParallel`]).
    pub fn stats_handle(&self) -> Arc<Mutex<Stats>> {
        Arc::clone(&self.shared)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Waits until every worker said it is ready, or [`Settings::start_timeout`]
    /// passes with at least one ready (the others join when they are).
    ///
    /// # Errors
    /// No worker was ready in time.
    pub fn wait_for_workers(&mut self) -> Result<(), CoordinatorError> {
        let started = Instant::now();
        while self.active.iter().any(|a| !a) {
            let left = self
                .settings
                .start_timeout
                .saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            self.poll_pool();
            if let Some(worker) =
                (0..self.settings.workers).find(|&k| self.early_exits[k] >= MAX_EARLY_EXITS)
            {
                return Err(CoordinatorError::WorkerFails {
                    job: self.settings.job.clone(),
                    worker,
                    exits: self.early_exits[worker],
                });
            }
            self.receive(left.min(Duration::from_millis(100)), None);
        }
        if self.active.iter().any(|&a| a) {
            Ok(())
        } else {
            Err(CoordinatorError::NoWorkers {
                job: self.settings.job.clone(),
                workers: self.settings.workers,
                waited: self.settings.start_timeout,
            })
        }
    }

    fn event(&mut self, event: Event) {
        (self.on_event)(&event);
    }

    /// Reports workers whose process exited and starts them again.
    fn poll_pool(&mut self) {
        let Some(pool) = &mut self.pool else { return };
        let exited = pool.exited();
        for (worker, status) in exited {
            self.stats.exited += 1;
            if !self.ever_ready[worker] {
                self.early_exits[worker] += 1;
            }
            self.active[worker] = false;
            self.event(Event::Exited {
                worker,
                status: status.to_string(),
            });
            self.respawn(worker);
        }
    }

    fn respawn(&mut self, worker: usize) {
        let Some(pool) = &mut self.pool else { return };
        match pool.respawn(worker) {
            Ok(()) => {
                self.stats.respawned += 1;
                self.event(Event::Respawned { worker });
            }
            Err(e) => tracing::error!(worker, %e, "cannot start the worker again"),
        }
    }

    fn publish(
        &mut self,
        plan: &BatchPlan,
        learner: &SurrogateGradient,
    ) -> Result<(), PluginError> {
        let p = learner.parameter_count();
        wire::resize(&mut self.params, PARAMS_HEADER + p);
        let values = wire::values_mut(&mut self.params);
        values[0] = plan.epoch as f32;
        values[1] = plan.batch as f32;
        values[2] = 0.0;
        learner.copy_weights_to(&mut values[PARAMS_HEADER..])?;
        self.params.header.step = self.version;
        self.publisher
            .publish(&mut self.params)
            .map(drop)
            .map_err(|e| PluginError::failed("DataParallel", e.to_string()))
    }

    /// Takes what arrives within `wait`: hellos mark workers ready; a gradient of
    /// `step` (the version and the running sums) is added in. Returns whether a
    /// message came.
    fn receive(&mut self, wait: Duration, step: Option<(u64, &mut Collect)>) -> bool {
        let msg = match self.subscriber.recv_timeout(wait) {
            Ok(Some(msg)) => msg,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(%e, "an unreadable gradient message was dropped");
                return true;
            }
        };
        self.take(&msg, step);
        true
    }

    /// Takes one message of the gradients topic.
    fn take(&mut self, msg: &SpikeMsg, step: Option<(u64, &mut Collect)>) {
        let Some(g) = wire::read_grads(msg.view()) else {
            tracing::warn!(
                key = msg.key(),
                "a message that is not a gradient was dropped"
            );
            return;
        };
        if g.index >= self.settings.workers {
            tracing::warn!(
                worker = g.index,
                "a gradient of an unknown worker was dropped"
            );
            return;
        }
        if g.fingerprint != self.fingerprint {
            let fingerprint = g.fingerprint.to_owned();
            self.event(Event::Refused {
                worker: g.index,
                fingerprint,
            });
            return;
        }
        if g.version == 0 {
            self.ever_ready[g.index] = true;
            if !self.active[g.index] {
                self.active[g.index] = true;
                self.event(Event::Joined { worker: g.index });
            }
            if let Some((_, collect)) = step {
                collect.joined.push(g.index);
            }
            return;
        }
        match step {
            Some((version, collect)) if g.version == version => {
                if collect.done[g.index] {
                    return;
                }
                self.active[g.index] = true;
                collect.done[g.index] = true;
                if g.rows > 0 {
                    if g.gradient.len() != self.sum.len() {
                        tracing::warn!(
                            worker = g.index,
                            "a gradient of the wrong size was dropped"
                        );
                        return;
                    }
                    let started = Instant::now();
                    let w = g.rows as f32;
                    for (s, &v) in self.sum.iter_mut().zip(g.gradient) {
                        *s += w * v;
                    }
                    collect.reduce_s += started.elapsed().as_secs_f64();
                    collect.stats.loss += g.loss;
                    collect.stats.correct += g.correct;
                    collect.stats.rows += g.rows;
                }
                collect.compute_s = collect.compute_s.max(g.compute_s);
            }
            _ => self.stats.stale += 1,
        }
    }
}

impl Coordinator {
    /// Takes every message already queued (hellos sent while no step ran, stale
    /// gradients) without waiting, so that only hellos sent after this step's
    /// weights went out ask for them again.
    fn drain(&mut self, version: u64, collect: &mut Collect) {
        while self.receive(Duration::ZERO, Some((version, &mut *collect))) {}
        collect.joined.clear();
    }

    /// Marks every worker that got this step's weights at least `step_timeout`
    /// ago and sent no gradient as late: reported, no longer waited for, and
    /// started again when it is ours.
    fn give_up_on_late(&mut self, version: u64, collect: &mut Collect) {
        for k in 0..self.settings.workers {
            let late = self.active[k]
                && !collect.done[k]
                && collect.sent[k].is_some_and(|sent| sent.elapsed() >= self.settings.step_timeout);
            if late {
                self.stats.late += 1;
                self.active[k] = false;
                collect.sent[k] = None;
                self.event(Event::Late { worker: k, version });
                self.respawn(k);
            }
        }
    }

    /// How long the step may wait for the next message: until the earliest
    /// worker's deadline, at most 50 ms (to notice exits).
    fn next_wait(&self, collect: &Collect) -> Duration {
        (0..self.settings.workers)
            .filter(|&k| self.active[k] && !collect.done[k])
            .filter_map(|k| collect.sent[k])
            .map(|sent| self.settings.step_timeout.saturating_sub(sent.elapsed()))
            .fold(Duration::from_millis(50), Duration::min)
    }
}

/// The running sums of one step.
struct Collect {
    done: Vec<bool>,
    /// Workers that said hello during the step: they have not seen its weights.
    joined: Vec<usize>,
    /// When each worker was last sent this step's weights (its deadline runs from there).
    sent: Vec<Option<Instant>>,
    stats: GradientStats,
    compute_s: f64,
    reduce_s: f64,
}

impl GradientSource for Coordinator {
    /// Publishes the weights and collects this version's gradients. A worker
    /// that says hello during the step (started, started again, or one whose
    /// copy of the weights was lost: an idle worker repeats its hello) is sent
    /// the weights again, its own deadline starting then; a worker past its
    /// deadline is given up on; the step ends when every worker still waited
    /// for has answered and at least one row was computed.
    fn gradient(
        &mut self,
        learner: &mut SurrogateGradient,
        _data: &Dataset<'_>,
        plan: &BatchPlan,
    ) -> Result<GradientStats, PluginError> {
        let p = learner.parameter_count();
        self.sum.clear();
        self.sum.resize(p, 0.0);
        self.version += 1;
        let version = self.version;
        let step_started = Instant::now();
        let workers = self.settings.workers;
        let mut collect = Collect {
            done: vec![false; workers],
            joined: Vec::new(),
            sent: vec![None; workers],
            stats: GradientStats::default(),
            compute_s: 0.0,
            reduce_s: 0.0,
        };
        self.poll_pool();
        self.drain(version, &mut collect);
        self.publish(plan, learner)?;
        let now = Instant::now();
        for k in 0..workers {
            if self.active[k] {
                collect.sent[k] = Some(now);
            }
        }
        loop {
            self.give_up_on_late(version, &mut collect);
            let waiting = (0..workers).any(|k| self.active[k] && !collect.done[k]);
            if !waiting && collect.stats.rows > 0 {
                break;
            }
            if collect.stats.rows == 0 && step_started.elapsed() >= self.settings.stall_timeout {
                return Err(PluginError::failed(
                    "DataParallel",
                    format!(
                        "job {}: no worker computed version {version} within {:?}",
                        self.settings.job, self.settings.stall_timeout
                    ),
                ));
            }
            let asking: Vec<usize> = collect
                .joined
                .drain(..)
                .filter(|&k| !collect.done[k])
                .collect();
            if !asking.is_empty() {
                self.publish(plan, learner)?;
                let now = Instant::now();
                for k in asking {
                    collect.sent[k] = Some(now);
                }
            }
            self.poll_pool();
            let wait = self.next_wait(&collect);
            self.receive(wait, Some((version, &mut collect)));
        }
        if collect.stats.rows < plan.len() {
            self.stats.partial_steps += 1;
        }
        let started = Instant::now();
        let inv = 1.0 / collect.stats.rows as f32;
        self.sum.iter_mut().for_each(|s| *s *= inv);
        learner.set_gradient(&self.sum)?;
        self.stats.steps += 1;
        self.stats.round_trip_s += step_started.elapsed().as_secs_f64();
        self.stats.compute_s += collect.compute_s;
        self.stats.reduce_s += collect.reduce_s + started.elapsed().as_secs_f64();
        if let Ok(mut shared) = self.shared.lock() {
            *shared = self.stats;
        }
        Ok(collect.stats)
    }
}

impl Drop for Coordinator {
    /// Tells the workers training is over (a launch file's workers then exit).
    fn drop(&mut self) {
        wire::resize(&mut self.params, PARAMS_HEADER);
        let values = wire::values_mut(&mut self.params);
        values.copy_from_slice(&[0.0, 0.0, 1.0]);
        self.version += 1;
        self.params.header.step = self.version;
        let _ = self.publisher.publish(&mut self.params);
    }
}

/// `SurrogateGradient` trained data-parallel: the same learner, its gradients
/// from a [`Coordinator`]'s workers. Checkpoints are `SurrogateGradient`'s, so a
/// run resumes with or without workers.
#[derive(Debug)]
pub struct DataParallel {
    learner: SurrogateGradient,
    coordinator: Coordinator,
}

impl DataParallel {
    /// `learner`, trained by `coordinator`'s workers.
    pub fn new(learner: SurrogateGradient, coordinator: Coordinator) -> DataParallel {
        DataParallel {
            learner,
            coordinator,
        }
    }

    /// The coordinator (its [`Stats`]).
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }
}

impl Learner for DataParallel {
    fn network(&self) -> &NetworkSpec {
        self.learner.network()
    }

    fn hyperparameters(&self) -> Params {
        let mut p = self.learner.hyperparameters();
        p.insert("workers".into(), self.coordinator.settings.workers.into());
        p
    }

    fn position(&self) -> (u32, u32) {
        self.learner.position()
    }

    fn train_epoch(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<EpochReport, PluginError> {
        self.learner
            .train_epoch_from(data, progress, &mut self.coordinator)
    }

    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError> {
        self.learner.predict(data)
    }

    fn weights(&self) -> Vec<Tensor> {
        self.learner.weights()
    }

    fn checkpoint(&self) -> Checkpoint {
        self.learner.checkpoint()
    }

    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), PluginError> {
        self.learner.restore(checkpoint)
    }
}
