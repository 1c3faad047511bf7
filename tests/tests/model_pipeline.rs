//! What was trained is what runs: a model written by `evospike train` runs as a
//! pipeline of processes from `launch/model.yaml` (router, encoder, two layer
//! nodes, readout) over held-out digits, and its readout predicts, sample by
//! sample, exactly what `evospike eval` predicts for the same samples.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_bus::{Bus, BusConfig};
use evospike_testkit::{loopback_endpoint, workspace_bin, Child};

fn launch_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/model.yaml")
}

fn evospike(args: &[&str]) -> serde_json::Value {
    let out = Command::new(workspace_bin("evospike"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "evospike {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

async fn observer(router: &str) -> Bus {
    let config = BusConfig::peer(&["tcp/127.0.0.1:0".to_string()], &[router.to_string()]);
    for _ in 0..200 {
        if let Ok(bus) = Bus::open(config.clone()).await {
            return bus;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot reach the router at {router}");
}

/// The first index of the largest value (the readout's and eval's rule).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_model_predicts_the_same_classes_as_a_pipeline_and_in_eval() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let model_arg = model.to_str().unwrap();
    let trained = evospike(&[
        "train",
        "--data",
        "builtin:digits",
        "--holdout",
        "0.2",
        "--hidden",
        "64",
        "--epochs",
        "4",
        "--json",
        "--out",
        model_arg,
    ]);
    assert!(
        trained["test_accuracy"].as_f64().unwrap() > 0.8,
        "{trained}"
    );
    let eval = evospike(&[
        "eval",
        model_arg,
        "--data",
        "builtin:digits",
        "--holdout",
        "0.2",
        "--json",
    ]);
    let expected: Vec<u64> = eval["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(expected.len(), 359);
    let steps_per_sample = 25;

    let router = loopback_endpoint();
    let logs = tempfile::tempdir().unwrap();
    let steps = (expected.len() * steps_per_sample).to_string();
    let mut launcher = Child::spawn(
        Command::new(workspace_bin("evospike"))
            .arg("launch")
            .arg(launch_file())
            .args([
                "--arg",
                &format!("router={router}"),
                "--arg",
                &format!("model={model_arg}"),
            ])
            .args([
                "--arg",
                "holdout=0.2",
                "--arg",
                &format!("steps={steps}"),
                "--arg",
                "wait_scores=30",
            ])
            .arg("--log-dir")
            .arg(logs.path()),
    )
    .unwrap();
    let bus = observer(&router).await;
    let scores = bus.spike_subscriber("readout/scores").unwrap();
    let mut predicted = vec![None; expected.len()];
    for _ in 0..expected.len() {
        let msg = tokio::time::timeout(Duration::from_secs(120), scores.recv())
            .await
            .unwrap_or_else(|_| panic!("no scores; launcher said {:?}", launcher.output()))
            .unwrap();
        let view = msg.view();
        let step = view.header.step.to_native() as usize;
        assert_eq!(
            (step + 1) % steps_per_sample,
            0,
            "scores come at the end of a window"
        );
        let sample = step / steps_per_sample;
        predicted[sample] = Some(argmax(view.analog().expect("scores are analog")) as u64);
    }
    let predicted: Vec<u64> = predicted
        .into_iter()
        .map(|p| p.expect("every window scored"))
        .collect();
    let differ: Vec<usize> = (0..expected.len())
        .filter(|&i| predicted[i] != expected[i])
        .collect();
    assert!(
        differ.is_empty(),
        "samples whose pipeline and eval predictions differ: {differ:?}"
    );

    let status = launcher
        .wait_exit(Duration::from_secs(60))
        .expect("the launch ends with the readout");
    assert!(status.success(), "{:?}", launcher.output());
    let readout_log = std::fs::read_to_string(logs.path().join("readout.log")).unwrap_or_default();
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!(
        readout_log.contains("readout accuracy")
            && readout_log.contains(&format!("accuracy={accuracy}")),
        "the readout reports eval's accuracy {accuracy}: {readout_log}"
    );
}
