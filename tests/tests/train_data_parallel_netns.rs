//! Data-parallel training across two hosts: the router and the coordinator (a
//! `train` node with `workers: 2`) on one network namespace, both `train_worker`
//! nodes on another, joined only by a veth link, each host with its own
//! `/dev/shm` (the topology of `launch/data_parallel.yaml`). Weights and
//! gradients cross the link over TCP — the workers receive nothing through
//! shared memory — and the trained weights equal those of one process on one
//! host up to floating-point summation order.
//!
//! Needs root and iproute2; skipped (with a note) without them unless
//! `EVOSPIKE_REQUIRE_NETNS` is set, like the cluster tests.

use std::process::Command;
use std::time::Duration;

use evospike_learning::model::Model;
use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{bus_totals, free_port, workspace_bin, Child};

mod common;

/// The parameters every process of the job shares.
const SHARED: [&str; 5] = [
    "data=builtin:digits",
    "holdout=0.2",
    "seed=3",
    "job=netns",
    r#"learner_params={"hidden": [32], "epochs": 2, "batch": 64, "steps": 10, "threads": 1}"#,
];

fn with_params(command: &mut Command, extra: &[String]) {
    for p in SHARED
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        command.args(["-p", p]);
    }
}

fn finish(child: &mut Child, what: &str, timeout: Duration) -> Vec<String> {
    let status = child
        .wait_exit(timeout)
        .unwrap_or_else(|| panic!("{what} ends within {timeout:?}: {:#?}", child.output()));
    let output = child.output().to_vec();
    assert!(status.success(), "{what} failed ({status}): {output:#?}");
    output
}

#[test]
fn workers_on_another_host_train_the_weights_of_one_process() {
    let hosts = match TwoHosts::create("evd") {
        Ok(hosts) => hosts,
        // Without root or iproute2 there are no test hosts to run on; say so.
        Err(reason) if std::env::var_os("EVOSPIKE_REQUIRE_NETNS").is_none() => {
            eprintln!("workers_on_another_host_train_the_weights_of_one_process skipped: {reason}");
            return;
        }
        Err(reason) => panic!("cannot create test hosts: {reason}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let (single, parallel) = (dir.path().join("single"), dir.path().join("parallel"));
    let evospike = workspace_bin("evospike");
    let router_endpoint = format!("tcp/{}:{}", hosts.addrs[0], free_port());

    let mut router = Child::spawn(hosts.command(0, &evospike).args([
        "run",
        "router",
        "--listen",
        &router_endpoint,
    ]))
    .unwrap();
    router
        .wait_for_line(|l| l.contains("ready"), Duration::from_secs(60))
        .expect("the router starts");
    let node = |host: usize, kind: &str, name: &str, extra: &[String]| {
        let mut command = hosts.command(host, &evospike);
        command
            .args(["run", kind, "--name", name, "--connect", &router_endpoint])
            .args(["--listen", &format!("tcp/{}:0", hosts.addrs[host])])
            .env("RUST_LOG", "info");
        with_params(&mut command, extra);
        Child::spawn(&mut command).unwrap()
    };
    let mut coordinator = node(
        0,
        "train",
        "coordinator",
        &[
            format!("out={}", parallel.display()),
            "workers=2".into(),
            "step_timeout_s=60".into(),
        ],
    );
    let mut workers: Vec<Child> = (0..2)
        .map(|i| {
            node(
                1,
                "train_worker",
                &format!("w{i}"),
                &[format!("index={i}"), "workers=2".into()],
            )
        })
        .collect();
    finish(
        &mut coordinator,
        "the coordinator",
        Duration::from_secs(180),
    );
    for (i, worker) in workers.iter_mut().enumerate() {
        let output = finish(worker, "a worker", Duration::from_secs(30));
        let totals = bus_totals(&output, &format!("w{i}")).expect("the worker logs its bus totals");
        assert!(totals.received > 0, "w{i}: {totals:?}");
        assert_eq!(
            totals.shm, 0,
            "w{i}: the weights crossed the link, not shared memory: {totals:?}"
        );
    }
    router.signal("INT").unwrap();
    router.wait_exit(Duration::from_secs(15));

    // The same job in one process, on one host, without a bus of its own.
    let mut command = Command::new(&evospike);
    command.args(["run", "train", "--local"]);
    with_params(&mut command, &[format!("out={}", single.display())]);
    finish(
        &mut Child::spawn(&mut command).unwrap(),
        "single-process training",
        Duration::from_secs(180),
    );

    let (a, b) = (
        Model::load(&single).unwrap(),
        Model::load(&parallel).unwrap(),
    );
    let metrics = &b.manifest.metrics;
    // 1,438 training digits in batches of 64, two epochs, every gradient from both.
    assert_eq!(metrics["dp_steps"], 2.0 * 23.0, "{metrics:?}");
    assert_eq!(metrics["dp_partial_steps"], 0.0, "{metrics:?}");
    let largest = common::largest_weight_difference(&a, &b);
    assert!(largest < 1e-5, "largest weight difference {largest}");
}
