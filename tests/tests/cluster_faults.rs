//! Faults of a two-host cluster (`launch/secure_cluster.yaml`, one router per
//! host, every node a client of its host's router), in test hosts with their
//! own `/dev/shm`:
//!
//! - the worker's router is killed with SIGKILL: its launcher restarts it, the
//!   nodes keep running (same pids) and reconnect, the pipeline resumes within a
//!   bound, `node list` and `topic list` answer promptly with exactly the nodes
//!   alive, and every step layer1 did not receive is reported as a gap;
//! - the launcher is killed with SIGKILL: its nodes die with it (the kernel's
//!   parent-death signal), none lingers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{bus_totals, wait_until, workspace_bin, Child};

/// How long the pipeline may stay silent after its router was killed.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// How long the launcher's nodes may outlive it.
const ORPHAN_BOUND: Duration = Duration::from_secs(2);

fn secure_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/secure_cluster.yaml")
}

fn evospike() -> PathBuf {
    workspace_bin("evospike")
}

fn hosts_or_skip(name: &str) -> Option<TwoHosts> {
    match TwoHosts::create(name) {
        Ok(hosts) => Some(hosts),
        Err(reason) if std::env::var_os("EVOSPIKE_REQUIRE_NETNS").is_none() => {
            eprintln!("skipped: {reason}");
            None
        }
        Err(reason) => panic!("cannot create test hosts: {reason}"),
    }
}

/// A secured cluster on two test hosts, its certificates in a temporary folder.
struct Cluster {
    hosts: TwoHosts,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new(name: &str) -> Option<Cluster> {
        let hosts = hosts_or_skip(name)?;
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(evospike())
            .arg("certs")
            .arg("--out")
            .arg(dir.path().join("certs"))
            .args(["--machine", &format!("head={}", hosts.addrs[0])])
            .args(["--machine", &format!("worker={}", hosts.addrs[1])])
            .status()
            .unwrap();
        assert!(status.success());
        Some(Cluster { hosts, dir })
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// `evospike launch secure_cluster.yaml --machine M` on host `host`.
    fn launch(&self, host: usize, machine: &str, steps: Option<u64>) -> Child {
        let mut command = self.hosts.command(host, &evospike());
        command
            .arg("launch")
            .arg(secure_file())
            .args(["--machine", machine])
            .arg("--arg")
            .arg(format!("certs={}", self.certs().display()))
            .args(["--arg", &format!("head_ip={}", self.hosts.addrs[0])])
            .args(["--arg", &format!("worker_ip={}", self.hosts.addrs[1])])
            .args(["--arg", "rate=250"])
            .arg("--log-dir")
            .arg(self.dir.path().join(machine))
            .env("RUST_LOG", "info");
        if let Some(steps) = steps {
            command.args(["--arg", &format!("steps={steps}")]);
        }
        Child::spawn(&mut command).unwrap()
    }

    /// A tool on the worker host, as the operator, against the worker's router.
    fn tool(&self, args: &[&str]) -> Command {
        let certs = self.certs();
        let mut command = self.hosts.command(1, &evospike());
        command
            .args(args)
            .args(["--connect", &format!("tls/{}:7448", self.hosts.addrs[1])])
            .arg("--tls-ca")
            .arg(certs.join("ca.pem"))
            .arg("--tls-cert")
            .arg(certs.join("worker.pem"))
            .arg("--tls-key")
            .arg(certs.join("worker.key"))
            .args(["--mtls", "--user", "operator", "--secret-file"])
            .arg(certs.join("cluster.secret"));
        command
    }
}

/// The pid the launcher reported for the latest start of `node`.
fn started_pid(lines: &[String], node: &str) -> Option<u32> {
    let marker = format!("started {node} (pid ");
    let line = lines.iter().rev().find(|l| l.contains(&marker))?;
    let rest = &line[line.find(&marker)? + marker.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

#[test]
fn a_killed_router_is_restarted_and_the_pipeline_resumes() {
    const STEPS: u64 = 4000;
    let Some(cluster) = Cluster::new("evr") else {
        return;
    };
    let mut head = cluster.launch(0, "head", Some(STEPS));
    head.wait_for_line(
        |l| l.contains("router-head is ready"),
        Duration::from_secs(30),
    )
    .unwrap();
    let mut worker = cluster.launch(1, "worker", Some(STEPS));
    worker
        .wait_for_line(|l| l.contains("INFO prediction"), Duration::from_secs(30))
        .unwrap();
    let before = worker.output().to_vec();
    let router = started_pid(&before, "router-worker").expect("router-worker's pid");
    let nodes = ["layer1", "layer2", "readout"];
    let pids: Vec<u32> = nodes
        .iter()
        .map(|n| started_pid(&before, n).unwrap())
        .collect();

    let killed = Instant::now();
    kill9(router);
    worker
        .wait_for_line(
            |l| l.contains("started router-worker (pid"),
            Duration::from_secs(10),
        )
        .expect("the launcher restarts the killed router");
    worker
        .wait_for_line(|l| l.contains("INFO prediction"), RECOVERY_BOUND * 2)
        .expect("the pipeline resumes");
    let recovery = killed.elapsed();
    eprintln!("pipeline resumed {recovery:?} after the router was killed");
    assert!(recovery < RECOVERY_BOUND, "resumed only after {recovery:?}");
    for (node, pid) in nodes.iter().zip(&pids) {
        assert!(alive(*pid), "{node} (pid {pid}) kept running");
    }

    // The tools see the truth at once: every node, nothing stale, no hang.
    let asked = Instant::now();
    let listing = cluster
        .tool(&["node", "list", "--health", "--json"])
        .output()
        .unwrap();
    let took = asked.elapsed();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(took < Duration::from_secs(10), "node list took {took:?}");
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "encoder",
            "layer1",
            "layer2",
            "readout",
            "router-head",
            "router-worker"
        ],
        "{text}"
    );
    for (node, pid) in nodes.iter().zip(&pids) {
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == *node)
            .unwrap();
        let reported = &entry["health"]["node"]["pid"];
        let reported = reported
            .as_u64()
            .or_else(|| reported.as_str().and_then(|s| s.parse().ok()));
        assert_eq!(reported, Some(*pid as u64), "{node}: {entry}");
    }
    let topics = cluster.tool(&["topic", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&topics.stdout);
    assert!(topics.status.success(), "{text}");
    for topic in ["encoder/spikes", "layer1/spikes", "layer2/spikes"] {
        assert!(text.contains(topic), "topic list misses {topic}:\n{text}");
    }

    let status = worker
        .wait_exit(Duration::from_secs(60))
        .expect("the worker's part ends after its steps");
    let lines = worker.output().to_vec();
    assert!(status.success(), "{}", lines.join("\n"));
    for node in nodes {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&format!("started {node} (pid")))
                .count(),
            1,
            "{node} was never restarted"
        );
    }
    // Every encoder step reached layer1 or was reported as a gap.
    let layer1 = bus_totals(&lines, "layer1").expect("layer1's totals");
    assert_eq!(layer1.steps, STEPS, "{layer1:?}");
    assert_eq!(layer1.duplicates, 0, "{layer1:?}");
    assert_eq!(
        layer1.received + layer1.gaps,
        STEPS,
        "received and reported steps add up: {layer1:?}"
    );
    assert_eq!(layer1.shm, 0, "{layer1:?}");
    eprintln!("layer1 after the router restart: {layer1:?}");

    head.signal("INT").unwrap();
    assert!(head.wait_exit(Duration::from_secs(15)).is_some());
}

#[test]
fn nodes_do_not_outlive_a_killed_launcher() {
    let Some(cluster) = Cluster::new("evl") else {
        return;
    };
    let mut head = cluster.launch(0, "head", None);
    head.wait_for_line(
        |l| l.contains("router-head is ready"),
        Duration::from_secs(30),
    )
    .unwrap();
    head.wait_for_line(|l| l.contains("started encoder"), Duration::from_secs(30))
        .unwrap();
    let lines = head.output().to_vec();
    let pids: Vec<u32> = ["router-head", "encoder"]
        .iter()
        .map(|n| started_pid(&lines, n).unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));

    let killed = Instant::now();
    head.signal("KILL").unwrap();
    let gone = wait_until(ORPHAN_BOUND * 5, || pids.iter().all(|p| !alive(*p)));
    let took = killed.elapsed();
    assert!(gone.is_ok(), "nodes {pids:?} outlived their launcher");
    eprintln!("the launcher's nodes were gone {took:?} after it was killed");
    assert!(took < ORPHAN_BOUND, "orphans lived {took:?}");
}

#[test]
fn a_node_that_reaches_no_router_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lonely.yaml");
    let endpoint = evospike_testkit::loopback_endpoint();
    std::fs::write(
        &file,
        format!(
            "bus: {{mode: client, connect: [\"{endpoint}\"]}}\nnodes:\n  - name: encoder\n    kind: encoder\n    required: true\n    params: {{source: builtin:digits, max_steps: 10}}\n"
        ),
    )
    .unwrap();
    let mut launcher = Child::spawn(
        Command::new(evospike())
            .arg("launch")
            .arg(&file)
            .arg("--log-dir")
            .arg(dir.path().join("log")),
    )
    .unwrap();
    let line = launcher
        .wait_for_line(
            |l| l.contains("could not reach any router"),
            Duration::from_secs(30),
        )
        .expect("the launcher says why the node ended");
    assert!(line.contains("encoder"), "{line}");
    let status = launcher.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(!status.success());
}
