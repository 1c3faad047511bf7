//! The benchmark of BENCHMARKS.md "Two hosts: TCP and TLS": latency and
//! throughput of one link between two test hosts (network namespaces with their
//! own `/dev/shm`, joined by a veth pair), through the evospike bus and through
//! raw Zenoh opened with the same configuration, over TCP and over mutual TLS,
//! in one run. Ignored by default (it measures, it does not check):
//!
//! ```sh
//! cargo build --release -p evospike-tests --bin bus-bench
//! cargo test --release -p evospike-tests --test bench_cluster -- --ignored --nocapture
//! ```
//!
//! (`evospike certs` of the debug build makes the certificates.)

use std::process::Command;
use std::time::Duration;

use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{free_port, workspace_bin, Child};

const SIZES: [usize; 2] = [64, 65536];

/// The evospike binary that makes the certificates: the debug build's (kept up
/// to date by the test suite), else the one beside this test.
fn evospike() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|d| d.parent()).unwrap();
    let debug = profile.with_file_name("debug").join("evospike");
    if debug.exists() {
        debug
    } else {
        profile.join("evospike")
    }
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn two_hosts_tcp_and_tls() {
    let hosts = TwoHosts::create("evb").expect("test hosts (root, iproute2)");
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let status = Command::new(evospike())
        .arg("certs")
        .arg("--out")
        .arg(&certs)
        .args(["--machine", &format!("head={}", hosts.addrs[0])])
        .args(["--machine", &format!("worker={}", hosts.addrs[1])])
        .status()
        .unwrap();
    assert!(status.success());
    println!("| link | api | payload | RTT p50 | RTT p99 | msgs/s | Mbit/s |");
    println!("|---|---|---|---|---|---|---|");
    for link in ["tcp", "tls"] {
        for size in SIZES {
            for raw in [true, false] {
                let endpoint = format!("{link}/{}:{}", hosts.addrs[1], free_port());
                let flags = |command: &mut Command| {
                    if raw {
                        command.arg("--raw");
                    }
                    if link == "tls" {
                        command.arg("--tls").arg(&certs);
                    }
                };
                let mut echo = hosts.command(1, &workspace_bin("bus-bench"));
                echo.args(["echo", "--listen", &endpoint]);
                flags(&mut echo);
                let mut echo = Child::spawn(&mut echo).unwrap();
                echo.wait_for_line(|l| l == "ready", Duration::from_secs(20))
                    .unwrap();
                let count = if size > 4096 { 2000 } else { 50000 };
                let mut drive = hosts.command(0, &workspace_bin("bus-bench"));
                drive.args(["drive", "--connect", &endpoint]).args([
                    "--size",
                    &size.to_string(),
                    "--count",
                    &count.to_string(),
                    "--pings",
                    "2000",
                ]);
                flags(&mut drive);
                let mut drive = Child::spawn(&mut drive).unwrap();
                let line = drive
                    .wait_for_line(|l| l.starts_with('{'), Duration::from_secs(120))
                    .unwrap();
                let r: serde_json::Value = serde_json::from_str(&line).unwrap();
                assert_eq!(r["burst_received"], count, "every burst message arrived");
                println!(
                    "| {link} | {} | {size} B | {:.0} µs | {:.0} µs | {:.0} | {:.0} |",
                    r["api"].as_str().unwrap(),
                    r["rtt_p50_us"].as_f64().unwrap(),
                    r["rtt_p99_us"].as_f64().unwrap(),
                    r["msgs_per_s"].as_f64().unwrap(),
                    r["mbit_per_s"].as_f64().unwrap(),
                );
            }
        }
    }
}
