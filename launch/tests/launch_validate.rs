//! Malformed launch files: the launcher names file, line and key, exits 2, and
//! starts nothing (each fixture has a valid first node that would leave a marker).

mod common;

use common::run_to_end;

fn rejected(fixture: &str, expected: &[&str]) -> String {
    let (launch, status) = run_to_end(fixture, &[]);
    let stderr = launch.stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    assert!(
        !launch.path("started").exists(),
        "a node started although the file is invalid"
    );
    stderr
}

fn at(fixture: &str, line: u32) -> String {
    format!("{}:{line}: ", common::fixture(fixture).display())
}

#[test]
fn unknown_key() {
    rejected(
        "bad_unknown_key.yaml",
        &[
            &format!(
                "{}nodes[1].respwan: unknown key `respwan` (expected one of: name, kind, exec,",
                at("bad_unknown_key.yaml", 8)
            ),
            " respawn, ",
        ],
    );
}

#[test]
fn bad_substitution() {
    rejected(
        "bad_substitution.yaml",
        &[&format!(
            "{}nodes[1].env.RATE: bad substitution: undefined arg `rate` in `$(arg rate)`",
            at("bad_substitution.yaml", 8)
        )],
    );
}

#[test]
fn include_cycle() {
    let a = common::fixture("bad_cycle_a.yaml").display().to_string();
    let b = common::fixture("bad_cycle_b.yaml").display().to_string();
    // Included files are shown as "<folder of the includer>/<name as written>".
    rejected(
        "bad_cycle_a.yaml",
        &[&format!(
            "{}include[0].file: include cycle: {a} -> {b} -> {a}",
            at("bad_cycle_b.yaml", 2)
        )],
    );
}

#[test]
fn missing_executable() {
    rejected(
        "bad_missing_exe.yaml",
        &[&format!(
            "{}nodes[1].exec: executable `./no-such-node.sh` not found",
            at("bad_missing_exe.yaml", 6)
        )],
    );
}

#[test]
fn kind_node_without_evospike_executable() {
    rejected(
        "kind.yaml",
        &[
            &format!("{}nodes[0].kind: node kind `encoder`", at("kind.yaml", 4)),
            "--evospike-exe",
        ],
    );
}

#[test]
fn unknown_machine_and_arg() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::command("cluster.yaml", &["--machine", "m9"], dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no node is labelled with machine `m9` (labels in this launch: m1, m2)"),
        "{stderr}"
    );

    let output = common::command("cluster.yaml", &["--arg", "greting=x"], dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown arg `greting` (declared args: greeting)"),
        "{stderr}"
    );
}
