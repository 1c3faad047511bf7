//! Two OS processes exchange 1,000 SpikeTensors of 1 MiB through the bus.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, Child};
use evospike_tests::SubSummary;

const COUNT: u64 = 1000;
const BYTES: usize = 1 << 20;

fn exchange(extra: &[&str]) -> SubSummary {
    let peer = env!("CARGO_BIN_EXE_spike-peer");
    let endpoint = loopback_endpoint();
    let mut sub = Child::spawn(Command::new(peer).args(extra).args([
        "sub",
        "--listen",
        &endpoint,
        "--count",
        &COUNT.to_string(),
    ]))
    .unwrap();
    sub.wait_for_line(|l| l == "ready", Duration::from_secs(20))
        .unwrap();
    let mut publisher = Child::spawn(Command::new(peer).args(extra).args([
        "pub",
        "--connect",
        &endpoint,
        "--count",
        &COUNT.to_string(),
        "--bytes",
        &BYTES.to_string(),
    ]))
    .unwrap();
    let line = sub
        .wait_for_line(|l| l.starts_with('{'), Duration::from_secs(120))
        .unwrap();
    publisher
        .wait_for_line(|l| l.starts_with("published"), Duration::from_secs(30))
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

#[test]
fn shared_memory_delivers_every_tensor_in_order_without_copies() {
    let summary = exchange(&[]);
    assert_eq!(summary.received, COUNT);
    assert!(summary.in_order, "{summary:?}");
    assert_eq!(summary.invalid, 0);
    assert_eq!(summary.active_total, 2 * COUNT);
    assert_eq!(
        summary.shm, COUNT,
        "every payload must arrive in shared memory: {summary:?}"
    );
    assert_eq!(summary.copies, 0, "{summary:?}");
    assert_eq!(summary.bytes_copied, 0);
}

#[test]
fn tcp_without_shared_memory_delivers_every_tensor_and_counts_copies() {
    let summary = exchange(&["--no-shm"]);
    assert_eq!(summary.received, COUNT);
    assert!(summary.in_order, "{summary:?}");
    assert_eq!(summary.invalid, 0);
    assert_eq!(summary.active_total, 2 * COUNT);
    assert_eq!(summary.shm, 0);
    // Copies are allowed over the network, and are accounted for byte by byte: each
    // copy moves one whole archive (1 MiB of words plus a small header).
    assert!(summary.copies <= COUNT);
    assert!(
        summary.bytes_copied >= summary.copies * BYTES as u64,
        "{summary:?}"
    );
    assert!(
        summary.bytes_copied <= summary.copies * (BYTES as u64 + 256),
        "{summary:?}"
    );
}
