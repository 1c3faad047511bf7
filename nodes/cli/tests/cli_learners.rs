//! The learners beside `SurrogateGradient` — `STDPUnsupervised`, `SSL`,
//! `Distillation` — as a user runs them: chosen by name with `--learner`, each
//! writing a model that `evospike eval` scores to the accuracy training reported,
//! at 8×8 and at 28×28, and bad parameters refused with exit code 2.

mod common;

use std::path::{Path, PathBuf};

use common::{evospike, run};
use evospike_learning::data;
use serde_json::Value;

/// The bundled digits upsampled to 28×28, split 80/20, as gzip-less IDX files.
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

/// Trains with `args` (plus `--json --out out`), then evaluates the model on the
/// held-out data `eval_data`; returns (training's test accuracy, eval's).
fn train_and_eval(args: &[&str], out: &Path, eval_data: &[&str]) -> (f64, f64) {
    let r = run(evospike()
        .arg("train")
        .args(args)
        .arg("--json")
        .arg("--out")
        .arg(out));
    assert!(r.success, "{args:?}: {r:?}");
    let last: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    let trained = last["test_accuracy"].as_f64().unwrap();
    let e = run(evospike()
        .arg("eval")
        .arg(out)
        .args(eval_data)
        .arg("--json"));
    assert!(e.success, "{e:?}");
    let e: Value = serde_json::from_str(e.stdout.trim()).unwrap();
    (trained, e["accuracy"].as_f64().unwrap())
}

const DIGITS: [&str; 4] = ["--data", "builtin:digits", "--holdout", "0.2"];

fn teacher(dir: &Path) -> PathBuf {
    let out = dir.join("teacher");
    let args = [&DIGITS[..], &["--hidden", "64", "--epochs", "3"]].concat();
    let (acc, _) = train_and_eval(&args, &out, &DIGITS);
    assert!(acc > 0.8, "teacher {acc}");
    out
}

#[test]
fn every_learner_is_chosen_by_name_and_eval_scores_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = teacher(dir.path());
    let teacher = teacher.to_str().unwrap();
    let cases: [(&[&str], f64); 3] = [
        (
            &[
                "--learner",
                "STDPUnsupervised",
                "--hidden",
                "50",
                "--epochs",
                "2",
            ],
            0.6,
        ),
        (
            &["--learner", "SSL", "--hidden", "64", "--epochs", "2"],
            0.8,
        ),
        (
            &[
                "--learner",
                "Distillation",
                "--teacher",
                teacher,
                "--hidden",
                "16",
                "--epochs",
                "5",
                "--batch",
                "32",
            ],
            0.8,
        ),
    ];
    for (i, (extra, floor)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("m{i}"));
        let args = [&DIGITS[..], extra].concat();
        let (trained, scored) = train_and_eval(&args, &out, &DIGITS);
        assert!(trained >= floor, "{extra:?}: {trained}");
        assert_eq!(
            trained, scored,
            "{extra:?}: eval must reproduce the model's accuracy"
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
        assert_eq!(manifest["provenance"]["learner"], extra[1]);
    }
}

#[test]
fn every_learner_trains_on_28x28_idx() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = digits_28x28(dir.path());
    let teacher = dir.path().join("teacher28");
    let data = ["--data", &train, "--test", &test];
    let eval = ["--data", &test];
    let (t, _) = train_and_eval(
        &[&data[..], &["--hidden", "64", "--epochs", "2"]].concat(),
        &teacher,
        &eval,
    );
    assert!(t > 0.8, "{t}");
    let teacher = teacher.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &[
            "--learner",
            "STDPUnsupervised",
            "--hidden",
            "30",
            "--epochs",
            "1",
            "-p",
            "steps=60",
            "-p",
            "eval_steps=60",
        ],
        &[
            "--learner",
            "SSL",
            "--hidden",
            "32",
            "--epochs",
            "1",
            "--steps",
            "10",
        ],
        &[
            "--learner",
            "Distillation",
            "--teacher",
            teacher,
            "--hidden",
            "16",
            "--epochs",
            "2",
        ],
    ];
    for (i, extra) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("m{i}"));
        let (trained, scored) = train_and_eval(&[&data[..], extra].concat(), &out, &eval);
        assert!(trained > 0.3, "{extra:?}: {trained}");
        assert_eq!(trained, scored, "{extra:?}");
    }
}

#[test]
fn bad_learner_parameters_exit_2_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = teacher(dir.path());
    let teacher = teacher.to_str().unwrap();
    let (train28, _) = digits_28x28(dir.path());
    let out = dir.path().join("m");
    let d = "builtin:digits";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--data", d, "--learner", "SSL", "-p", "probe=1"],
            "`probe`",
        ),
        (
            vec!["--data", d, "--learner", "SSL", "-p", "label_fraction=2"],
            "label_fraction",
        ),
        (
            vec![
                "--data",
                d,
                "--learner",
                "STDPUnsupervised",
                "-p",
                "theta_plus=-1",
            ],
            "theta_plus",
        ),
        (
            vec!["--data", d, "--learner", "STDPUnsupervised", "--lr", "0.1"],
            "`lr`",
        ),
        (vec!["--data", d, "--learner", "Distillation"], "teacher"),
        (
            vec![
                "--data",
                d,
                "--learner",
                "Distillation",
                "--teacher",
                "/nonexistent",
            ],
            "/nonexistent",
        ),
        (
            vec![
                "--data",
                d,
                "--learner",
                "Distillation",
                "--teacher",
                teacher,
                "-p",
                "alpha=2",
            ],
            "alpha",
        ),
        (
            vec![
                "--data",
                &train28,
                "--learner",
                "Distillation",
                "--teacher",
                teacher,
            ],
            "takes 64 inputs",
        ),
        (vec!["--data", d, "--teacher", teacher], "`teacher`"),
    ];
    for (args, needle) in cases {
        let r = run(evospike().arg("train").args(&args).arg("--out").arg(&out));
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}
