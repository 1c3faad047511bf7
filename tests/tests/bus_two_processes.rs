//! Two OS processes exchange SpikeTensors through the bus: 1,000 of 1 MiB, and a
//! stream of small ones to a consumer that stops reading for a while.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, Child};
use evospike_tests::SubSummary;

const COUNT: u64 = 1000;
const BYTES: usize = 1 << 20;

const PEER: &str = env!("CARGO_BIN_EXE_spike-peer");

fn exchange(extra: &[&str]) -> SubSummary {
    stream(extra, &[], COUNT, BYTES, Command::new(PEER)).0
}

/// `count` tensors of about `bytes` from a publisher process (`publisher`: the
/// peer, or a command that runs it) to a subscriber process (`sub_args` are the
/// subscriber's own options): what the subscriber received, and the publisher's
/// last line.
fn stream(
    extra: &[&str],
    sub_args: &[&str],
    count: u64,
    bytes: usize,
    mut publisher: Command,
) -> (SubSummary, String) {
    let peer = PEER;
    let endpoint = loopback_endpoint();
    let mut sub = Child::spawn(
        Command::new(peer)
            .args(extra)
            .args(["sub", "--listen", &endpoint, "--count", &count.to_string()])
            .args(sub_args),
    )
    .unwrap();
    sub.wait_for_line(|l| l == "ready", Duration::from_secs(20))
        .unwrap();
    let mut publisher = Child::spawn(publisher.args(extra).args([
        "pub",
        "--connect",
        &endpoint,
        "--count",
        &count.to_string(),
        "--bytes",
        &bytes.to_string(),
    ]))
    .unwrap();
    let line = sub
        .wait_for_line(|l| l.starts_with('{'), Duration::from_secs(120))
        .unwrap();
    let published = publisher
        .wait_for_line(|l| l.starts_with("published"), Duration::from_secs(30))
        .unwrap();
    (serde_json::from_str(&line).unwrap(), published)
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

/// A consumer that stops reading (a layer busy computing, a descheduled process)
/// fills its queue; the transport then holds the publisher back. Nothing may be
/// dropped meanwhile: not by the queue, not by Zenoh's shared-memory watchdogs
/// (which reclaim buffers nobody confirms for 100–200 ms), not by the pool.
#[test]
fn a_consumer_that_stalls_for_a_second_loses_no_tensor() {
    const SMALL: u64 = 20_000;
    for extra in [&[][..], &["--no-shm"][..]] {
        let (summary, _) = stream(
            extra,
            &[
                "--stall-at",
                "500",
                "--stall-ms",
                "1000",
                "--idle-ms",
                "10000",
            ],
            SMALL,
            4096,
            Command::new(PEER),
        );
        assert_eq!(summary.missing, 0, "{extra:?}: {summary:?}");
        assert_eq!(summary.received, SMALL, "{extra:?}: {summary:?}");
        assert!(summary.in_order, "{extra:?}: {summary:?}");
        if extra.is_empty() {
            assert_eq!(summary.shm, SMALL, "{summary:?}");
        }
    }
}

/// A publisher on a host whose `/dev/shm` cannot hold its pool (a private 1 MiB
/// tmpfs, in its own mount namespace) warns and sends over the network path:
/// every tensor arrives, none through shared memory.
#[test]
fn a_publisher_without_room_in_dev_shm_still_delivers_every_tensor() {
    // `program` run in its own mount namespace over a 1 MiB /dev/shm.
    let small_dev_shm = |program: &str| {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o size=1m evospike-shm /dev/shm && exec "$0" "$@""#)
            .arg(program);
        command
    };
    // Without root or util-linux there is no private /dev/shm to make; say so.
    let probe = small_dev_shm("true").status();
    if !probe.is_ok_and(|status| status.success()) {
        assert!(
            std::env::var_os("EVOSPIKE_REQUIRE_NETNS").is_none(),
            "cannot make a private /dev/shm"
        );
        eprintln!("skipped: cannot make a private /dev/shm (needs root and unshare)");
        return;
    }
    let publisher = small_dev_shm(PEER);
    let (summary, published) = stream(&[], &["--idle-ms", "20000"], 200, BYTES, publisher);
    assert_eq!(
        published, "published 200 shm_pool_bytes=0",
        "no pool was made"
    );
    assert_eq!(summary.received, 200, "{summary:?}");
    assert!(summary.in_order, "{summary:?}");
    assert_eq!(summary.missing, 0, "{summary:?}");
    assert_eq!(summary.shm, 0, "{summary:?}");
    assert_eq!(summary.copies, 200, "{summary:?}");
}
