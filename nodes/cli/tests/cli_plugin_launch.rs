//! `evospike plugin list|new` and `evospike launch` wiring.

mod common;

use common::{evospike, run};

#[test]
fn plugin_list_shows_builtins_in_a_table_and_json() {
    let out = run(evospike().args(["plugin", "list"]));
    assert!(out.success, "{out:?}");
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "TYPE", "VERSION", "PRIORITY", "STATUS", "SOURCE"]
    );

    let json = run(evospike().args(["plugin", "list", "--json"]));
    assert!(json.success, "{json:?}");
    let plugins: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let plugins = plugins.as_array().unwrap();
    assert_eq!(
        plugins.len() + 1,
        out.stdout.lines().count(),
        "one row per plugin"
    );
    assert!(
        plugins.iter().all(|p| p["source"] == "built-in"),
        "{plugins:?}"
    );
}

#[test]
fn plugin_list_names_a_missing_plugin_dir() {
    let out = run(evospike().args([
        "plugin",
        "list",
        "--plugin-dir",
        "/nonexistent/evospike-plugins",
    ]));
    assert!(!out.success);
    assert!(
        out.stderr.contains("/nonexistent/evospike-plugins"),
        "{out:?}"
    );
}

#[test]
fn plugin_new_writes_a_crate_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = run(evospike().args([
        "plugin", "new", "MyNeuron", "--type", "neuron", "--dir", dir_arg,
    ]));
    assert!(out.success, "{out:?}");
    let crate_dir = dir.path().join("my_neuron");
    assert!(crate_dir.join("Cargo.toml").is_file(), "{out:?}");
    assert!(crate_dir.join("my_neuron.plugin.toml").is_file(), "{out:?}");
    assert!(
        out.stdout.starts_with(&format!(
            "created neuron plugin MyNeuron in {}",
            crate_dir.display()
        )),
        "{out:?}"
    );

    let again = run(evospike().args([
        "plugin", "new", "MyNeuron", "--type", "neuron", "--dir", dir_arg,
    ]));
    assert!(!again.success);
    assert!(again.stderr.contains("already exists"), "{again:?}");

    let bad = run(evospike().args(["plugin", "new", "X", "--type", "toaster"]));
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("unknown plugin type `toaster`"),
        "{bad:?}"
    );
}

#[test]
fn launch_runs_a_file_and_maps_results_to_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.yaml");
    std::fs::write(
        &file,
        "args:\n  who: world\nnodes:\n  - name: greeter\n    exec: /bin/sh\n    args: ['-c', 'echo hello $(arg who)']\n",
    )
    .unwrap();
    let log_dir = dir.path().join("log");
    let out = run(evospike()
        .arg("launch")
        .arg(&file)
        .args(["--arg", "who=lab", "--quiet", "--log-dir"])
        .arg(&log_dir));
    assert!(out.success, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(log_dir.join("greeter.log")).unwrap(),
        "hello lab\n"
    );

    let failing = dir.path().join("fail.yaml");
    std::fs::write(
        &failing,
        "nodes:\n  - name: bad\n    exec: /bin/sh\n    args: ['-c', 'exit 3']\n",
    )
    .unwrap();
    let out = run(evospike()
        .arg("launch")
        .arg(&failing)
        .args(["--quiet", "--log-dir"])
        .arg(&log_dir));
    assert!(!out.success, "a failing node fails the launch: {out:?}");

    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&invalid, "nodes:\n  - name: x\n").unwrap();
    let out = run(evospike().arg("launch").arg(&invalid));
    assert!(!out.success);
    assert!(
        out.stderr.contains("invalid.yaml"),
        "the error names the file: {out:?}"
    );
}
