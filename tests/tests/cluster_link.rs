//! A bad link between the two hosts of `launch/cluster.yaml` (test hosts with
//! their own `/dev/shm`; the encoder on head, the layers and the readout on
//! worker, each a client of its host's router; the routers linked over TCP):
//!
//! - the link goes down for 2 s, well inside Zenoh's lease (10 s): the blocked
//!   publisher waits, nothing deadlocks, and every step reaches layer1 or is
//!   reported as a gap;
//! - the link goes down for 12 s, longer than the lease: the sessions close,
//!   the publisher is released, the routers relink when the link is back, and
//!   again every step reaches layer1 or is reported as a gap;
//! - the link is degraded with `tc netem` (delay, jitter, loss) — or, on a
//!   kernel without `sch_netem` (like the CI VM's), with a token bucket (`tbf`)
//!   below the pipeline's rate, which holds packets back (delay, jitter), and
//!   `iptables`' `statistic` match dropping 2 % of the packets each host
//!   receives (loss): the reliable spike topic arrives complete, without
//!   duplicates or reordering.

use std::path::{Path, PathBuf};
use std::time::Duration;

use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{bus_totals, workspace_bin, BusTotals, Child};

fn cluster_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/cluster.yaml")
}

/// Held while a cluster runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

fn launch(hosts: &TwoHosts, host: usize, machine: &str, steps: u64, logs: &Path) -> Child {
    let mut command = hosts.command(host, &workspace_bin("evospike"));
    command
        .arg("launch")
        .arg(cluster_file())
        .args(["--machine", machine])
        .args(["--arg", &format!("head_ip={}", hosts.addrs[0])])
        .args(["--arg", &format!("worker_ip={}", hosts.addrs[1])])
        .args(["--arg", &format!("steps={steps}"), "--arg", "rate=250"])
        .arg("--log-dir")
        .arg(logs.join(machine))
        .env("RUST_LOG", "info");
    Child::spawn(&mut command).unwrap()
}

/// Runs the cluster for `steps`, calling `during` once the readout scores, and
/// returns layer1's totals.
fn run_cluster(hosts: &TwoHosts, steps: u64, during: impl FnOnce()) -> BusTotals {
    // The faults are timed against the pipeline's rate: one cluster at a time,
    // or three clusters share two cores and none keeps its pace.
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let logs = tempfile::tempdir().unwrap();
    let mut head = launch(hosts, 0, "head", steps, logs.path());
    head.wait_for_line(|l| l.contains("router is ready"), Duration::from_secs(30))
        .unwrap();
    let mut worker = launch(hosts, 1, "worker", steps, logs.path());
    worker
        .wait_for_line(|l| l.contains("INFO prediction"), Duration::from_secs(30))
        .unwrap();
    during();
    let Some(status) = worker.wait_exit(Duration::from_secs(60)) else {
        panic!(
            "the worker's part ends: no deadlock\n{}",
            worker.output().join("\n")
        );
    };
    let lines = worker.output().to_vec();
    assert!(status.success(), "{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("readout readout done")),
        "{}",
        lines.join("\n")
    );
    head.wait_for_line(|l| l.contains("encoder done"), Duration::from_secs(30))
        .expect("the encoder ends: no blocked publisher");
    head.signal("INT").unwrap();
    assert!(head.wait_exit(Duration::from_secs(15)).is_some());
    bus_totals(&lines, "layer1").expect("layer1's totals")
}

/// Runs the cluster for `steps` with the link down for `down` once it scores.
fn partitioned(name: &str, steps: u64, down: Duration) -> Option<BusTotals> {
    let hosts = hosts_or_skip(name)?;
    let device = hosts.devices[0].clone();
    let layer1 = run_cluster(&hosts, steps, || {
        hosts.ip(0, &["link", "set", &device, "down"]).unwrap();
        std::thread::sleep(down); // the fault itself
        hosts.ip(0, &["link", "set", &device, "up"]).unwrap();
    });
    eprintln!("layer1 after a {down:?} partition: {layer1:?}");
    Some(layer1)
}

#[test]
fn a_partition_longer_than_the_lease_loses_nothing_silently() {
    const STEPS: u64 = 6000;
    let Some(layer1) = partitioned("evo", STEPS, Duration::from_secs(12)) else {
        return;
    };
    assert_eq!(layer1.steps, STEPS, "{layer1:?}");
    assert_eq!(layer1.duplicates, 0, "{layer1:?}");
    assert_eq!(
        layer1.received + layer1.gaps,
        STEPS,
        "every step delivered or reported: {layer1:?}"
    );
    assert!(
        layer1.gaps > 0,
        "steps published meanwhile were lost: {layer1:?}"
    );
}

#[test]
fn a_short_partition_loses_nothing_silently() {
    const STEPS: u64 = 2500;
    let Some(layer1) = partitioned("evp", STEPS, Duration::from_secs(2)) else {
        return;
    };
    assert_eq!(layer1.steps, STEPS, "{layer1:?}");
    assert_eq!(layer1.duplicates, 0, "{layer1:?}");
    assert_eq!(
        layer1.received + layer1.gaps,
        STEPS,
        "every step delivered or reported: {layer1:?}"
    );
    assert_eq!(layer1.shm, 0, "{layer1:?}");
}

/// How a host's end of the link was degraded, and how to read what it did.
enum Degraded {
    /// `tc netem` delays, jitters and drops.
    Netem,
    /// `tc tbf` holds packets back; `iptables` drops 2 % of those received.
    TbfAndDrops,
}

/// Degrades host `host`'s end of the link.
fn degrade(hosts: &TwoHosts, host: usize) -> Degraded {
    let device = hosts.devices[host].clone();
    let netem = [
        "qdisc", "add", "dev", &device, "root", "netem", "delay", "20ms", "5ms", "loss", "2%",
    ];
    match hosts.tc(host, &netem) {
        Ok(()) => Degraded::Netem,
        Err(err) if err.contains("qdisc kind is unknown") => {
            let tbf = [
                "qdisc", "add", "dev", &device, "root", "tbf", "rate", "256kbit", "burst", "4kb",
                "latency", "2ms",
            ];
            hosts.tc(host, &tbf).expect("tc tbf");
            let drop = [
                "-A",
                "INPUT",
                "-i",
                &device,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.02",
                "-j",
                "DROP",
            ];
            hosts.iptables(host, &drop).expect(
                "iptables with the statistic match (Debian's `iptables`; .ci/run installs it)",
            );
            Degraded::TbfAndDrops
        }
        Err(err) => panic!("{err}"),
    }
}

/// The first number after `name ` in `text` (tc's statistics).
fn counter(text: &str, name: &str) -> u64 {
    text.split(&format!("{name} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_degraded_link_delivers_reliable_topics_exactly_once_in_order() {
    const STEPS: u64 = 1500;
    let Some(hosts) = hosts_or_skip("evd") else {
        return;
    };
    let how: Vec<Degraded> = (0..2).map(|host| degrade(&hosts, host)).collect();
    let layer1 = run_cluster(&hosts, STEPS, || {});
    eprintln!("layer1 over a degraded link: {layer1:?}");
    // Reliable: every step arrived, none twice or out of order (duplicates
    // counts both), none reported missing, and over the link, not shared memory.
    assert_eq!(layer1.steps, STEPS, "{layer1:?}");
    assert_eq!(layer1.received, STEPS, "{layer1:?}");
    assert_eq!(layer1.gaps, 0, "{layer1:?}");
    assert_eq!(layer1.duplicates, 0, "{layer1:?}");
    assert_eq!(layer1.shm, 0, "{layer1:?}");
    // What the degradation did, summed over both ends.
    let (mut netem_drops, mut held_back, mut dropped) = (0, 0, 0);
    for (host, how) in how.iter().enumerate() {
        let stats = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.names[host],
                "tc",
                "-s",
                "qdisc",
                "show",
            ])
            .args(["dev", &hosts.devices[host]])
            .output()
            .unwrap();
        let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
        eprintln!("host {host}'s qdisc after the run:\n{stats}");
        match how {
            Degraded::Netem => netem_drops += counter(&stats, "dropped"),
            Degraded::TbfAndDrops => {
                // tbf holds packets back (TCP slows down before its queue
                // overflows): its overlimits; iptables counts what it dropped.
                held_back += counter(&stats, "overlimits");
                let rules = hosts
                    .iptables(host, &["-L", "INPUT", "-v", "-n", "-x"])
                    .unwrap();
                eprintln!("host {host}'s drops:\n{rules}");
                dropped += rules
                    .lines()
                    .find(|l| l.contains("statistic"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    match how[0] {
        Degraded::Netem => assert!(netem_drops > 0, "netem dropped packets"),
        Degraded::TbfAndDrops => {
            assert!(held_back > 0, "tbf held packets back");
            assert!(dropped > 0, "packets were lost on the link");
            eprintln!("the link lost {dropped} packets and held back {held_back}");
        }
    }
}
