//! `evospike train` and `evospike eval` as a user runs them: 28×28 IDX data with
//! the default settings, Ctrl-C and `--resume`, and bad input.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{evospike, run};
use evospike_learning::data;
use evospike_testkit::Child;
use serde_json::Value;

/// The bundled digits upsampled to 28×28 and split 80/20, written as MNIST-format
/// IDX files (gzipped) in `dir`: `(train images, test images)`.
fn digits_28x28(dir: &Path) -> (String, String) {
    let all = data::upsample(&data::builtin_digits().unwrap(), 28).unwrap();
    let (train, test) = all.holdout(0.2).unwrap();
    let mut paths = Vec::new();
    for (name, part) in [("train", &train), ("t10k", &test)] {
        let images = dir.join(format!("{name}-images-idx3-ubyte"));
        let labels = dir.join(format!("{name}-labels-idx1-ubyte"));
        data::write_idx(part, &images, &labels).unwrap();
        paths.push(images.display().to_string());
    }
    (paths[0].clone(), paths[1].clone())
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn trains_28x28_idx_with_the_defaults_and_eval_reproduces_the_test_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = digits_28x28(dir.path());
    let model = dir.path().join("model");
    let out = run(evospike()
        .args([
            "train", "--data", &train, "--test", &test, "--epochs", "3", "--json", "--out",
        ])
        .arg(&model));
    assert!(out.success, "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(
        lines.len(),
        4,
        "three epochs and the model line: {}",
        out.stdout
    );
    let last = &lines[3];
    let accuracy = last["test_accuracy"].as_f64().unwrap();
    // 784 inputs, 800 hidden LIF, 25 steps, shift augmentation: the defaults.
    assert!(accuracy >= 0.85, "test accuracy after 3 epochs: {accuracy}");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["network"]["input_shape"],
        serde_json::json!([28, 28])
    );
    assert_eq!(manifest["network"]["layers"][0]["size"], 800);
    assert_eq!(manifest["provenance"]["hyperparameters"]["shift"], 2);
    assert_eq!(
        manifest["metrics"]["test_accuracy"].as_f64(),
        Some(accuracy)
    );

    let eval = run(evospike()
        .arg("eval")
        .arg(&model)
        .args(["--data", &test, "--json"]));
    assert!(eval.success, "{eval:?}");
    let e: Value = serde_json::from_str(eval.stdout.trim()).unwrap();
    assert_eq!(e["accuracy"].as_f64(), Some(accuracy));
    assert_eq!(e["samples"], 359);
    assert_eq!(e["predictions"].as_array().unwrap().len(), 359);
    let confusion: u64 = e["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 359);

    let table = run(evospike().arg("eval").arg(&model).args(["--data", &test]));
    assert!(
        table.success && table.stdout.starts_with("accuracy "),
        "{table:?}"
    );
    assert!(table
        .stdout
        .contains("confusion (rows: true class, columns: predicted)"));
}

fn train_digits(out: &Path, epochs: u32, extra: &[&str]) -> std::process::Command {
    let mut c = evospike();
    c.args([
        "train",
        "--data",
        "builtin:digits",
        "--holdout",
        "0.2",
        "--hidden",
        "64",
        "--seed",
        "3",
        "--json",
    ]);
    c.arg("--epochs").arg(epochs.to_string());
    c.args(extra).arg("--out").arg(out);
    c
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_ends_with_the_weights_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let out = run(&mut train_digits(&straight, 8, &["-p", "batch=32"]));
    assert!(out.success, "{out:?}");

    let stopped = dir.path().join("stopped");
    let mut child = Child::spawn(&mut train_digits(&stopped, 8, &["-p", "batch=32"])).unwrap();
    child
        .wait_for_line(|l| l.starts_with("{\"epoch\":2,"), Duration::from_secs(60))
        .unwrap();
    child.signal("INT").unwrap();
    let status = child
        .wait_exit(Duration::from_secs(60))
        .expect("training stops after Ctrl-C");
    assert_eq!(status.code(), Some(130), "{:?}", child.output());
    assert!(
        child
            .output()
            .iter()
            .any(|l| l.contains("continue with --resume")),
        "{:?}",
        child.output()
    );
    assert!(stopped.join("checkpoint/checkpoint.json").exists());
    assert!(
        !stopped.join("model.json").exists(),
        "no model before training finished"
    );

    let resumed = run(evospike()
        .args([
            "train",
            "--data",
            "builtin:digits",
            "--holdout",
            "0.2",
            "--json",
            "--resume",
        ])
        .arg(&stopped));
    assert!(resumed.success, "{resumed:?}");
    let a = std::fs::read(straight.join("weights.safetensors")).unwrap();
    let b = std::fs::read(stopped.join("weights.safetensors")).unwrap();
    assert!(a == b, "resumed training must end with the same weights");

    // Resuming on other data is refused.
    let other = run(evospike()
        .args([
            "train",
            "--data",
            "builtin:digits",
            "--holdout",
            "0.5",
            "--resume",
        ])
        .arg(&stopped));
    assert!(!other.success);
    assert!(other.stderr.contains("trained on other data"), "{other:?}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let cases: [(&[&str], &str); 5] = [
        (
            &["train", "--data", "builtin:digits", "-p", "hiden=[10]"],
            "`hiden`",
        ),
        (
            &["train", "--data", "builtin:digits", "--holdout", "1.5"],
            "--holdout",
        ),
        (&["train", "--data", "/nonexistent.csv"], "/nonexistent.csv"),
        (
            &["train", "--data", "builtin:digits", "--learner", "Nope"],
            "Nope",
        ),
        (
            &["train", "--data", "builtin:digits", "-p", "beta=2"],
            "beta",
        ),
    ];
    for (args, needle) in cases {
        let r = run(evospike().args(args).arg("--out").arg(&out));
        assert_eq!(r.code, Some(2), "{args:?}: bad input exits 2: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    // A model whose weights changed is refused by eval.
    let model = dir.path().join("small");
    assert!(run(&mut train_digits(&model, 1, &[])).success);
    let weights = model.join("weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    let r = run(evospike()
        .arg("eval")
        .arg(&model)
        .args(["--data", "builtin:digits"]));
    assert!(!r.success);
    assert!(
        r.stderr.contains("does not match the manifest"),
        "{}",
        r.stderr
    );
    // 8×8 data into a 28×28 model.
    let (_, test) = digits_28x28(dir.path());
    assert!(run(&mut train_digits(&model, 1, &[])).success);
    let r = run(evospike().arg("eval").arg(&model).args(["--data", &test]));
    assert!(!r.success);
    assert!(
        r.stderr
            .contains("the samples have 784 values but the model takes 64"),
        "{}",
        r.stderr
    );
}
