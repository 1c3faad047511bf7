//! The log consumer stores every node's log records: the last words of a node
//! that failed are there after it is gone and after the consumer restarts, and
//! `evospike log` filters and follows them.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};

const START: Duration = Duration::from_secs(60);

fn evospike(args: &[&str]) -> Command {
    let mut command = Command::new(workspace_bin("evospike"));
    command.args(args);
    command
}

fn log_output(router: &str, args: &[&str]) -> (i32, String) {
    let output = evospike(&["log", "--connect", router])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_failed_nodes_last_words_are_kept_and_can_be_followed() {
    let router = loopback_endpoint();
    let data = tempfile::tempdir().unwrap();
    let store = format!("data_dir={}", data.path().join("logs").display());
    let mut router_node =
        Child::spawn(&mut evospike(&["run", "router", "--listen", &router])).unwrap();
    router_node
        .wait_for_line(|l| l.contains("ready"), START)
        .expect("router");
    let start_consumer = || {
        let mut child = Child::spawn(&mut evospike(&[
            "run",
            "logs",
            "--connect",
            &router,
            "-p",
            &store,
        ]))
        .unwrap();
        child
            .wait_for_line(|l| l.contains("storing every node's logs"), START)
            .expect("the log consumer starts");
        child
    };
    let mut consumer = start_consumer();

    // A node that fails at start: it logs why, then exits 1.
    let blocker = data.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let bad_dir = format!("data_dir={}", blocker.join("x").display());
    let status = evospike(&[
        "run",
        "registry",
        "--name",
        "badreg",
        "--connect",
        &router,
        "-p",
        &bad_dir,
    ])
    .env("SERVICE_PORT", "0")
    .env("SERVICE_HOST", "127.0.0.1")
    .output()
    .unwrap()
    .status;
    assert_eq!(status.code(), Some(1));
    let mut last_words = String::new();
    wait_until(Duration::from_secs(10), || {
        last_words = log_output(&router, &["--node", "badreg", "--level", "error"]).1;
        last_words.contains("Not a directory")
    })
    .unwrap_or_else(|_| panic!("the failure is stored: {last_words:?}"));
    assert!(
        last_words.contains("ERROR badreg: node badreg failed"),
        "{last_words}"
    );
    assert_eq!(last_words.lines().count(), 1, "{last_words}");

    // The consumer restarts: what it stored is still there.
    consumer.signal("INT").unwrap();
    consumer
        .wait_exit(Duration::from_secs(15))
        .expect("the consumer stops");
    let _consumer = start_consumer();
    let (code, after) = log_output(&router, &["--node", "badreg", "--level", "error"]);
    assert_eq!(code, 0);
    assert_eq!(after, last_words);

    // Following prints new records (whether stored just before its first query
    // or after it, each is printed once).
    let mut follow = Child::spawn(&mut evospike(&[
        "log",
        "--connect",
        &router,
        "--follow",
        "--node",
        "late",
        "--level",
        "warn",
    ]))
    .unwrap();
    let _ = evospike(&[
        "run",
        "registry",
        "--name",
        "late",
        "--connect",
        &router,
        "-p",
        &bad_dir,
    ])
    .env("SERVICE_PORT", "0")
    .output()
    .unwrap();
    follow
        .wait_for_line(
            |l| l.contains("late: node late failed"),
            Duration::from_secs(10),
        )
        .expect("--follow prints the new record");

    // Bad filters are the user's mistake: exit 2.
    assert_eq!(log_output(&router, &["--level", "loud"]).0, 2);
    assert_eq!(log_output(&router, &["--since", "yesterday-ish"]).0, 2);
}
