//! Malformed launch files: `evospike launch` names file, line and key, exits 2,
//! and starts nothing (each fixture has a valid first node that would leave a
//! marker). `kind:` nodes are checked against the node kinds, parameters included.

mod launcher;

use launcher::run_to_end;

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
    format!("{}:{line}: ", launcher::fixture(fixture).display())
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
    let a = launcher::fixture("bad_cycle_a.yaml").display().to_string();
    let b = launcher::fixture("bad_cycle_b.yaml").display().to_string();
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
fn unknown_node_kind() {
    rejected(
        "bad_kind.yaml",
        &[
            &format!(
                "{}nodes[0].kind: unknown node kind `toaster` (kinds: router, encoder, layer, readout, train, train_worker, registry",
                at("bad_kind.yaml", 4)
            ),
            // Every kind is named, the services too.
            ", gateway, logs",
        ],
    );
}

/// Runs `evospike launch FIXTURE EXTRA…` to its end: exit code, stdout, stderr.
fn finished(fixture: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = launcher::command(fixture, extra, dir.path())
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[test]
fn check_reports_every_bad_parameter_at_its_line() {
    let (code, stdout, stderr) = finished("bad_params.yaml", &["--check"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stdout.is_empty(),
        "--check printed a plan for an invalid file"
    );
    let fixtures = launcher::fixture("").display().to_string();
    insta::assert_snapshot!(stderr.replace(&fixtures, "FIXTURES/"));
}

#[test]
fn unknown_machine_and_arg() {
    let (code, _, stderr) = finished("cluster.yaml", &["--machine", "m9"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no node is labelled with machine `m9` (labels in this launch: m1, m2)"),
        "{stderr}"
    );

    let (code, _, stderr) = finished("cluster.yaml", &["--arg", "greting=x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown arg `greting` (declared args: greeting)"),
        "{stderr}"
    );

    // A malformed --arg is bad input too: the same exit code.
    let (code, _, stderr) = finished("cluster.yaml", &["--arg", "greeting"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr, "error: --arg \"greeting\" is not KEY=VALUE\n");
}

/// Certificates for `secure_cluster.yaml`'s machines, made once per test run.
fn certs() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_evospike"))
            .arg("certs")
            .arg("--out")
            .arg(dir.path())
            .args([
                "--machine",
                "head=127.0.0.1",
                "--machine",
                "worker=127.0.0.1",
            ])
            .output()
            .unwrap()
            .status;
        assert!(status.success());
        dir
    });
    dir.path().to_path_buf()
}

#[test]
fn shipped_launch_files_pass_check() {
    let launch_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../launch");
    let mut checked = 0;
    for entry in std::fs::read_dir(&launch_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // Every launch file checks with its defaults alone; --check does not need
        // model.yaml's model to exist (a train node may write it later). A
        // secured cluster's files need its certificates (`evospike certs`).
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_evospike"));
        command.arg("launch").arg(&path).arg("--check");
        if path.file_stem().is_some_and(|s| s == "secure_cluster") {
            command
                .arg("--arg")
                .arg(format!("certs={}", certs().display()));
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {stderr}",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "demo.yaml, cluster.yaml and model.yaml at least"
    );
}

#[test]
fn an_exec_node_declares_its_topics_for_the_acl() {
    let secret = format!("secret={}", certs().join("cluster.secret").display());
    let (code, stdout, stderr) = finished(
        "acl_exec.yaml",
        &["--check", "--print-acl", "--arg", &secret],
    );
    assert_eq!(code, Some(0), "{stderr}");
    for key in [
        "evospike/default/topic/tool/out",
        "evospike/default/topic/encoder/spikes",
        "evospike/default/svc/registry/**",
        "evospike/default/log/**",
    ] {
        assert!(stdout.contains(key), "{key} not in the ACL:\n{stdout}");
    }

    // Peers would talk past the router that enforces the ACL.
    let (code, _, stderr) = finished(
        "acl_exec.yaml",
        &["--check", "--arg", &secret, "--arg", "mode=peer"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bus.security.acl needs `mode: client` for node `tool`"),
        "{stderr}"
    );
}

#[test]
fn topics_are_for_exec_nodes_and_their_keys_are_checked() {
    let (code, _, stderr) = finished("bad_topics.yaml", &["--check"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&at("bad_topics.yaml", 5))
            && stderr.contains("`topics:` is for `exec:` nodes"),
        "{stderr}"
    );
    let (code, _, stderr) = finished("bad_topics_key.yaml", &["--check"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&at("bad_topics_key.yaml", 5))
            && stderr.contains("unknown key `publish` (expected one of: publishes"),
        "{stderr}"
    );
}
