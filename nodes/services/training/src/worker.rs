//! A job's worker: an `evospike train --json` process of its own, so that a job
//! that crashes (or is killed) never takes the service with it.
//!
//! The worker leads its own process group, so a Ctrl-C meant for the service (a
//! terminal's, or the launcher's SIGINT to the service's group) does not reach
//! it: the service decides when its workers stop. It dies with the service
//! (`PR_SET_PDEATHSIG`), even a SIGKILLed one, so a restarted service never finds
//! an orphan still writing the job's checkpoint. Its stdout carries one JSON
//! object per finished epoch, then one for the written model ([`Report`]); its
//! stderr goes to the job's `worker.log`.

use std::io;
use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A line the worker printed on stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Report {
    /// An epoch finished (and was checkpointed).
    Epoch {
        /// The epoch, from 1.
        epoch: u32,
        /// Epochs planned.
        epochs: u32,
        /// Mean training loss.
        loss: f64,
        /// Training accuracy.
        train_accuracy: f64,
        /// Test accuracy, when there is a test set.
        test_accuracy: Option<f64>,
        /// Training samples per second.
        samples_per_s: f64,
        /// Training samples per epoch.
        #[serde(default)]
        train_samples: u64,
    },
    /// The model was written.
    Done {
        /// Its directory.
        model: String,
        /// Its test accuracy, when there is a test set.
        test_accuracy: Option<f64>,
    },
}

impl Report {
    /// The report a line holds; `None` for anything else the worker printed.
    pub fn parse(line: &str) -> Option<Report> {
        serde_json::from_str(line).ok()
    }
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Worker {
    /// Starts `exe args…` in `dir`, its stderr appended to `log`.
    ///
    /// Call it from a thread that lives as long as the service (a Tokio worker
    /// thread, not a `spawn_blocking` one): the death signal fires when the
    /// thread that forked the worker ends.
    ///
    /// # Errors
    /// The log cannot be opened or the process cannot be started.
    pub fn spawn(exe: &Path, args: &[String], log: &Path) -> io::Result<Worker> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .process_group(0);
        evospike_http::child::die_with_service(&mut command);
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("the worker has no stdout"))?;
        Ok(Worker {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The worker's process ID (also its process group's).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next report, or `None` once stdout is closed (the worker is ending).
    /// Lines that are not reports are skipped.
    pub async fn next_report(&mut self) -> Option<Report> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(report) = Report::parse(&line) {
                        return Some(report);
                    }
                    tracing::debug!(line, "worker output");
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits for the worker to end.
    ///
    /// # Errors
    /// The wait itself failed.
    pub async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }
}

/// Sends `signal` to the worker's process group `pgid`; a group that is gone
/// already is not an error.
pub fn signal(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // killpg(0 or 1) would hit the service's own group or everything.
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions; ESRCH is fine.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// The epochs 1..=`last` from the worker's epoch record (`epochs.jsonl` beside
/// its checkpoint), in order, the later line of an epoch trained twice winning;
/// empty when the record is missing or has a gap.
pub fn epochs_until(path: &Path, last: u32) -> Vec<Report> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_epoch: std::collections::BTreeMap<u32, Report> = Default::default();
    for report in text.lines().filter_map(Report::parse) {
        if let Report::Epoch { epoch, .. } = report {
            if (1..=last).contains(&epoch) {
                by_epoch.insert(epoch, report);
            }
        }
    }
    if by_epoch.len() != usize::try_from(last).unwrap_or(usize::MAX) {
        return Vec::new();
    }
    by_epoch.into_values().collect()
}

/// The last `lines` lines of the worker's log, to say why it failed.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_model_lines_are_reports_and_other_lines_are_not() {
        let epoch = r#"{"epoch":1,"epochs":2,"loss":0.5,"train_accuracy":0.8,"test_accuracy":0.75,"samples_per_s":1000.0,"seconds":1.5,"train_samples":1437}"#;
        assert_eq!(
            Report::parse(epoch),
            Some(Report::Epoch {
                epoch: 1,
                epochs: 2,
                loss: 0.5,
                train_accuracy: 0.8,
                test_accuracy: Some(0.75),
                samples_per_s: 1000.0,
                train_samples: 1437,
            })
        );
        let done = r#"{"model":"/j/model","test_accuracy":null,"train_seconds":3.0}"#;
        assert_eq!(
            Report::parse(done),
            Some(Report::Done {
                model: "/j/model".into(),
                test_accuracy: None
            })
        );
        assert_eq!(Report::parse("warning: something"), None);
        assert_eq!(Report::parse(r#"{"other":1}"#), None);
    }

    #[test]
    fn the_epoch_record_gives_each_epoch_once_the_later_line_winning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs.jsonl");
        let line = |epoch: u32, loss: f64| {
            format!(
                r#"{{"epoch":{epoch},"epochs":5,"loss":{loss},"train_accuracy":0.5,"test_accuracy":null,"samples_per_s":1.0,"seconds":1.0,"train_samples":10}}"#
            )
        };
        let text = [
            line(1, 0.9),
            line(2, 0.8),
            line(3, 0.7),
            line(3, 0.6),
            line(4, 0.5),
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let losses = |last| -> Vec<f64> {
            epochs_until(&path, last)
                .into_iter()
                .map(|r| match r {
                    Report::Epoch { loss, .. } => loss,
                    Report::Done { .. } => f64::NAN,
                })
                .collect()
        };
        assert_eq!(losses(3), [0.9, 0.8, 0.6]);
        assert!(losses(5).is_empty(), "epoch 5 is missing");
        assert!(epochs_until(&dir.path().join("none"), 2).is_empty());
    }

    #[tokio::test]
    async fn a_worker_reports_and_its_stderr_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let script = r#"echo '{"model":"m","test_accuracy":0.5}'; echo oops >&2; exit 3"#;
        let mut worker =
            Worker::spawn(Path::new("/bin/sh"), &["-c".into(), script.into()], &log).unwrap();
        assert!(matches!(
            worker.next_report().await,
            Some(Report::Done { .. })
        ));
        assert_eq!(worker.next_report().await, None);
        assert_eq!(worker.wait().await.unwrap().code(), Some(3));
        assert_eq!(log_tail(&log, 5), "oops");
    }
}
