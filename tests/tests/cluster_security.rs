//! A secured two-machine cluster (`launch/secure_cluster.yaml`: one router per
//! host, linked over mutual TLS; users derived from a cluster secret; the
//! routers enforce the ACL derived from the launch graph) on two test hosts with
//! their own `/dev/shm`. While its pipeline runs, sessions that must be refused
//! are refused — a certificate from another CA, no client certificate, a wrong
//! password — and a node's credentials cannot publish outside its ACL; the
//! pipeline carries on and ends cleanly.
//!
//! Bad security settings are input errors (exit 2) that name the setting.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_testkit::netns::TwoHosts;
use evospike_testkit::{bus_totals, workspace_bin, Child};

const STEPS: u64 = 3000;

fn secure_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/secure_cluster.yaml")
}

fn evospike() -> PathBuf {
    workspace_bin("evospike")
}

/// `evospike certs` for the two hosts into `dir`.
fn make_certs(dir: &Path, addrs: &[String; 2]) {
    let status = Command::new(evospike())
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--machine", &format!("head={}", addrs[0])])
        .args(["--machine", &format!("worker={}", addrs[1])])
        .status()
        .unwrap();
    assert!(status.success(), "evospike certs failed");
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

#[test]
fn secured_cluster_refuses_strangers_and_keeps_running() {
    let Some(hosts) = hosts_or_skip("evq") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let other = dir.path().join("other");
    make_certs(&certs, &hosts.addrs);
    make_certs(&other, &hosts.addrs);

    let launch = |host: usize, machine: &str| {
        let mut command = hosts.command(host, &evospike());
        command
            .arg("launch")
            .arg(secure_file())
            .args(["--machine", machine])
            .arg("--arg")
            .arg(format!("certs={}", certs.display()))
            .args(["--arg", &format!("head_ip={}", hosts.addrs[0])])
            .args(["--arg", &format!("worker_ip={}", hosts.addrs[1])])
            .args(["--arg", &format!("steps={STEPS}"), "--arg", "rate=250"])
            .arg("--log-dir")
            .arg(dir.path().join(machine))
            .env("RUST_LOG", "info");
        Child::spawn(&mut command).unwrap()
    };
    let mut head = launch(0, "head");
    head.wait_for_line(
        |l| l.contains("router-head is ready"),
        Duration::from_secs(30),
    )
    .unwrap();
    let mut worker = launch(1, "worker");
    worker
        .wait_for_line(|l| l.contains("(layer) ready"), Duration::from_secs(30))
        .unwrap();

    // Tools on the worker host, against the worker's router.
    let router = format!("tls/{}:7448", hosts.addrs[1]);
    let tool = |args: &[&str], tls: &Path, client_cert: bool| {
        let mut command = hosts.command(1, &evospike());
        command
            .args(args)
            .args(["--connect", &router])
            .arg("--tls-ca")
            .arg(tls.join("ca.pem"));
        if client_cert {
            command
                .arg("--tls-cert")
                .arg(tls.join("worker.pem"))
                .arg("--tls-key")
                .arg(tls.join("worker.key"))
                .arg("--mtls");
        }
        command
    };
    let secret = certs.join("cluster.secret");
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let echo = ["topic", "echo", "layer1/spikes", "--count", "1"];
    let operator = |mut c: Command| {
        c.args(["--user", "operator", "--secret-file"]).arg(&secret);
        c
    };

    // The three strangers try at once (each waits out the connect timeout).
    let mut strangers = vec![
        (
            "a certificate from another CA",
            operator(tool(&echo, &other, true)),
        ),
        (
            "no client certificate",
            operator(tool(&echo, &certs, false)),
        ),
        ("a wrong password", {
            let mut c = tool(&echo, &certs, true);
            c.args(["--user", "operator", "--password-file"])
                .arg(&wrong);
            c
        }),
    ]
    .into_iter()
    .map(|(who, mut command)| (who, Child::spawn(&mut command).unwrap()))
    .collect::<Vec<_>>();
    for (who, child) in &mut strangers {
        let status = child
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the session with {who} neither connected nor gave up"));
        let output = child.output().join("\n");
        assert_eq!(
            status.code(),
            Some(3),
            "the session with {who} must be refused (exit 3):\n{output}"
        );
        assert!(output.contains("cannot reach the bus"), "{who}: {output}");
    }

    // The legitimate pipeline still flows: the operator sees layer1's spikes.
    let mut watcher = Child::spawn(&mut operator(tool(&echo, &certs, true))).unwrap();
    watcher
        .wait_for_line(|l| l.contains("source=layer1"), Duration::from_secs(15))
        .expect("the operator sees the pipeline after the refusals");

    // layer1's credentials are valid but do not allow publishing the encoder's
    // topic: the router drops the intruder's tensors (steps ≥ 1000000).
    let secret_arg = secret.display().to_string();
    let intruder_args = [
        "topic",
        "pub",
        "encoder/spikes",
        "--indices",
        "1,2,3",
        "--shape",
        "64",
        "--step",
        "1000000",
        "--count",
        "20",
        "--rate",
        "200",
        "--wait",
        "--user",
        "layer1",
        "--secret-file",
        &secret_arg,
    ];
    let mut intruder = Child::spawn(&mut tool(&intruder_args, &certs, true)).unwrap();
    let status = intruder.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(
        status.success(),
        "the intruder is authenticated and publishes:\n{}",
        intruder.output().join("\n")
    );
    assert!(
        worker.wait_exit(Duration::ZERO).is_none(),
        "the pipeline ended before the checks: make it longer"
    );

    let status = worker
        .wait_exit(Duration::from_secs(60))
        .expect("the worker's part ends after its steps");
    let lines = worker.output().to_vec();
    let output = lines.join("\n");
    assert!(status.success(), "worker failed: {status}\n{output}");
    assert!(output.contains("readout readout done"), "{output}");
    let layer1 = bus_totals(&lines, "layer1").expect("layer1 logs its bus totals");
    assert!(
        layer1.received > 0 && layer1.received <= STEPS,
        "layer1 received the encoder's steps and none of the intruder's: {layer1:?}"
    );
    assert_eq!(layer1.shm, 0, "spikes crossed the link: {layer1:?}");

    head.wait_for_line(|l| l.contains("encoder done"), Duration::from_secs(30))
        .unwrap();
    head.signal("INT").unwrap();
    let status = head.wait_exit(Duration::from_secs(15)).expect("head stops");
    assert!(status.success(), "{}", head.output().join("\n"));
}

/// Runs `evospike ARGS` and returns its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(evospike()).args(args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_security_settings_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let endpoint = evospike_testkit::loopback_endpoint().replace("tcp/", "tls/");

    // A missing CA file.
    let (code, err) = run(&[
        "router",
        "--listen",
        &endpoint,
        "--tls-ca",
        &path("none.pem"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.ca") && err.contains("none.pem"), "{err}");

    // A malformed private key.
    let certs = dir.path().join("certs");
    make_certs(&certs, &["127.0.0.1".into(), "127.0.0.1".into()]);
    std::fs::write(
        path("bad.key"),
        "-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let ca = certs.join("ca.pem").display().to_string();
    let cert = certs.join("head.pem").display().to_string();
    let (code, err) = run(&[
        "router",
        "--listen",
        &endpoint,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &path("bad.key"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.key") && err.contains("malformed"),
        "{err}"
    );

    // A plain tcp endpoint beside TLS.
    let (code, err) = run(&["router", "--listen", "tcp/127.0.0.1:0", "--tls-ca", &ca]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not tls/"), "{err}");

    // An unknown key in the launch file's security section.
    let file = dir.path().join("typo.yaml");
    std::fs::write(
        &file,
        "bus:\n  security:\n    certs: certs\n    mtsl: true\nnodes:\n  - name: r\n    kind: router\n    machine: head\n",
    )
    .unwrap();
    let (code, err) = run(&["launch", file.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mtsl"), "{err}");

    // A machine whose certificate is not there.
    let file = dir.path().join("nocert.yaml");
    std::fs::write(
        &file,
        "bus:\n  security:\n    certs: certs\nnodes:\n  - name: r\n    kind: router\n    machine: gpu7\n",
    )
    .unwrap();
    let (code, err) = run(&["launch", file.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("gpu7.pem"), "{err}");
}
