//! Bad input and an unreachable bus: a clear message, the documented exit code
//! (2: the input is wrong, 3: the bus is unreachable), never a hang. The user-facing
//! messages are snapshots (`tests/snapshots/`): a changed wording is a visible diff.

mod common;

use common::{evospike, run, start};

/// Stderr with the test's random endpoint replaced, for snapshots.
fn redacted(stderr: &str, endpoint: &str) -> String {
    stderr.replace(endpoint, "tcp/127.0.0.1:PORT")
}

#[test]
fn unreachable_router_is_a_clear_error() {
    let endpoint = evospike_testkit::loopback_endpoint();
    // All three wait out the connect timeout, side by side.
    let echo = start(evospike().args(["topic", "echo", "x", "--connect", &endpoint]));
    let list = start(evospike().args(["node", "list", "--connect", &endpoint]));
    let node = start(evospike().args(["run", "encoder", "--connect", &endpoint]));
    for out in [echo.finish(), list.finish()] {
        assert_eq!(out.code, Some(3), "{out:?}");
        insta::assert_snapshot!("tool_unreachable", redacted(&out.stderr, &endpoint));
    }
    let out = node.finish();
    assert_eq!(out.code, Some(3), "{out:?}");
    // The node's own log lines come first; its error is the last line, and no
    // line shows a dependency's source file.
    let last = out.stderr.lines().last().unwrap_or_default();
    insta::assert_snapshot!("node_unreachable", redacted(last, &endpoint));
    assert!(!out.stderr.contains(".rs:"), "{}", out.stderr);
}

#[test]
fn bad_node_parameters_exit_2_naming_node_key_and_value() {
    // No router runs: parameters are checked before the bus is touched.
    let out = run(evospike().args(["run", "encoder", "-p", "steps_per_sampel=50"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    insta::assert_snapshot!("run_unknown_parameter", out.stderr);

    let out = run(evospike().args([
        "run",
        "layer",
        "--name",
        "l1",
        "-p",
        "size=10",
        "-p",
        r#"inputs=[{"topic":"x","p":2.0}]"#,
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
    insta::assert_snapshot!("run_out_of_range", out.stderr);
}

#[test]
fn list_params_prints_the_table_of_the_kind() {
    let out = run(evospike().args(["run", "readout", "--list-params"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("readout: "), "{out:?}");
    for key in ["input", "labels", "classes", "steps_per_sample", "max_lag"] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(key)),
            "{key} missing:\n{}",
            out.stdout
        );
    }
}

#[test]
fn bad_indices_and_shapes_are_refused_before_connecting() {
    // No router runs: these must fail on the input, not on the connection.
    let out = run(evospike().args(["topic", "pub", "t", "--indices", "1,x"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "error: bad --indices \"1,x\": \"x\" is not a neuron index (0, 1, 2, …)"
    );

    let out = run(evospike().args(["topic", "pub", "t", "--indices", "1,200", "--shape", "100"]));
    assert!(!out.success);
    assert!(
        out.stderr
            .starts_with("error: the --indices do not fit --shape [100]"),
        "{out:?}"
    );

    let out = run(evospike().args(["topic", "pub", "t", "--shape", "0"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("bad --shape \"0\""), "{out:?}");
}

#[test]
fn bad_names_and_kinds_are_refused() {
    let out = run(evospike().args(["topic", "echo", "a//b", "--local"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("invalid topic name \"a//b\""),
        "{out:?}"
    );

    let out = run(evospike().args(["run", "toaster"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("toaster") && out.stderr.contains("encoder"),
        "{out:?}"
    );

    let out = run(evospike().args(["topic", "echo", "x", "--log", "n"]));
    assert_eq!(
        out.code,
        Some(2),
        "a topic and --log together are refused: {out:?}"
    );
}
