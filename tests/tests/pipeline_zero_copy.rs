//! On one host a spike tensor crosses the pipeline without a single copy: the
//! encoder encodes each step, and each layer computes its spikes, straight into
//! the shared-memory buffer that is sent (`SpikePublisher::loan`); each receiver
//! reads it in place. Every node is its own `evospike run` process on Zenoh with
//! shared memory, and the copy counters each node logs at exit show 0 copies per
//! step, sent or received.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{bus_totals, loopback_endpoint, workspace_bin, BusTotals, Child};

const STEPS: u64 = 300;

/// `evospike run KIND --name NAME --connect ROUTER -p PARAM…`, logging at info
/// (the bus totals line).
fn node(router: &str, kind: &str, name: &str, params: &[String]) -> Child {
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .args(["run", kind, "--name", name, "--connect", router])
        .env("RUST_LOG", "info");
    for param in params {
        command.args(["-p", param]);
    }
    Child::spawn(&mut command).expect("start a node")
}

/// Waits for `child` to exit successfully and returns the totals it logged.
fn totals(mut child: Child, name: &str) -> BusTotals {
    let status = child.wait_exit(Duration::from_secs(120));
    let lines = child.output().to_vec();
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} did not finish: {}",
        lines.join("\n")
    );
    bus_totals(&lines, name)
        .unwrap_or_else(|| panic!("{name} logs its bus totals:\n{}", lines.join("\n")))
}

#[test]
fn spikes_cross_the_pipeline_with_zero_copies_per_step() {
    let router = loopback_endpoint();
    let _router = evospike_testkit::router(&router);
    let steps = format!("max_steps={STEPS}");
    let layer = |name: &str, input: &str| {
        let mut params = vec![
            "size=500".to_string(),
            format!(r#"inputs=[{{"topic":"{input}","p":0.2,"weight":5.0}}]"#),
            steps.clone(),
        ];
        if name == "layer3" {
            // Nobody listens to the last layer: do not wait for anyone.
            params.push("wait_subscribers_s=0".to_string());
        }
        node(&router, "layer", name, &params)
    };
    // Downstream first, so every output has its subscriber when the encoder
    // starts; layer3 is the sink that makes layer2 send every step.
    let layer3 = layer("layer3", "layer2/spikes");
    let layer2 = layer("layer2", "layer1/spikes");
    let layer1 = layer("layer1", "encoder/spikes");
    let encoder = node(
        &router,
        "encoder",
        "encoder",
        &[r#"source="generator:bars""#.to_string(), steps.clone()],
    );

    let encoder = totals(encoder, "encoder");
    assert_eq!(encoder.steps, STEPS);
    assert_eq!(encoder.send_copies, 0, "encoder: {encoder:?}");
    assert_eq!(encoder.loaned, encoder.sent, "encoder: {encoder:?}");
    assert!(encoder.sent >= STEPS, "encoder: {encoder:?}");
    for (name, child) in [("layer1", layer1), ("layer2", layer2), ("layer3", layer3)] {
        let t = totals(child, name);
        assert_eq!(t.steps, STEPS, "{name}: {t:?}");
        assert_eq!(t.gaps, 0, "{name}: {t:?}");
        // Received: every input step, in shared memory, read in place.
        assert_eq!(t.received, STEPS, "{name}: {t:?}");
        assert_eq!(t.shm, STEPS, "{name}: {t:?}");
        assert_eq!(t.in_place, STEPS, "{name}: {t:?}");
        // Sent: every step computed in a loaned buffer.
        assert_eq!((t.sent, t.loaned), (STEPS, STEPS), "{name}: {t:?}");
        let copies_per_step = (t.copies + t.send_copies) as f64 / t.steps as f64;
        assert_eq!(copies_per_step, 0.0, "{name}: {t:?}");
        // Its pool holds 4 × (queue + 2) of this layer's small tensors (a few MiB
        // at most), not a fixed 64 MiB.
        assert!(
            t.shm_pool_bytes > 0 && t.shm_pool_bytes <= 8 << 20,
            "{name}: {t:?}"
        );
    }
}
