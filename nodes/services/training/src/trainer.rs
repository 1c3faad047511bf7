//! The jobs' lifecycle: submission, a queue with at most `max_running` workers,
//! progress, cancellation, resuming after a restart, and registration.
//!
//! ```text
//! PENDING ──start──▶ RUNNING ──worker done, model registered──▶ SUCCEEDED
//!    │                  │  └──worker failed / registry refused──▶ FAILED
//!    └──────cancel──────┴──────────────cancel───────────────────▶ CANCELLED
//! ```
//!
//! The rules:
//! - Final states (SUCCEEDED, FAILED, CANCELLED) never change; cancelling a job in
//!   one is a conflict.
//! - Every change is written to the [`Jobs`] store before anyone is told of it.
//! - A cancelled job is CANCELLED at once; its worker (if any) gets SIGINT, stops
//!   after its current batch, and is SIGKILLed if it is still there after
//!   `cancel_grace`. Its slot is free once the worker is gone.
//! - A job found RUNNING when the service starts (the service was stopped or
//!   killed under it) is started again first, from its last checkpoint
//!   (`attempts` counts the starts, `resumed_from_epoch` says where from).
//! - When the service stops, its workers are interrupted (they checkpoint) and
//!   their jobs stay RUNNING, to resume at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use evospike_plugin_host::PluginManager;
use evospike_schemas::proto::{JobState, TrainJob, TrainProgress, TrainRequest};
use tokio::sync::Notify;

use crate::jobs::{is_final, Jobs, JobsError};
use crate::plan::{self, Plan};
use crate::publish::{self, Registrar};
use crate::worker::{self, Report, Worker};

/// How the trainer runs its jobs.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// Where jobs keep their state (`state.redb`) and files (`jobs/<job_id>/`).
    pub data_dir: PathBuf,
    /// The `evospike` executable the workers run.
    pub exe: PathBuf,
    /// Plugin folders, for the learners (handed to the workers too).
    pub plugin_dirs: Vec<PathBuf>,
    /// Workers at a time; more jobs wait PENDING.
    pub max_running: usize,
    /// How long a cancelled or stopped worker has to end after SIGINT.
    pub cancel_grace: Duration,
}

/// A request the trainer refused, or its own failure.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{0}")]
    Invalid(String),
    /// No such job (404).
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the job's state (409).
    #[error("{0}")]
    Conflict(String),
    /// The job store failed.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// The plugin system could not be set up.
    #[error("cannot set up the plugin system")]
    Plugins(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The data directory could not be created.
    #[error("cannot create {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request's task ended abnormally (it panicked).
    #[error("the request's task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The name of a job state as the API writes it (`RUNNING`).
pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Unspecified => "UNSPECIFIED",
        JobState::Pending => "PENDING",
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
    }
}

/// Now, RFC 3339 to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A job that has a worker slot.
#[derive(Debug, Default)]
struct Slot {
    /// The worker's process group, once it started.
    pgid: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    running: HashMap<String, Slot>,
    stopping: bool,
}

/// Called with every job after each change (the service publishes it on the bus).
pub type OnChange = Box<dyn Fn(&TrainJob) + Send + Sync>;

/// The training service's core.
pub struct Trainer {
    jobs: Jobs,
    config: TrainerConfig,
    plugins: Mutex<PluginManager>,
    state: Mutex<State>,
    wake: Notify,
    registrar: Box<dyn Registrar>,
    on_change: OnChange,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Opens the trainer's state in `config.data_dir` (creating it).
    ///
    /// # Errors
    /// The data directory or its store cannot be opened, or the plugin system
    /// cannot be set up.
    pub fn open(
        config: TrainerConfig,
        registrar: Box<dyn Registrar>,
        on_change: OnChange,
    ) -> Result<Trainer, TrainingError> {
        let jobs_dir = config.data_dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir).map_err(|source| TrainingError::DataDir {
            path: jobs_dir,
            source,
        })?;
        let jobs = Jobs::open(&config.data_dir)?;
        let plugins = evospike_plugins::plugin_manager(&config.plugin_dirs)
            .map_err(|e| TrainingError::Plugins(Box::new(e)))?;
        for err in plugins.load_errors() {
            tracing::warn!(%err, "external plugin not loaded");
        }
        Ok(Trainer {
            jobs,
            config,
            plugins: Mutex::new(plugins),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            registrar,
            on_change,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn job_dir(&self, job_id: &str) -> PathBuf {
        self.config.data_dir.join("jobs").join(job_id)
    }

    fn plan(&self, req: &TrainRequest) -> Result<Plan, TrainingError> {
        let plugins = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        plan::check(req, &plugins).map_err(TrainingError::Invalid)
    }

    /// Writes `job` and tells the listener.
    fn save(&self, job: &TrainJob) -> Result<(), TrainingError> {
        self.jobs.put(job)?;
        (self.on_change)(job);
        Ok(())
    }

    /// Submits a job: a new PENDING job (`true`), or the job an earlier
    /// submission with the same `submission_id` and the same request created
    /// (`false`).
    ///
    /// # Errors
    /// [`TrainingError::Invalid`] for a bad request; [`TrainingError::Conflict`]
    /// for a `submission_id` used before with another request.
    pub fn submit(&self, req: TrainRequest) -> Result<(TrainJob, bool), TrainingError> {
        // Held across check-and-insert so that two equal submissions make one job.
        let _state = self.state();
        if let Some(sid) = &req.submission_id {
            if let Some(job) = self.jobs.by_submission(sid)? {
                if job.request.as_ref() == Some(&req) {
                    return Ok((job, false));
                }
                return Err(TrainingError::Conflict(format!(
                    "submission_id `{sid}` was used for job {} with another request",
                    job.job_id
                )));
            }
        }
        let plan = self.plan(&req)?;
        let epochs = plan
            .params
            .get("epochs")
            .and_then(serde_json::Value::as_u64)
            .and_then(|e| u32::try_from(e).ok())
            .unwrap_or(0);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let job = TrainJob {
            job_id: format!("{millis:013}-{:06x}", rand::random::<u32>() & 0xff_ffff),
            state: JobState::Pending as i32,
            request: Some(req),
            progress: Some(TrainProgress {
                epochs,
                ..Default::default()
            }),
            created_at: now(),
            ..Default::default()
        };
        self.save(&job)?;
        self.wake.notify_one();
        Ok((job, true))
    }

    /// The job `job_id`.
    ///
    /// # Errors
    /// [`TrainingError::NotFound`].
    pub fn get(&self, job_id: &str) -> Result<TrainJob, TrainingError> {
        self.jobs
            .get(job_id)?
            .ok_or_else(|| TrainingError::NotFound(format!("no job {job_id}")))
    }

    /// Every job, oldest first; only those in `state` unless it is `Unspecified`.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn list(&self, state: JobState) -> Result<Vec<TrainJob>, TrainingError> {
        let mut jobs = self.jobs.all()?;
        if state != JobState::Unspecified {
            jobs.retain(|j| j.state() == state);
        }
        Ok(jobs)
    }

    /// Cancels job `job_id` (see the module docs).
    ///
    /// # Errors
    /// [`TrainingError::NotFound`]; [`TrainingError::Conflict`] when it is final.
    pub fn cancel(self: &Arc<Self>, job_id: &str) -> Result<TrainJob, TrainingError> {
        let state = self.state();
        let mut job = self.get(job_id)?;
        if is_final(job.state()) {
            return Err(TrainingError::Conflict(format!(
                "job {job_id} is already {}; only PENDING and RUNNING jobs can be cancelled",
                state_name(job.state())
            )));
        }
        job.set_state(JobState::Cancelled);
        job.error = "cancelled by request".into();
        job.finished_at = now();
        self.save(&job)?;
        if let Some(pgid) = state.running.get(job_id).and_then(|s| s.pgid) {
            self.stop_worker(job_id.to_owned(), pgid);
        }
        Ok(job)
    }

    /// SIGINT to the worker of `job_id`, then SIGKILL if it still has its slot
    /// after the grace period.
    fn stop_worker(self: &Arc<Self>, job_id: String, pgid: u32) {
        worker::signal(pgid, libc::SIGINT);
        let trainer = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(trainer.config.cancel_grace).await;
            let still = trainer
                .state()
                .running
                .get(&job_id)
                .is_some_and(|s| s.pgid == Some(pgid));
            if still {
                tracing::warn!(job = %job_id, "worker outlived its grace period; killing it");
                worker::signal(pgid, libc::SIGKILL);
            }
        });
    }

    /// Starts jobs as slots free up, until [`Trainer::stop`]. Run it once, as a task.
    pub async fn run(self: Arc<Self>) {
        loop {
            let notified = self.wake.notified();
            match self.start_ready() {
                Ok(false) => {}
                Ok(true) => return,
                Err(err) => tracing::error!(%err, "cannot read the jobs"),
            }
            notified.await;
        }
    }

    /// Gives free slots to waiting jobs: interrupted RUNNING ones first, then
    /// PENDING ones, oldest first. `true` once the trainer is stopping.
    fn start_ready(self: &Arc<Self>) -> Result<bool, TrainingError> {
        let mut state = self.state();
        if state.stopping {
            return Ok(true);
        }
        let free = self.config.max_running.saturating_sub(state.running.len());
        if free == 0 {
            return Ok(false);
        }
        let jobs = self.jobs.all()?;
        let idle = |j: &&TrainJob| !state.running.contains_key(&j.job_id);
        let waiting: Vec<&TrainJob> = jobs
            .iter()
            .filter(|j| j.state() == JobState::Running)
            .chain(jobs.iter().filter(|j| j.state() == JobState::Pending))
            .filter(idle)
            .take(free)
            .collect();
        for job in waiting {
            state.running.insert(job.job_id.clone(), Slot::default());
            let trainer = Arc::clone(self);
            let job_id = job.job_id.clone();
            tokio::spawn(async move {
                trainer.supervise(&job_id).await;
                trainer.state().running.remove(&job_id);
                trainer.wake.notify_one();
            });
        }
        Ok(false)
    }

    /// Runs job `job_id` in a worker to its end.
    async fn supervise(self: &Arc<Self>, job_id: &str) {
        let (job, plan, resume) = match self.prepare(job_id) {
            Ok(Some(ready)) => ready,
            Ok(None) => return,
            Err(message) => return self.finish(job_id, Err(message)),
        };
        let dir = self.job_dir(job_id);
        let out = dir.join("model");
        let req = job.request.clone().unwrap_or_default();
        let args = plan::worker_args(&req, &plan, &out, resume, &self.config.plugin_dirs);
        let log = dir.join("worker.log");
        let mut worker = match Worker::spawn(&self.config.exe, &args, &log) {
            Ok(w) => w,
            Err(e) => {
                let exe = self.config.exe.display();
                return self.finish(job_id, Err(format!("cannot start the worker {exe}: {e}")));
            }
        };
        {
            let mut state = self.state();
            if let (Some(slot), Some(pid)) = (state.running.get_mut(job_id), worker.pid()) {
                slot.pgid = Some(pid);
            }
            let cancelled = self
                .jobs
                .get(job_id)
                .ok()
                .flatten()
                .is_none_or(|j| is_final(j.state()));
            if cancelled || state.stopping {
                if let Some(pid) = worker.pid() {
                    drop(state);
                    self.stop_worker(job_id.to_owned(), pid);
                }
            }
        }
        tracing::info!(job = %job_id, resume, "worker {} started", worker.pid().unwrap_or(0));
        let mut done = false;
        while let Some(report) = worker.next_report().await {
            match report {
                Report::Epoch { .. } => self.progress(job_id, &report),
                Report::Done { .. } => done = true,
            }
        }
        let status = worker.wait().await;
        if self.state().stopping {
            // Stays RUNNING, to resume at the next start.
            return;
        }
        let outcome = match status {
            Ok(s) if s.success() && done => self.register(job_id, &plan, &out).await,
            Ok(s) => Err(format!(
                "the worker {}: {}",
                describe_exit(s),
                worker::log_tail(&log, 3)
            )),
            Err(e) => Err(format!("cannot wait for the worker: {e}")),
        };
        self.finish(job_id, outcome);
    }

    /// Marks job `job_id` RUNNING for a (re)start: the plan, and whether a
    /// checkpoint is there to resume. `Ok(None)` when it is final already; an
    /// error message when it cannot run.
    fn prepare(&self, job_id: &str) -> Result<Option<(TrainJob, Plan, bool)>, String> {
        let _state = self.state();
        let mut job = match self.jobs.get(job_id) {
            Ok(Some(job)) if !is_final(job.state()) => job,
            Ok(_) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let req = job.request.clone().unwrap_or_default();
        let plan = self.plan(&req).map_err(|e| e.to_string())?;
        let out = self.job_dir(job_id).join("model");
        std::fs::create_dir_all(&out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let checkpoint = out.join("checkpoint");
        let resumed = checkpoint
            .join(evospike_learning::model::CHECKPOINT_FILE)
            .exists()
            .then(|| evospike_learning::model::load_checkpoint(&checkpoint))
            .transpose()
            .map_err(|e| format!("cannot read the job's checkpoint: {e}"))?;
        job.set_state(JobState::Running);
        job.attempts += 1;
        if job.started_at.is_empty() {
            job.started_at = now();
        }
        if let Some(c) = &resumed {
            job.resumed_from_epoch = c.epoch;
            let p = job.progress.get_or_insert_with(Default::default);
            // The worker's own record of the epochs the checkpoint holds (the
            // service may have died before it heard of the last ones).
            let history = worker::epochs_until(
                &checkpoint.join(evospike_learning::model::EPOCHS_FILE),
                c.epoch,
            );
            for report in &history {
                apply(p, report);
            }
            let kept = usize::try_from(c.epoch).unwrap_or(usize::MAX);
            p.loss_curve.truncate(kept);
            p.accuracy_curve.truncate(kept);
            p.epoch = c.epoch;
        }
        self.save(&job).map_err(|e| e.to_string())?;
        Ok(Some((job, plan, resumed.is_some())))
    }

    /// Records an epoch report of job `job_id`'s worker.
    fn progress(&self, job_id: &str, report: &Report) {
        let _state = self.state();
        let Ok(Some(mut job)) = self.jobs.get(job_id) else {
            return;
        };
        if is_final(job.state()) {
            return;
        }
        apply(job.progress.get_or_insert_with(Default::default), report);
        if let Err(err) = self.save(&job) {
            tracing::error!(%err, job = %job_id, "cannot record progress");
        }
    }

    /// Registers the model job `job_id` wrote to `out`: `(model_id, version)`.
    async fn register(
        &self,
        job_id: &str,
        plan: &Plan,
        out: &Path,
    ) -> Result<(String, String), String> {
        let job = self.get(job_id).map_err(|e| e.to_string())?;
        let req = job.request.clone().unwrap_or_default();
        let model_id = req
            .model_id
            .clone()
            .unwrap_or_else(|| format!("job-{job_id}"));
        let existing = self
            .registrar
            .versions(&model_id)
            .await
            .map_err(|e| format!("the model registry: {e}"))?;
        // An earlier attempt published it and then the service died before it
        // recorded so: that version is this job's model.
        if let Some(mine) = existing
            .iter()
            .find(|v| v.job_id.as_deref() == Some(job_id))
        {
            return Ok((model_id, mine.version.clone()));
        }
        let version = match &req.version {
            Some(v) => v.clone(),
            None => {
                let versions: Vec<String> = existing.into_iter().map(|v| v.version).collect();
                publish::next_version(&versions)
            }
        };
        let request = publish::request(&job, plan, out, &model_id, &version)?;
        let published =
            self.registrar.publish(request).await.map_err(|e| {
                format!("the model was trained but the registry did not take it: {e}")
            })?;
        Ok((published.model_id, published.version))
    }

    /// Ends job `job_id`: SUCCEEDED with its registered model, or FAILED saying
    /// why — unless it reached a final state meanwhile (it was cancelled).
    fn finish(&self, job_id: &str, outcome: Result<(String, String), String>) {
        let _state = self.state();
        let Ok(Some(mut job)) = self.jobs.get(job_id) else {
            return;
        };
        if is_final(job.state()) {
            return;
        }
        match outcome {
            Ok((model_id, version)) => {
                tracing::info!(job = %job_id, model = %model_id, %version, "job succeeded");
                job.set_state(JobState::Succeeded);
                job.model_id = model_id;
                job.model_version = version;
            }
            Err(message) => {
                tracing::warn!(job = %job_id, %message, "job failed");
                job.set_state(JobState::Failed);
                job.error = message;
            }
        }
        job.finished_at = now();
        if let Err(err) = self.save(&job) {
            tracing::error!(%err, job = %job_id, "cannot record the job's end");
        }
    }

    /// Stops: no new starts; running workers get SIGINT (they checkpoint), and
    /// SIGKILL after the grace period. Their jobs stay RUNNING and resume at the
    /// next start. Returns once every worker is gone.
    pub async fn stop(self: &Arc<Self>) {
        let groups: Vec<u32> = {
            let mut state = self.state();
            state.stopping = true;
            state.running.values().filter_map(|s| s.pgid).collect()
        };
        self.wake.notify_one();
        for &pgid in &groups {
            worker::signal(pgid, libc::SIGINT);
        }
        let deadline = tokio::time::Instant::now() + self.config.cancel_grace;
        while !self.state().running.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pgid in groups {
            worker::signal(pgid, libc::SIGKILL);
        }
    }
}

/// Puts an epoch report into `p`: its figures, and its entry of the curves
/// (replacing those of that epoch and later ones, when it was trained again).
fn apply(p: &mut TrainProgress, report: &Report) {
    let Report::Epoch {
        epoch,
        epochs,
        loss,
        train_accuracy,
        test_accuracy,
        samples_per_s,
        train_samples,
    } = *report
    else {
        return;
    };
    let kept = usize::try_from(epoch.saturating_sub(1)).unwrap_or(usize::MAX);
    p.loss_curve.truncate(kept);
    p.accuracy_curve.truncate(kept);
    p.loss_curve.push(loss);
    p.accuracy_curve
        .push(test_accuracy.unwrap_or(train_accuracy));
    p.epoch = epoch;
    p.epochs = epochs;
    p.loss = loss;
    p.train_accuracy = train_accuracy;
    p.test_accuracy = test_accuracy;
    p.samples_per_s = samples_per_s;
    p.samples = u64::from(epoch) * train_samples;
}

/// "exited with status 3", "was killed by signal 9 (SIGKILL)".
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        (None, None) => "ended".into(),
    }
}

#[cfg(test)]
mod tests;
