//! The supervisor: starts the nodes of a [`LaunchPlan`] in dependency order,
//! restarts them by policy, stops them all with SIGINT → SIGTERM → SIGKILL,
//! and reports how each one ended.
//!
//! Everything happens on one current-thread tokio runtime: one loop owns all
//! node state and reacts to events (a child exited, a child became ready, a
//! back-off or shutdown timer fired, the launcher got a signal).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use evospike_schemas::contract;
use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};

use crate::error::SuperviseError;
use crate::outcome::{NodeReport, NodeResult, Outcome};
use crate::output::{Output, OutputSender, Stream};
use crate::plan::{LaunchPlan, NodeSpec, Readiness, RespawnMode, ShutdownTimeouts};
use crate::process::{signal_group, signal_name, spawn};

/// How long to wait for children to be reaped after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long to wait at the end for the last output lines of ended nodes.
const READER_DRAIN: Duration = Duration::from_secs(2);

/// Settings of one supervision run that are not in the launch file.
#[derive(Debug, Clone, Default)]
pub struct SuperviseOptions {
    /// Folder for the per-node log files; default
    /// `./.evospike/log/<launch-name>-<UTC timestamp>/`.
    pub log_dir: Option<PathBuf>,
    /// Overrides the file's `shutdown.sigint_timeout`.
    pub sigint_timeout: Option<Duration>,
    /// Overrides the file's `shutdown.sigterm_timeout`.
    pub sigterm_timeout: Option<Duration>,
    /// Do not print node lines and launcher messages to the terminal (logs only).
    pub quiet: bool,
}

/// Runs `plan` to the end on a new current-thread runtime (blocking).
///
/// # Errors
/// Only when supervision cannot begin (log folder, runtime, signal handlers);
/// failing nodes are reported in the [`Outcome`].
pub fn run(plan: &LaunchPlan, options: &SuperviseOptions) -> Result<Outcome, SuperviseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SuperviseError::Runtime)?;
    runtime.block_on(run_async(plan, options))
}

/// Runs `plan` to the end. Call it on a current-thread runtime (or from a
/// thread that outlives the run): a child's `PR_SET_PDEATHSIG` fires when the
/// thread that spawned it ends.
///
/// # Errors
/// As [`run`].
pub async fn run_async(
    plan: &LaunchPlan,
    options: &SuperviseOptions,
) -> Result<Outcome, SuperviseError> {
    let log_dir = match &options.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| SuperviseError::LogDir {
                path: dir.clone(),
                source,
            })?;
            dir.clone()
        }
        None => new_log_dir(Path::new(".evospike/log"), &plan.name)?,
    };
    let timeouts = ShutdownTimeouts {
        sigint: options.sigint_timeout.unwrap_or(plan.shutdown.sigint),
        sigterm: options.sigterm_timeout.unwrap_or(plan.shutdown.sigterm),
    };
    let signals = Signals {
        interrupt: signal(SignalKind::interrupt()).map_err(SuperviseError::Runtime)?,
        terminate: signal(SignalKind::terminate()).map_err(SuperviseError::Runtime)?,
        hangup: signal(SignalKind::hangup()).map_err(SuperviseError::Runtime)?,
    };
    let output = Output::start(log_dir.clone(), !options.quiet).map_err(SuperviseError::Runtime)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor {
        slots: plan.nodes.iter().cloned().map(Slot::new).collect(),
        events: tx,
        out: output.sender(),
        timeouts,
        stage: None,
        shutdown_reason: None,
        next_start: 0,
        readers: Vec::new(),
    };
    supervisor.out.launcher(format!(
        "launching {} ({} nodes{}); logs in {}",
        plan.name,
        plan.nodes.len(),
        plan.machine
            .as_ref()
            .map(|m| format!(" on machine {m}"))
            .unwrap_or_default(),
        log_dir.display()
    ));
    supervisor.run(rx, signals).await;
    supervisor.drain_readers().await;
    let outcome = Outcome {
        log_dir,
        nodes: supervisor
            .slots
            .iter()
            .map(|slot| NodeReport {
                name: slot.spec.name.clone(),
                result: slot.result.clone().unwrap_or(NodeResult::NotStarted),
                restarts: slot.restarts,
            })
            .collect(),
        shutdown_reason: supervisor.shutdown_reason.clone(),
    };
    drop(supervisor);
    output.finish();
    Ok(outcome)
}

/// Creates `<base>/<name>-<UTC timestamp>[-N]/`.
fn new_log_dir(base: &Path, name: &str) -> Result<PathBuf, SuperviseError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SuperviseError::LogDir { path, source }
    };
    std::fs::create_dir_all(base).map_err(err(base))?;
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut attempt = 0u32;
    loop {
        let dir = match attempt {
            0 => base.join(format!("{name}-{stamp}")),
            n => base.join(format!("{name}-{stamp}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Several launches of one file in the same second get -1, -2, ...
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(e) => return Err(err(&dir)(e)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for its dependencies.
    Waiting,
    Running {
        pid: u32,
    },
    /// Waiting out the back-off before a restart.
    Backoff,
    Done,
}

struct Slot {
    spec: NodeSpec,
    state: State,
    /// Increases with every spawn, so that events of an earlier run are ignored.
    generation: u64,
    /// Order of the latest start, for stopping in reverse.
    started: u64,
    restarts: u32,
    /// Exponent of the next back-off; back to 0 after a run that lasted.
    backoff_step: u32,
    /// When the latest run was spawned.
    spawned_at: Instant,
    ready: bool,
    /// Set when the node did not print its ready line in time.
    never_ready: bool,
    /// How the latest run failed, if it did.
    last_failure: Option<String>,
    result: Option<NodeResult>,
}

impl Slot {
    fn new(spec: NodeSpec) -> Self {
        Slot {
            spec,
            state: State::Waiting,
            generation: 0,
            started: 0,
            restarts: 0,
            backoff_step: 0,
            spawned_at: Instant::now(),
            ready: false,
            never_ready: false,
            last_failure: None,
            result: None,
        }
    }

    fn finish(&mut self, result: NodeResult) {
        self.state = State::Done;
        self.result = Some(result);
    }
}

#[derive(Debug)]
enum Event {
    Exited {
        node: usize,
        generation: u64,
        status: std::io::Result<ExitStatus>,
    },
    ReadyLine {
        node: usize,
        generation: u64,
    },
    ReadyDelay {
        node: usize,
        generation: u64,
    },
    ReadyTimeout {
        node: usize,
        generation: u64,
    },
    Respawn {
        node: usize,
        generation: u64,
    },
}

/// The signals that make the launcher shut down.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Sigint,
    Sigterm,
    Sigkill,
}

struct Supervisor {
    slots: Vec<Slot>,
    events: mpsc::UnboundedSender<Event>,
    out: OutputSender,
    timeouts: ShutdownTimeouts,
    /// The current shutdown stage and when it escalates.
    stage: Option<(Stage, Instant)>,
    shutdown_reason: Option<String>,
    next_start: u64,
    /// Tasks copying child output; awaited at the end so no last line is lost.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Supervisor {
    async fn run(&mut self, mut events: mpsc::UnboundedReceiver<Event>, mut signals: Signals) {
        loop {
            self.start_waiting();
            if self.slots.iter().all(|s| s.state == State::Done) {
                break;
            }
            let deadline = self.stage.map(|(_, at)| at);
            tokio::select! {
                Some(event) = events.recv() => self.handle(event),
                _ = signals.interrupt.recv() => self.on_signal("SIGINT"),
                _ = signals.terminate.recv() => self.on_signal("SIGTERM"),
                _ = signals.hangup.recv() => self.on_signal("SIGHUP"),
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.escalate();
                }
            }
        }
    }

    /// Starts every waiting node whose dependencies are ready; skips those
    /// whose dependencies can no longer become ready.
    fn start_waiting(&mut self) {
        if self.stage.is_some() {
            return;
        }
        loop {
            let mut changed = false;
            for i in 0..self.slots.len() {
                if self.slots[i].state != State::Waiting {
                    continue;
                }
                let mut all_ready = true;
                let mut blocked = None;
                for dep in &self.slots[i].spec.depends_on {
                    let Some(d) = self.slots.iter().find(|s| &s.spec.name == dep) else {
                        continue;
                    };
                    if d.ready {
                        continue;
                    }
                    all_ready = false;
                    if d.never_ready {
                        blocked = Some(format!("dependency `{dep}` never became ready"));
                    } else if d.state == State::Done {
                        blocked = Some(format!("dependency `{dep}` ended before it was ready"));
                    }
                }
                if let Some(why) = blocked {
                    self.out
                        .launcher(format!("not starting {}: {why}", self.slots[i].spec.name));
                    self.slots[i].finish(NodeResult::Skipped(why));
                    changed = true;
                } else if all_ready {
                    self.start(i);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn start(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.generation += 1;
        slot.ready = false;
        let generation = slot.generation;
        let mut child = match spawn(&slot.spec) {
            Ok(child) => child,
            Err(e) => {
                let why = format!("cannot start {}: {e}", slot.spec.program.display());
                self.out.launcher(format!("{}: {why}", slot.spec.name));
                slot.finish(NodeResult::Failed(why));
                if slot.spec.required {
                    let reason = format!("required node {} could not start", slot.spec.name);
                    self.begin_shutdown(reason);
                }
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        slot.state = State::Running { pid };
        slot.spawned_at = Instant::now();
        self.next_start += 1;
        slot.started = self.next_start;
        self.out.launcher(format!(
            "started {} (pid {pid}{})",
            slot.spec.name,
            if slot.restarts > 0 {
                format!(", restart {}", slot.restarts)
            } else {
                String::new()
            }
        ));

        let readiness = slot.spec.readiness.clone();
        let name = slot.spec.name.clone();
        let pattern = match readiness {
            Readiness::Line { pattern, timeout } => {
                self.after(
                    timeout,
                    Event::ReadyTimeout {
                        node: i,
                        generation,
                    },
                );
                Some(pattern)
            }
            Readiness::Delay(delay) => {
                self.after(
                    delay,
                    Event::ReadyDelay {
                        node: i,
                        generation,
                    },
                );
                None
            }
        };
        if let Some(stdout) = child.stdout.take() {
            self.read_lines(
                stdout,
                &name,
                Stream::Stdout,
                pattern.clone(),
                i,
                generation,
            );
        }
        if let Some(stderr) = child.stderr.take() {
            self.read_lines(stderr, &name, Stream::Stderr, pattern, i, generation);
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = events.send(Event::Exited {
                node: i,
                generation,
                status,
            });
        });
    }

    /// Waits (briefly) for the output of ended nodes to be copied. A pipe can
    /// stay open after its node is gone only if the node handed it to a
    /// process outside its group; that copy is cut off rather than waited for.
    async fn drain_readers(&mut self) {
        let deadline = Instant::now() + READER_DRAIN;
        for reader in self.readers.drain(..) {
            let abort = reader.abort_handle();
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                abort.abort();
            }
        }
    }

    fn read_lines(
        &mut self,
        pipe: impl AsyncRead + Unpin + Send + 'static,
        name: &str,
        stream: Stream,
        pattern: Option<Regex>,
        node: usize,
        generation: u64,
    ) {
        let out = self.out.clone();
        let events = self.events.clone();
        let name = name.to_owned();
        self.readers.retain(|r| !r.is_finished());
        self.readers.push(tokio::spawn(async move {
            let mut reader = BufReader::new(pipe);
            let mut pending_ready = pattern;
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if pending_ready
                    .as_ref()
                    .is_some_and(|re| re.is_match(&String::from_utf8_lossy(&line)))
                {
                    pending_ready = None;
                    let _ = events.send(Event::ReadyLine { node, generation });
                }
                out.line(&name, stream, line);
            }
        }));
    }

    /// Sends `event` after `delay`.
    fn after(&self, delay: Duration, event: Event) {
        let events = self.events.clone();
        tokio::spawn(async move {
            sleep(delay).await;
            let _ = events.send(event);
        });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited {
                node,
                generation,
                status,
            } => self.on_exit(node, generation, status),
            Event::ReadyLine { node, generation } | Event::ReadyDelay { node, generation } => {
                let slot = &mut self.slots[node];
                if slot.generation == generation
                    && matches!(slot.state, State::Running { .. })
                    && !slot.ready
                {
                    slot.ready = true;
                    slot.never_ready = false;
                    if matches!(slot.spec.readiness, Readiness::Line { .. }) {
                        self.out.launcher(format!("{} is ready", slot.spec.name));
                    }
                }
            }
            Event::ReadyTimeout { node, generation } => {
                let slot = &mut self.slots[node];
                if slot.generation == generation && !slot.ready && slot.state != State::Done {
                    slot.never_ready = true;
                    self.out.launcher(format!(
                        "{} did not print a line matching its ready_when pattern in time",
                        slot.spec.name
                    ));
                }
            }
            Event::Respawn { node, generation } => {
                let slot = &self.slots[node];
                if slot.generation == generation && slot.state == State::Backoff {
                    self.start(node);
                }
            }
        }
    }

    fn on_exit(&mut self, i: usize, generation: u64, status: std::io::Result<ExitStatus>) {
        let shutting_down = self.stage.is_some();
        let slot = &mut self.slots[i];
        let State::Running { pid } = slot.state else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        // Whatever the node left behind in its process group goes with it.
        signal_group(pid, libc::SIGKILL);
        let failure = match &status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
                (None, None) => format!("ended with {s}"),
            }),
            Err(e) => Some(format!("could not be waited for: {e}")),
        };
        let name = slot.spec.name.clone();
        let how = failure
            .clone()
            .unwrap_or_else(|| "exited with status 0".into());
        // The node's own error says more; the launcher says what it means.
        let hint = match &status {
            Ok(s) if s.code() == Some(i32::from(contract::EXIT_UNREACHABLE)) => {
                ": it could not reach any router at its connect endpoints (is the router up, \
                 are the address, port, certificates and credentials right?)"
            }
            _ => "",
        };
        self.out.launcher(format!("{name} (pid {pid}) {how}{hint}"));

        if shutting_down {
            slot.finish(NodeResult::Stopped);
            return;
        }
        if failure.is_none() && !slot.ready {
            // A one-shot node that finished cleanly satisfies its dependents.
            slot.ready = true;
        }
        slot.last_failure = failure.clone();
        let policy = &slot.spec.respawn;
        let wanted = match policy.mode {
            RespawnMode::Never => false,
            RespawnMode::OnFailure => failure.is_some(),
            RespawnMode::Always => true,
        };
        let allowed = policy.max_restarts.is_none_or(|max| slot.restarts < max);
        if wanted && allowed {
            // A run that outlasted the longest back-off counts as healthy:
            // the next failure is treated like a first one again.
            if slot.spawned_at.elapsed() >= policy.delay_max {
                slot.backoff_step = 0;
            }
            let delay = policy.backoff(slot.backoff_step);
            slot.backoff_step += 1;
            slot.restarts += 1;
            slot.state = State::Backoff;
            let limit = policy
                .max_restarts
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unlimited".into());
            self.out.launcher(format!(
                "restarting {name} in {delay:?} (restart {}/{limit})",
                slot.restarts
            ));
            let generation = slot.generation;
            self.after(
                delay,
                Event::Respawn {
                    node: i,
                    generation,
                },
            );
            return;
        }
        let result = match failure {
            None => NodeResult::Exited,
            Some(why) if wanted => {
                NodeResult::Failed(format!("{why}; gave up after {} restarts", slot.restarts))
            }
            Some(why) => NodeResult::Failed(why),
        };
        slot.finish(result);
        if slot.spec.required {
            self.begin_shutdown(format!("required node {name} ended"));
        }
    }

    fn on_signal(&mut self, name: &str) {
        if self.stage.is_none() {
            self.begin_shutdown(format!("launcher received {name}"));
        } else {
            self.out
                .launcher(format!("received {name} again: escalating now"));
            self.escalate();
        }
    }

    fn begin_shutdown(&mut self, reason: String) {
        if self.stage.is_some() {
            return;
        }
        self.out.launcher(format!("shutting down: {reason}"));
        self.shutdown_reason = Some(reason);
        for slot in &mut self.slots {
            match slot.state {
                State::Waiting => slot.finish(NodeResult::NotStarted),
                State::Backoff => {
                    let result = match slot.last_failure.clone() {
                        Some(why) => {
                            NodeResult::Failed(format!("{why}; restart cancelled by shutdown"))
                        }
                        None => NodeResult::Stopped,
                    };
                    slot.finish(result);
                }
                State::Running { .. } | State::Done => {}
            }
        }
        self.enter(Stage::Sigint);
    }

    fn escalate(&mut self) {
        match self.stage {
            None => {}
            Some((Stage::Sigint, _)) => self.enter(Stage::Sigterm),
            Some((Stage::Sigterm, _)) => self.enter(Stage::Sigkill),
            Some((Stage::Sigkill, _)) => {
                // SIGKILL cannot be ignored; a process still here is stuck in
                // the kernel. Report it instead of waiting forever.
                for slot in &mut self.slots {
                    if let State::Running { pid } = slot.state {
                        let why = format!("pid {pid} still present {KILL_WAIT:?} after SIGKILL");
                        self.out.launcher(format!("{}: {why}", slot.spec.name));
                        slot.finish(NodeResult::Failed(why));
                    }
                }
            }
        }
    }

    /// Signals every running node (latest started first) and arms the next escalation.
    fn enter(&mut self, stage: Stage) {
        let (signal, wait) = match stage {
            Stage::Sigint => (libc::SIGINT, self.timeouts.sigint),
            Stage::Sigterm => (libc::SIGTERM, self.timeouts.sigterm),
            Stage::Sigkill => (libc::SIGKILL, KILL_WAIT),
        };
        let mut running: Vec<(u64, u32, &str)> = self
            .slots
            .iter()
            .filter_map(|s| match s.state {
                State::Running { pid } => Some((s.started, pid, s.spec.name.as_str())),
                _ => None,
            })
            .collect();
        running.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        if !running.is_empty() {
            let names: Vec<&str> = running.iter().map(|r| r.2).collect();
            self.out.launcher(format!(
                "sending {} to {}",
                signal_name(signal),
                names.join(", ")
            ));
        }
        for (_, pid, _) in &running {
            signal_group(*pid, signal);
        }
        self.stage = Some((stage, Instant::now() + wait));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_dirs_are_named_after_the_launch_and_never_reused() {
        let base = tempfile::tempdir().unwrap();
        let first = new_log_dir(base.path(), "demo").unwrap();
        let second = new_log_dir(base.path(), "demo").unwrap();
        assert_ne!(first, second);
        assert!(first.is_dir() && second.is_dir());
        let name = first.file_name().unwrap().to_str().unwrap();
        // demo-YYYYMMDDTHHMMSSZ
        assert!(name.starts_with("demo-20") && name.ends_with('Z'), "{name}");
        assert_eq!(name.len(), "demo-".len() + 16, "{name}");
    }
}
