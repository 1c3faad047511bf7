//! Bad input and an unreachable bus: a clear message and a non-zero exit, never a hang.

mod common;

use common::{evospike, run, start};

#[test]
fn unreachable_router_is_a_clear_error() {
    let endpoint = evospike_testkit::loopback_endpoint();
    // Both wait out the connect timeout, side by side.
    let echo = start(evospike().args(["topic", "echo", "x", "--connect", &endpoint]));
    let list = start(evospike().args(["node", "list", "--connect", &endpoint]));
    let expected =
        format!("error: cannot reach the bus at {endpoint} — is `evospike router` running?");
    for out in [echo.finish(), list.finish()] {
        assert!(!out.success);
        assert_eq!(
            out.stderr.lines().next(),
            Some(expected.as_str()),
            "{out:?}"
        );
        assert!(
            out.stderr.contains("  caused by: cannot open the bus"),
            "{out:?}"
        );
    }
}

#[test]
fn bad_indices_and_shapes_are_refused_before_connecting() {
    // No router runs: these must fail on the input, not on the connection.
    let out = run(evospike().args(["topic", "pub", "t", "--indices", "1,x"]));
    assert!(!out.success);
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
    assert!(!out.success);
    assert!(out.stderr.contains("bad --shape \"0\""), "{out:?}");
}

#[test]
fn bad_names_and_kinds_are_refused() {
    let out = run(evospike().args(["topic", "echo", "a//b", "--local"]));
    assert!(!out.success);
    assert!(
        out.stderr.contains("invalid topic name \"a//b\""),
        "{out:?}"
    );

    let out = run(evospike().args(["run", "toaster"]));
    assert!(!out.success);
    assert!(
        out.stderr.contains("toaster") && out.stderr.contains("encoder"),
        "{out:?}"
    );

    let out = run(evospike().args(["topic", "echo", "x", "--log", "n"]));
    assert!(!out.success, "a topic and --log together are refused");
}
