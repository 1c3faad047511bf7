//! One launch file, two hosts: `launch/cluster.yaml` started with `--machine head`
//! on one network namespace and `--machine worker` on another, joined only by a
//! veth link, each with its own `/dev/shm`. The worker's readout scores the
//! head's encoder spikes, which crossed the link over TCP (the worker's layer1
//! counts every input as received and none through shared memory).

use std::time::Duration;

use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{bus_totals, workspace_bin, Child};

fn cluster_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/cluster.yaml")
}

#[test]
fn cluster_file_runs_across_two_hosts() {
    let hosts = match TwoHosts::create("evs") {
        Ok(hosts) => hosts,
        // Without root or iproute2 there are no test hosts to run on; say so.
        Err(reason) if std::env::var_os("EVOSPIKE_REQUIRE_NETNS").is_none() => {
            eprintln!("cluster_file_runs_across_two_hosts skipped: {reason}");
            return;
        }
        Err(reason) => panic!("cannot create test hosts: {reason}"),
    };
    let logs = tempfile::tempdir().unwrap();
    let launch = |host: usize, machine: &str| {
        let mut command = hosts.command(host, &workspace_bin("evospike"));
        command
            .arg("launch")
            .arg(cluster_file())
            .args([
                "--machine",
                machine,
                "--arg",
                &format!("head_ip={}", hosts.addrs[0]),
            ])
            .args([
                "--arg",
                &format!("worker_ip={}", hosts.addrs[1]),
                "--arg",
                "steps=600",
                "--arg",
                "rate=400",
            ])
            .arg("--log-dir")
            .arg(logs.path().join(machine))
            .env("RUST_LOG", "info");
        Child::spawn(&mut command).unwrap()
    };

    let mut head = launch(0, "head");
    head.wait_for_line(|l| l.contains("router is ready"), Duration::from_secs(30))
        .unwrap();
    let mut worker = launch(1, "worker");

    let status = worker
        .wait_exit(Duration::from_secs(90))
        .expect("the worker's part ends after 600 steps");
    let output = worker.output().join("\n");
    assert!(status.success(), "worker failed: {status}\n{output}");
    assert!(
        output.contains("prediction"),
        "the readout never scored:\n{output}"
    );
    assert!(output.contains("readout readout done"), "{output}");
    let lines = worker.output().to_vec();
    let layer1 = bus_totals(&lines, "layer1").expect("layer1 logs its bus totals");
    assert_eq!(
        layer1.received, 600,
        "layer1 receives every encoder step: {layer1:?}"
    );
    assert_eq!(
        layer1.shm, 0,
        "the encoder's spikes crossed the link, not shared memory: {layer1:?}"
    );
    assert!(
        !output.contains("[encoder"),
        "--machine worker must not start head's nodes"
    );

    // The head's encoder is done too; its router runs until told to stop.
    head.wait_for_line(|l| l.contains("encoder done"), Duration::from_secs(30))
        .unwrap();
    head.signal("INT").unwrap();
    let status = head
        .wait_exit(Duration::from_secs(15))
        .expect("head stops on SIGINT");
    assert!(
        status.success(),
        "head failed: {status}\n{}",
        head.output().join("\n")
    );
}
