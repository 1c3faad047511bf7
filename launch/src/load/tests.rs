//! Unit tests of launch-file loading: every error names file, line and key.

use super::*;
use crate::{NodeSpec, RespawnMode};
use serde_json::json;
use serde_json::Value;
use std::time::Duration;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(files: &[(&str, &str)]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let script = dir.path().join("node.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Loads `name`; the first error when it fails.
    fn load(&self, name: &str, options: &LoadOptions) -> Result<LaunchPlan, LoadError> {
        self.load_all(name, options)
            .map_err(|errors| errors.0.into_iter().next().expect("at least one error"))
    }

    fn load_all(&self, name: &str, options: &LoadOptions) -> Result<LaunchPlan, LoadErrors> {
        let env = |var: &str| match var {
            "PATH" => Some("/usr/bin:/bin".to_owned()),
            "HOST_ID" => Some("h7".to_owned()),
            _ => None,
        };
        load_with_env(&self.path(name), options, &env)
    }
}

fn plain() -> LoadOptions {
    LoadOptions::default()
}

fn node<'p>(plan: &'p LaunchPlan, name: &str) -> &'p NodeSpec {
    plan.nodes.iter().find(|n| n.name == name).unwrap()
}

#[test]
fn full_node_becomes_env_and_command() {
    let files = Files::new(&[
        ("p.yaml", "gain: 1\nnested: {a: 1, b: 2}\n"),
        (
            "main.yaml",
            "name: demo\n\
             args:\n  rate: 100\n  host: {default: '$(env HOST_ID)', description: who}\n\
             bus: {mode: peer, connect: [tcp/127.0.0.1:7447]}\n\
             nodes:\n\
             \x20 - name: enc\n\
             \x20   exec: node.sh\n\
             \x20   args: [--rate, $(arg rate)]\n\
             \x20   namespace: lab\n\
             \x20   params_file: p.yaml\n\
             \x20   params: {rate: $(arg rate), label: '42', nested: {b: 3}, where: $(arg host)}\n\
             \x20   env: {RUST_LOG: debug}\n\
             \x20   remap: {spikes: enc_out}\n\
             \x20   plugins: [{name: poisson, seed: 7}, lif]\n\
             \x20   plugin_dirs: [plugins]\n\
             \x20   bus: {listen: [tcp/127.0.0.1:0, udp/127.0.0.1:0]}\n\
             \x20   respawn: on-failure\n\
             \x20   max_restarts: 4\n\
             \x20   respawn_delay: 0.25\n",
        ),
    ]);
    let plan = files.load("main.yaml", &plain()).unwrap();
    assert_eq!(plan.name, "demo");
    let enc = node(&plan, "enc");
    assert_eq!(enc.program, files.path("node.sh").canonicalize().unwrap());
    assert_eq!(enc.args, ["--rate", "100"]);
    assert_eq!(enc.namespace, "lab");
    let env = |k: &str| enc.env.get(k).cloned().unwrap_or_default();
    assert_eq!(env("EVOSPIKE_NODE_NAME"), "enc");
    assert_eq!(env("EVOSPIKE_NAMESPACE"), "lab");
    let params: Value = serde_json::from_str(&env("EVOSPIKE_PARAMS")).unwrap();
    assert_eq!(
        params,
        json!({"gain": 1, "rate": 100, "label": "42", "nested": {"a": 1, "b": 3}, "where": "h7"})
    );
    assert_eq!(env("EVOSPIKE_REMAP"), r#"{"spikes":"enc_out"}"#);
    let plugins: Value = serde_json::from_str(&env("EVOSPIKE_PLUGINS")).unwrap();
    assert_eq!(plugins, json!([{"name": "poisson", "seed": 7}, "lif"]));
    let dir = files.dir.path().canonicalize().unwrap();
    assert_eq!(
        env("EVOSPIKE_PLUGIN_DIRS"),
        dir.join("plugins").display().to_string()
    );
    assert_eq!(env("EVOSPIKE_BUS_MODE"), "peer");
    assert_eq!(env("EVOSPIKE_BUS_CONNECT"), "tcp/127.0.0.1:7447");
    assert_eq!(
        env("EVOSPIKE_BUS_LISTEN"),
        "tcp/127.0.0.1:0,udp/127.0.0.1:0"
    );
    assert_eq!(env("RUST_LOG"), "debug");
    assert_eq!(enc.respawn.mode, RespawnMode::OnFailure);
    assert_eq!(enc.respawn.max_restarts, Some(4));
    assert_eq!(enc.respawn.delay, Duration::from_millis(250));
}

#[test]
fn kind_nodes_run_through_the_evospike_executable() {
    let files = Files::new(&[(
        "k.yaml",
        "nodes:\n  - name: l1\n    kind: layer\n    args: [--verbose]\n",
    )]);
    let err = files.load("k.yaml", &plain()).unwrap_err();
    assert_eq!(err.line, Some(3));
    assert_eq!(err.key.as_deref(), Some("nodes[0].kind"));
    assert!(
        err.to_string().contains("LoadOptions::evospike_exe"),
        "{err}"
    );
    let missing = LoadOptions {
        evospike_exe: Some(PathBuf::from("/no/such/evospike")),
        ..plain()
    };
    let err = files.load("k.yaml", &missing).unwrap_err();
    assert!(
        err.to_string()
            .contains("executable `/no/such/evospike` not found"),
        "{err}"
    );
    let exe = files.path("node.sh");
    let options = LoadOptions {
        evospike_exe: Some(exe.clone()),
        ..plain()
    };
    let plan = files.load("k.yaml", &options).unwrap();
    assert_eq!(plan.nodes[0].program, exe);
    assert_eq!(plan.nodes[0].args, ["run", "layer", "--verbose"]);
    assert_eq!(plan.nodes[0].env["EVOSPIKE_NAMESPACE"], "default");
}

#[test]
fn unknown_key_names_file_line_key_and_expected_keys() {
    let files = Files::new(&[(
        "bad.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n  - name: b\n    exec: node.sh\n    respwan: always\n",
    )]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert_eq!(err.line, Some(6));
    assert_eq!(err.key.as_deref(), Some("nodes[1].respwan"));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:6: nodes[1].respwan: ",
            files.path("bad.yaml").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("unknown key `respwan` (expected one of: name, kind, exec,"),
        "{text}"
    );
}

#[test]
fn bad_values_are_schema_errors_with_lines() {
    let files = Files::new(&[(
        "bad.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n    respawn: sometimes\n",
    )]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[0].respawn"))
    );
    let files = Files::new(&[(
        "bad.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n    respawn_delay: -1\n",
    )]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[0].respawn_delay"))
    );
    let files = Files::new(&[("bad.yaml", "nodes:\n  - name: a/b\n    exec: node.sh\n")]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(2), Some("nodes[0].name"))
    );
    let files = Files::new(&[("bad.yaml", "nodes:\n  - name: a\n")]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert!(err.to_string().contains("exactly one of `kind:`"), "{err}");
    let files = Files::new(&[(
        "bad.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n    ready_when: '(('\n",
    )]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[0].ready_when"))
    );
}

#[test]
fn yaml_syntax_errors_have_lines() {
    let files = Files::new(&[("bad.yaml", "nodes:\n  - name: a\n    exec: [unclosed\n")]);
    let err = files.load("bad.yaml", &plain()).unwrap_err();
    assert!(matches!(err.kind, LoadErrorKind::Syntax(_)), "{err}");
    assert!(err.line.is_some(), "{err}");
    let files = Files::new(&[("dup.yaml", "nodes: []\nnodes: []\n")]);
    let err = files.load("dup.yaml", &plain()).unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.to_string().contains("duplicate key `nodes`"), "{err}");
}

#[test]
fn bad_substitutions_name_line_and_key() {
    let files = Files::new(&[(
        "s.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n    env: {X: $(argh y)}\n",
    )]);
    let err = files.load("s.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[0].env.X"))
    );
    assert!(
        err.to_string().contains("unknown substitution `$(argh)`"),
        "{err}"
    );

    let files = Files::new(&[(
        "s.yaml",
        "nodes:\n  - name: a\n    exec: node.sh\n    args: [$(arg nope)]\n",
    )]);
    let err = files.load("s.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[0].args[0]"))
    );
    assert!(err.to_string().contains("undefined arg `nope`"), "{err}");

    let files = Files::new(&[("s.yaml", "args:\n  a: $(env NOT_SET_ANYWHERE)\nnodes: []\n")]);
    let err = files.load("s.yaml", &plain()).unwrap_err();
    assert_eq!((err.line, err.key.as_deref()), (Some(2), Some("args.a")));
}

#[test]
fn args_are_checked_against_declarations() {
    let files = Files::new(&[(
        "a.yaml",
        "args:\n  need: {description: x}\n  b: 1\nnodes: []\n",
    )]);
    let err = files.load("a.yaml", &plain()).unwrap_err();
    assert!(
        matches!(&err.kind, LoadErrorKind::MissingArg { name } if name == "need"),
        "{err}"
    );
    assert_eq!(err.line, Some(2));
    let mut options = plain();
    options.args.insert("need".into(), "x".into());
    options.args.insert("typo".into(), "y".into());
    let err = files.load("a.yaml", &options).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown arg `typo` (declared args: need, b)"),
        "{err}"
    );
    options.args.remove("typo");
    files.load("a.yaml", &options).unwrap();
}

#[test]
fn includes_pass_args_namespace_and_machine() {
    let files = Files::new(&[
        (
            "worker.yaml",
            "args:\n  id: {}\nnodes:\n  - name: layer-$(arg id)\n    exec: $(dirname)/node.sh\n",
        ),
        (
            "cluster.yaml",
            "namespace: lab\ninclude:\n\
             \x20 - {file: worker.yaml, args: {id: 1}, machine: m1}\n\
             \x20 - {file: worker.yaml, args: {id: 2}, machine: m2, namespace: other}\n\
             nodes:\n  - name: router\n    exec: node.sh\n    machine: m1\n",
        ),
    ]);
    let plan = files.load("cluster.yaml", &plain()).unwrap();
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["layer-1", "layer-2", "router"]);
    assert_eq!(node(&plan, "layer-1").namespace, "lab");
    assert_eq!(node(&plan, "layer-2").namespace, "other");
    assert_eq!(node(&plan, "layer-2").machine.as_deref(), Some("m2"));

    let only_m1 = LoadOptions {
        machine: Some("m1".into()),
        ..plain()
    };
    let plan = files.load("cluster.yaml", &only_m1).unwrap();
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["layer-1", "router"]);

    let unknown = LoadOptions {
        machine: Some("m9".into()),
        ..plain()
    };
    let err = files.load("cluster.yaml", &unknown).unwrap_err();
    assert!(
        err.to_string().contains("labels in this launch: m1, m2"),
        "{err}"
    );
}

#[test]
fn include_errors_point_at_the_include() {
    let files = Files::new(&[
        ("w.yaml", "args:\n  id: {}\nnodes: []\n"),
        ("a.yaml", "nodes: []\ninclude:\n  - file: w.yaml\n"),
        ("b.yaml", "include:\n  - file: nope.yaml\n"),
    ]);
    let err = files.load("a.yaml", &plain()).unwrap_err();
    assert_eq!(err.file, files.path("a.yaml"));
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(3), Some("include[0].args"))
    );
    let err = files.load("b.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(2), Some("include[0].file"))
    );
}

#[test]
fn include_cycle_names_the_chain() {
    let files = Files::new(&[
        ("a.yaml", "include:\n  - file: b.yaml\n"),
        ("b.yaml", "include:\n  - file: ./a.yaml\n"),
    ]);
    let err = files.load("a.yaml", &plain()).unwrap_err();
    let LoadErrorKind::IncludeCycle { chain } = &err.kind else {
        panic!("expected an include cycle, got {err}");
    };
    let a = files.path("a.yaml").display().to_string();
    let b = files.path("b.yaml").display().to_string();
    let again = files.path("./a.yaml").display().to_string();
    assert_eq!(chain, &format!("{a} -> {b} -> {again}"));
    assert_eq!(err.file, files.path("b.yaml"));
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(2), Some("include[0].file"))
    );
}

#[test]
fn dependency_errors() {
    let files = Files::new(&[(
        "d.yaml",
        "nodes:\n  - {name: a, exec: node.sh, depends_on: [b]}\n  - {name: b, exec: node.sh, depends_on: [c]}\n  - {name: c, exec: node.sh, depends_on: [a]}\n",
    )]);
    let err = files.load("d.yaml", &plain()).unwrap_err();
    assert!(
        err.to_string()
            .contains("depends_on cycle: a -> b -> c -> a"),
        "{err}"
    );
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(4), Some("nodes[2].depends_on[0]"))
    );

    let files = Files::new(&[(
        "d.yaml",
        "nodes:\n  - {name: a, exec: node.sh, depends_on: [zz]}\n",
    )]);
    let err = files.load("d.yaml", &plain()).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown node `zz` in depends_on (nodes: a)"),
        "{err}"
    );

    let files = Files::new(&[(
        "d.yaml",
        "nodes:\n  - {name: a, exec: node.sh}\n  - {name: a, exec: node.sh}\n",
    )]);
    let err = files.load("d.yaml", &plain()).unwrap_err();
    assert!(
        matches!(err.kind, LoadErrorKind::DuplicateNode { .. }),
        "{err}"
    );
    assert_eq!(err.line, Some(3));
}

#[test]
fn missing_executable_is_reported_with_where_it_was_looked_for() {
    let files = Files::new(&[(
        "m.yaml",
        "nodes:\n  - name: a\n    exec: ./no-such-node.sh\n",
    )]);
    let err = files.load("m.yaml", &plain()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_deref()),
        (Some(3), Some("nodes[0].exec"))
    );
    assert!(
        err.to_string()
            .contains("executable `./no-such-node.sh` not found"),
        "{err}"
    );
    // Bare names fall back to PATH.
    let files = Files::new(&[("p.yaml", "nodes:\n  - name: a\n    exec: sh\n")]);
    let plan = files.load("p.yaml", &plain()).unwrap();
    assert!(plan.nodes[0].program.ends_with("sh"));
}

#[test]
fn shutdown_section_sets_timeouts() {
    let files = Files::new(&[(
        "s.yaml",
        "shutdown: {sigint_timeout: 1.5, sigterm_timeout: 0}\nnodes: []\n",
    )]);
    let plan = files.load("s.yaml", &plain()).unwrap();
    assert_eq!(plan.shutdown.sigint, Duration::from_millis(1500));
    assert_eq!(plan.shutdown.sigterm, Duration::ZERO);
    assert_eq!(plan.name, "s");
}

/// A catalog of two kinds: `enc` takes `rate` (≥ 0) only, `sink` takes nothing.
#[derive(Debug)]
struct TwoKinds;

impl KindCatalog for TwoKinds {
    fn kinds(&self) -> Vec<String> {
        vec!["enc".to_owned(), "sink".to_owned()]
    }

    fn check(
        &self,
        kind: &str,
        node: &str,
        params: &serde_json::Map<String, Value>,
    ) -> Result<(), Vec<ParamIssue>> {
        let issues: Vec<ParamIssue> = params
            .iter()
            .filter_map(|(key, value)| {
                let problem = match (kind, key.as_str()) {
                    ("enc", "rate") if value.as_f64().is_some_and(|r| r >= 0.0) => return None,
                    ("enc", "rate") => "must be ≥ 0",
                    _ => "is unknown",
                };
                let error = format!("node `{node}`: `{key}` = {value} {problem}");
                Some(ParamIssue {
                    key: key.clone(),
                    error: error.into(),
                })
            })
            .collect();
        match issues.is_empty() {
            true => Ok(()),
            false => Err(issues),
        }
    }
}

fn with_kinds(files: &Files) -> LoadOptions {
    LoadOptions {
        kinds: Some(std::sync::Arc::new(TwoKinds)),
        evospike_exe: Some(files.path("node.sh")),
        ..plain()
    }
}

#[test]
fn kinds_are_checked_against_the_catalog() {
    let files = Files::new(&[("k.yaml", "nodes:\n  - name: a\n    kind: encoder\n")]);
    let err = files.load("k.yaml", &with_kinds(&files)).unwrap_err();
    assert_eq!(err.line, Some(3));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: nodes[0].kind: unknown node kind `encoder` (kinds: enc, sink)",
            files.path("k.yaml").display()
        )
    );
}

#[test]
fn every_parameter_problem_of_every_node_is_reported_at_its_line() {
    let files = Files::new(&[
        (
            "p.yaml",
            "nodes:\n  - name: a\n    kind: enc\n    params:\n      rate: -1\n      ratte: 2\n  - name: b\n    kind: sink\n    params: {x: 1}\n  - name: c\n    kind: sink\n    params_file: extra.yaml\n",
        ),
        ("extra.yaml", "y: 2\n"),
    ]);
    let errors = files.load_all("p.yaml", &with_kinds(&files)).unwrap_err();
    let file = files.path("p.yaml").display().to_string();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("{file}:5: node `a`: `rate` = -1 must be ≥ 0"),
            format!("{file}:6: node `a`: `ratte` = 2 is unknown"),
            format!("{file}:9: node `b`: `x` = 1 is unknown"),
            // From the params file: the line of `params_file:`.
            format!("{file}:12: node `c`: `y` = 2 is unknown"),
        ]
    );
}
