//! Helpers for tests that run `evospike launch` on fixture files
//! (`tests/fixtures/launch/`), whose nodes are mostly small shell scripts.
//! Every wait is on a condition with a deadline; nothing sleeps and hopes.

#![allow(dead_code, unreachable_pub)] // Each test file uses a different subset.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Generous, because the test machine is small and shared.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launch")
        .join(name)
}

/// A launcher process started on a fixture, with its output going to files.
pub struct Launch {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Launch {
    /// Starts `evospike launch FIXTURE EXTRA...` with `--log-dir DIR/log`.
    pub fn start(fixture_name: &str, extra: &[&str]) -> Launch {
        let dir = tempfile::tempdir().unwrap();
        let child = command(fixture_name, extra, dir.path())
            .stdout(File::create(dir.path().join("stdout")).unwrap())
            .stderr(File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Launch { child, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        self.read("stdout")
    }

    pub fn stderr(&self) -> String {
        self.read("stderr")
    }

    pub fn log(&self, node: &str) -> String {
        self.read(&format!("log/{node}.log"))
    }

    /// The PIDs a `record_pid.sh`-style node wrote so far.
    pub fn pids(&self, node: &str) -> Vec<i32> {
        self.read(&format!("{node}.pids"))
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Waits until `node` has recorded at least `count` PIDs; returns them.
    pub fn wait_pids(&self, node: &str, count: usize) -> Vec<i32> {
        assert!(
            wait_until(TIMEOUT, || self.pids(node).len() >= count),
            "{node} did not record {count} pids; stderr:\n{}",
            self.stderr()
        );
        self.pids(node)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "cannot signal the launcher");
    }

    /// Waits for the launcher to exit; fails the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "launcher did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        // A failed assertion must not leave the launcher (and so its nodes) behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The launcher command on a fixture, with `EVOSPIKE_TEST_DIR` set for the scripts.
pub fn command(fixture_name: &str, extra: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evospike"));
    command
        .arg("launch")
        .arg(fixture(fixture_name))
        .arg("--log-dir")
        .arg(dir.join("log"))
        .args(extra)
        .env("EVOSPIKE_TEST_DIR", dir)
        .env_remove("EVOSPIKE_EXE")
        .stdin(Stdio::null());
    command
}

/// Runs the launcher to completion (for runs that end by themselves).
pub fn run_to_end(fixture_name: &str, extra: &[&str]) -> (Launch, ExitStatus) {
    let mut launch = Launch::start(fixture_name, extra);
    let status = launch.wait_exit(TIMEOUT);
    (launch, status)
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists && process_state(pid).is_some_and(|state| state != 'Z')
}

fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Live processes in process group `pgid` (each node leads its own group).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| process_group(pid) == Some(pgid) && alive(pid))
        .collect()
}

/// Asserts that neither the nodes nor anything in their groups survives.
pub fn assert_all_gone(pids: &[i32]) {
    let gone = wait_until(TIMEOUT, || {
        pids.iter()
            .all(|&p| !alive(p) && group_members(p).is_empty())
    });
    let left: Vec<(i32, Vec<i32>)> = pids.iter().map(|&p| (p, group_members(p))).collect();
    assert!(
        gone,
        "processes left behind (node pid, group members): {left:?}"
    );
}
