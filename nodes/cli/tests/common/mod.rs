//! Shared by the CLI tests: a router of our own on a free loopback port, and
//! running the `evospike` binary against it with a deadline.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use evospike_bus::{Bus, BusConfig};
use evospike_testkit::{loopback_endpoint, wait_until, Child};

/// Generous: the machine is shared, and a hang must still end the test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The `evospike` binary with no `EVOSPIKE_*` variables inherited.
pub fn evospike() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evospike"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EVOSPIKE_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// `evospike router --listen <free loopback port>`, killed when dropped.
#[derive(Debug)]
pub struct Router {
    pub endpoint: String,
    pub child: Child,
}

impl Router {
    pub fn start() -> Router {
        let endpoint = loopback_endpoint();
        let child = Child::spawn(evospike().args(["router", "--listen", &endpoint]))
            .expect("spawn evospike router");
        let address = endpoint.trim_start_matches("tcp/").to_string();
        let mut router = Router { endpoint, child };
        let listening = wait_until(DEADLINE, || TcpStream::connect(&address).is_ok());
        assert!(
            listening.is_ok(),
            "the router never listened on {address}: {:?}",
            router.child.output()
        );
        router
    }

    /// `evospike ARGS… --connect <this router>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = evospike();
        command.args(args).args(["--connect", &self.endpoint]);
        command
    }

    /// A bus session of the test itself, connected to this router.
    pub fn bus(&self, runtime: &tokio::runtime::Runtime) -> Bus {
        let config = BusConfig::peer(&[], std::slice::from_ref(&self.endpoint));
        runtime
            .block_on(Bus::open(config))
            .expect("open a bus session on the test router")
    }
}

/// Finished command: exit status and its two output streams as text.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A command running in the background; [`Running::finish`] waits for it.
#[derive(Debug)]
pub struct Running {
    pid: u32,
    done: mpsc::Receiver<std::io::Result<Output>>,
}

pub fn start(command: &mut Command) -> Running {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evospike");
    let pid = child.id();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    Running { pid, done }
}

impl Running {
    /// Waits for the end (killing the process after [`DEADLINE`]).
    pub fn finish(self) -> Finished {
        match self.done.recv_timeout(DEADLINE) {
            Ok(output) => {
                let output = output.expect("collect the output");
                Finished {
                    success: output.status.success(),
                    code: output.status.code(),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }
            }
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.pid.to_string()])
                    .status();
                let output = self.done.recv_timeout(Duration::from_secs(5));
                panic!("evospike did not finish within {DEADLINE:?}; output: {output:?}");
            }
        }
    }
}

/// Runs a command to its end.
pub fn run(command: &mut Command) -> Finished {
    start(command).finish()
}
