//! Test support shared by evospike's tests.
//!
//! - [`loopback_endpoint`]: a Zenoh TCP endpoint on a free 127.0.0.1 port (tests
//!   never touch any other address, and never scout by multicast).
//! - [`Child`]: a spawned process that is killed when dropped, whose output lines
//!   can be awaited with [`Child::wait_for_line`].
//! - [`wait_until`]: wait on a condition with a deadline instead of sleeping.
//! - [`netns::TwoHosts`]: two test hosts (network namespaces and a veth link) for
//!   multi-host tests, removed when dropped.
//!
//! ```
//! use std::time::Duration;
//! let endpoint = evospike_testkit::loopback_endpoint();
//! assert!(endpoint.starts_with("tcp/127.0.0.1:"));
//! let mut child = evospike_testkit::Child::spawn(std::process::Command::new("echo").arg("ready")).unwrap();
//! child.wait_for_line(|line| line == "ready", Duration::from_secs(5)).unwrap();
//! ```
#![warn(missing_docs)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound once and released; tests use it at once).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// `tcp/127.0.0.1:<free port>`.
pub fn loopback_endpoint() -> String {
    format!("tcp/127.0.0.1:{}", free_port())
}

/// A binary of this workspace, built next to the running test executable
/// (`target/<profile>/<name>`). `cargo test --workspace` builds every binary
/// whose package has tests; the panic says what to build otherwise.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test executable inside target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {name}`",
        path.display()
    );
    path
}

/// The workspace's root folder (the one with `Cargo.lock`), found at run time
/// from the running test's package: a build cache shared between checkouts in
/// different places must not bake one checkout's path into this crate.
pub fn workspace_root() -> std::path::PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("a working directory"));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", start.display()))
        .to_path_buf()
}

/// Waits until `condition` holds, checking every few milliseconds; `Err` with the
/// elapsed time when `timeout` passes first.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> Result<(), Duration> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if condition() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(start.elapsed());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// What reached a node over the bus, from the `node NAME bus totals …` line
/// every node logs when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BusTotals {
    /// Steps the node computed (or published).
    pub steps: u64,
    /// Input steps that never arrived, reported as gaps.
    pub gaps: u64,
    /// Input steps that arrived twice or out of order.
    pub duplicates: u64,
    /// Payloads received.
    pub received: u64,
    /// Read in place, without a copy.
    pub in_place: u64,
    /// Copied before reading.
    pub copies: u64,
    /// Arrived through shared memory.
    pub shm: u64,
    /// Tensors sent.
    pub sent: u64,
    /// Sent from loaned buffers the node computed in (no copy).
    pub loaned: u64,
    /// Sent by serializing an owned tensor (one copy each).
    pub send_copies: u64,
    /// Shared memory the node held for its send buffers at the end.
    pub shm_pool_bytes: u64,
}

/// The bus totals node `node` logged in `lines` (its last such line).
pub fn bus_totals(lines: &[String], node: &str) -> Option<BusTotals> {
    let marker = format!("node {node} bus totals ");
    let line = lines.iter().rev().find(|l| l.contains(&marker))?;
    let field = |name: &str| -> Option<u64> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some(BusTotals {
        steps: field("steps")?,
        gaps: field("gaps")?,
        duplicates: field("duplicates")?,
        received: field("received")?,
        in_place: field("in_place")?,
        copies: field("copies")?,
        shm: field("shm")?,
        sent: field("sent").unwrap_or(0),
        loaned: field("loaned").unwrap_or(0),
        send_copies: field("send_copies").unwrap_or(0),
        shm_pool_bytes: field("shm_pool_bytes").unwrap_or(0),
    })
}

/// Why waiting on a child failed.
#[derive(Debug)]
pub enum ChildError {
    /// The process could not be started.
    Spawn(std::io::Error),
    /// The expected output did not come in time; holds the lines seen.
    Timeout(Vec<String>),
    /// The process closed its output before the expected line; holds the lines seen.
    Exited(Vec<String>),
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildError::Spawn(err) => write!(f, "cannot spawn: {err}"),
            ChildError::Timeout(lines) => {
                write!(f, "timed out; output so far:\n{}", lines.join("\n"))
            }
            ChildError::Exited(lines) => write!(f, "output ended; it was:\n{}", lines.join("\n")),
        }
    }
}

impl std::error::Error for ChildError {}

/// A child process whose stdout and stderr lines are collected; killed on drop.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Child {
    /// Spawns `command` with stdout and stderr piped.
    pub fn spawn(command: &mut Command) -> Result<Child, ChildError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ChildError::Spawn)?;
        let (tx, lines) = mpsc::channel();
        let readers: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout is piped")),
            Box::new(child.stderr.take().expect("stderr is piped")),
        ];
        for reader in readers {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Child {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for an output line (stdout or stderr) for which `matches` holds, and
    /// returns it.
    pub fn wait_for_line(
        &mut self,
        mut matches: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, ChildError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ChildError::Timeout(self.seen.clone()))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ChildError::Exited(self.seen.clone()))
                }
            }
        }
    }

    /// Every output line seen so far, plus those already queued.
    pub fn output(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        let _ = wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Sends a signal (e.g. `"INT"`, `"TERM"`) with the `kill` command.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {} failed",
                self.id()
            )))
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `evospike run KIND --name NAME --connect ROUTER -p PARAM…` as a service
/// on 127.0.0.1 with any free port (`SERVICE_PORT=0`).
pub fn service_node(router: &str, kind: &str, name: &str, params: &[impl AsRef<str>]) -> Child {
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .args(["run", kind, "--name", name, "--connect", router])
        .env("SERVICE_HOST", "127.0.0.1")
        .env("SERVICE_PORT", "0")
        .env("RUST_LOG", "info");
    for p in params {
        command.args(["-p", p.as_ref()]);
    }
    Child::spawn(&mut command).expect("start a service node")
}

/// Starts `evospike run router --listen ENDPOINT` and waits until it is ready.
pub fn router(endpoint: &str) -> Child {
    let mut router = Child::spawn(
        Command::new(workspace_bin("evospike")).args(["run", "router", "--listen", endpoint]),
    )
    .expect("start a router");
    router
        .wait_for_line(|l| l.contains("ready"), Duration::from_secs(60))
        .expect("the router starts");
    router
}

/// The base URL a service logs when it starts (`… serving http://ADDR`).
pub fn service_url(service: &mut Child) -> String {
    let line = service
        .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
        .expect("the service starts");
    line.split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned()
}

/// `evospike launch launch/services.yaml` for a test: the router at `router`,
/// every service on 127.0.0.1 and a free port, every data directory under
/// `data`. Add a test's own `--arg`s to the command.
pub fn services_launch(router: &str, data: &std::path::Path) -> Command {
    let file = workspace_root().join("launch/services.yaml");
    let mut command = Command::new(workspace_bin("evospike"));
    command.arg("launch").arg(file).args([
        "--arg",
        &format!("router={router}"),
        "--arg",
        "host=127.0.0.1",
    ]);
    for port in [
        "gateway_port",
        "training_port",
        "inference_port",
        "registry_port",
        "monitoring_port",
    ] {
        command.args(["--arg", &format!("{port}=0")]);
    }
    for (arg, dir) in [
        ("registry_data", "registry"),
        ("training_data", "training"),
        ("logs_data", "logs"),
    ] {
        command
            .arg("--arg")
            .arg(format!("{arg}={}", data.join(dir).display()));
    }
    command.env("RUST_LOG", "info");
    command
}

/// `program` on the `PATH`, if it is there.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_totals_are_read_from_the_log_line() {
        let lines = vec![
            "x".to_string(),
            "[layer1:err] 2026 INFO node layer1 bus totals steps=300 gaps=2 duplicates=0 \
             received=298 in_place=280 copies=18 shm=0 sent=300 loaned=299 send_copies=1 \
             shm_pool_bytes=65536"
                .to_string(),
        ];
        let totals = bus_totals(&lines, "layer1").unwrap();
        assert_eq!(
            totals,
            BusTotals {
                steps: 300,
                gaps: 2,
                duplicates: 0,
                received: 298,
                in_place: 280,
                copies: 18,
                shm: 0,
                sent: 300,
                loaned: 299,
                send_copies: 1,
                shm_pool_bytes: 65536,
            }
        );
        assert!(bus_totals(&lines, "layer2").is_none());
    }

    #[test]
    fn wait_until_times_out_on_false() {
        assert!(wait_until(Duration::from_millis(20), || false).is_err());
        assert!(wait_until(Duration::from_millis(20), || true).is_ok());
    }

    #[test]
    fn child_output_ending_is_reported() {
        let mut child =
            Child::spawn(Command::new("sh").args(["-c", "echo one; echo two >&2"])).unwrap();
        let err = child
            .wait_for_line(|l| l == "three", Duration::from_secs(5))
            .unwrap_err();
        match err {
            ChildError::Exited(mut lines) => {
                lines.sort();
                assert_eq!(lines, vec!["one", "two"]);
            }
            other => panic!("expected Exited, got {other}"),
        }
        assert!(child.wait_exit(Duration::from_secs(5)).unwrap().success());
    }
}
