//! Runs `evospike launch` on fixture launch files with `/bin/sh`
//! nodes and checks what a user would: output, restarts, shutdown, exit codes.

mod launcher;

use std::time::{Duration, Instant};

use launcher::{assert_all_gone, run_to_end, wait_until, Launch, TIMEOUT};

#[test]
fn output_lines_are_prefixed_whole_and_logged_per_node() {
    let (launch, status) = run_to_end("output.yaml", &[]);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", launch.stderr());
    let stdout = launch.stdout();
    let mut counts = [0usize; 2];
    for line in stdout.lines() {
        let (node, rest) = if let Some(rest) = line.strip_prefix("[alpha] ") {
            (0, rest)
        } else if let Some(rest) = line.strip_prefix("[beta] ") {
            (1, rest)
        } else if line.starts_with("[alpha:err] ") || line.starts_with("[beta:err] ") {
            continue;
        } else {
            panic!("line without a node prefix (interleaved?): {line:?}");
        };
        let name = ["alpha", "beta"][node];
        assert!(
            rest.starts_with(name) && rest.ends_with("visible"),
            "mixed-up line: {line:?}"
        );
        counts[node] += 1;
    }
    assert_eq!(counts, [300, 300]);
    assert!(stdout.contains("[beta:err] beta says bye on stderr"));
    let log = launch.log("alpha");
    assert_eq!(log.lines().count(), 301);
    assert!(log.starts_with("alpha line 0 of"));
    assert!(log.ends_with("alpha says bye on stderr\n"));
    assert!(launch.log("launch").contains("started beta"));
}

#[test]
fn killed_node_with_respawn_on_failure_comes_back() {
    let mut launch = Launch::start("respawn.yaml", &[]);
    let first = launch.wait_pids("worker", 1)[0];
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    let pids = launch.wait_pids("worker", 2);
    assert_ne!(pids[0], pids[1]);
    assert!(launcher::alive(pids[1]));
    assert!(wait_until(TIMEOUT, || launch
        .log("worker")
        .matches("up ")
        .count()
        == 2));

    launch.signal(libc::SIGINT);
    let status = launch.wait_exit(TIMEOUT);
    let stderr = launch.stderr();
    assert!(
        stderr.contains("worker (pid") && stderr.contains("killed by SIGKILL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("restarting worker in 50ms (restart 1/3)"),
        "{stderr}"
    );
    // Respawned successfully, then stopped by the shutdown: a clean run.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("worker               stopped (1 restarts)"),
        "{stderr}"
    );
    assert_all_gone(&pids);
}

#[test]
fn ctrl_c_escalates_to_sigterm_and_sigkill_within_the_timeouts() {
    let mut launch = Launch::start(
        "escalate.yaml",
        &["--sigint-timeout", "0.4", "--sigterm-timeout", "0.4"],
    );
    let polite = launch.wait_pids("polite", 1);
    let stubborn = launch.wait_pids("stubborn", 1);
    assert!(wait_until(TIMEOUT, || launch
        .log("stubborn")
        .contains("ignoring")));
    let asked = Instant::now();
    launch.signal(libc::SIGINT);
    let status = launch.wait_exit(TIMEOUT);
    let took = asked.elapsed();
    let stderr = launch.stderr();
    // SIGINT stage (0.4 s) + SIGTERM stage (0.4 s), then SIGKILL ends it at once.
    assert!(
        took >= Duration::from_millis(800),
        "ended after {took:?}:\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(5),
        "ended after {took:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("sending SIGINT to stubborn, polite"),
        "{stderr}"
    );
    assert!(stderr.contains("sending SIGTERM to stubborn"), "{stderr}");
    assert!(stderr.contains("sending SIGKILL to stubborn"), "{stderr}");
    assert!(launch.log("polite").contains("got INT"));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_all_gone(&[polite, stubborn].concat());
}

#[test]
fn exit_code_names_nodes_that_failed_after_their_restarts() {
    let (launch, status) = run_to_end("failing.yaml", &[]);
    let stderr = launch.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "flaky                FAILED: exited with status 3; gave up after 2 restarts"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("failed nodes: flaky;"), "{stderr}");
    assert!(
        stderr.contains("ok                   exited (0)"),
        "{stderr}"
    );
    assert_eq!(launch.log("flaky").matches("attempt").count(), 3);
    // Exponential back-off from respawn_delay (10 ms).
    assert!(
        stderr.contains("restarting flaky in 10ms (restart 1/2)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("restarting flaky in 20ms (restart 2/2)"),
        "{stderr}"
    );
}

#[test]
fn respawn_always_restarts_clean_exits_too() {
    let (launch, status) = run_to_end("always.yaml", &[]);
    let stderr = launch.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(launch.log("ticker"), "tick\ntick\ntick\n");
    assert!(
        stderr.contains("ticker               exited (0) (2 restarts)"),
        "{stderr}"
    );
}

#[test]
fn dependents_of_a_node_that_never_gets_ready_are_skipped() {
    let (launch, status) = run_to_end("never_ready.yaml", &[]);
    let stderr = launch.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("client               SKIPPED: dependency `slowpoke` never became ready"),
        "{stderr}"
    );
    assert!(!launch.path("started").exists());
}

#[test]
fn required_node_ending_shuts_the_launch_down() {
    let (launch, status) = run_to_end("required.yaml", &[]);
    let stderr = launch.stderr();
    assert!(
        stderr.contains("shutting down: required node main ended"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(launch.log("background").contains("got INT"));
    assert_all_gone(&launch.pids("background"));
}

#[test]
fn depends_on_waits_for_the_ready_line() {
    let mut launch = Launch::start("order.yaml", &[]);
    assert!(wait_until(TIMEOUT, || launch.read("order").lines().count() == 3));
    assert_eq!(launch.read("order"), "first\nsecond\nthird\n");
    launch.signal(libc::SIGTERM);
    let status = launch.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", launch.stderr());
    assert!(launch.stderr().contains("first is ready"));
}

#[test]
fn machine_option_starts_only_that_machines_nodes() {
    let (launch, status) = run_to_end("cluster.yaml", &["--machine", "m2"]);
    assert_eq!(status.code(), Some(0), "{}", launch.stderr());
    let fixtures = launcher::fixture("").canonicalize().unwrap();
    assert_eq!(
        launch.stdout(),
        format!("[worker-2] worker 2 in {}\n", fixtures.display())
    );
    assert!(!launch.path("log/router.log").exists());

    let (launch, status) = run_to_end("cluster.yaml", &["--machine", "m1", "--arg", "greeting=hi"]);
    assert_eq!(status.code(), Some(0), "{}", launch.stderr());
    assert!(launch.stdout().contains("[router] hi from router"));
    assert!(launch.stdout().contains("[worker-1] worker 1"));
    assert!(!launch.stdout().contains("worker-2"));
}

#[test]
fn kind_nodes_run_as_evospike_run_kind() {
    // EVOSPIKE_EXE stands in for the evospike executable that runs `kind:` nodes.
    let exe = launcher::fixture("fake_evospike.sh");
    let dir = tempfile::tempdir().unwrap();
    let output = launcher::command("kind.yaml", &[], dir.path())
        .env("EVOSPIKE_EXE", &exe)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log/enc.log")).unwrap(),
        "argv: run encoder\nnode=enc ns=lab params={\"steps_per_sample\":50}\n"
    );
}

#[test]
fn nodes_die_with_a_killed_launcher() {
    let launch = Launch::start("escalate.yaml", &[]);
    let pids = [
        launch.wait_pids("polite", 1),
        launch.wait_pids("stubborn", 1),
    ]
    .concat();
    launch.signal(libc::SIGKILL);
    // PR_SET_PDEATHSIG kills each node; its `sleep` child goes with it
    // only once the group is cleaned, so check the node processes themselves.
    assert!(
        wait_until(TIMEOUT, || pids.iter().all(|&p| !launcher::alive(p))),
        "nodes outlived their launcher: {pids:?}"
    );
}
