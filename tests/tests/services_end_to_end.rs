//! The platform end to end, from `launch/services.yaml`, every call through the
//! gateway: a model trained with `POST /training/train` is registered, loaded
//! with `POST /inference/load_model/{id}`, and answers `/inference/batch_infer`
//! with exactly the predictions — hence the accuracy — that `evospike eval`
//! gives for the registered files.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.map(Value::to_string).unwrap_or_default())
        .unwrap();
    let mut response = agent().run(request).unwrap();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn a_model_trained_through_the_gateway_is_served_with_the_accuracy_eval_gives() {
    let data = tempfile::tempdir().unwrap();
    let router = loopback_endpoint();
    let mut command = evospike_testkit::services_launch(&router, data.path());
    let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
    let line = launcher
        .wait_for_line(
            |l| l.contains("(gateway) serving http://"),
            Duration::from_secs(60),
        )
        .expect("the gateway starts");
    let gw = line
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    wait_until(Duration::from_secs(30), || {
        let (_, health) = call("GET", &format!("{gw}/services/health"), None);
        ["training", "inference", "registry"]
            .iter()
            .all(|s| health.to_string().contains(&format!("\"service\":\"{s}\"")))
    })
    .expect("the gateway sees training, inference and the registry");

    // Train.
    let (status, job) = call(
        "POST",
        &format!("{gw}/training/train"),
        Some(&json!({
            "model_type": "classifier",
            "dataset_path": "builtin:digits",
            "config": {"epochs": 4, "batch_size": 64, "hidden": [64], "steps": 12, "holdout": 0.2, "seed": 3},
            "learning_rate": 0.005,
            "model_id": "digits-e2e"
        })),
    );
    assert!(status == 200 || status == 201, "{status} {job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    let mut job = Value::Null;
    wait_until(Duration::from_secs(180), || {
        job = call("GET", &format!("{gw}/training/jobs/{job_id}"), None).1;
        matches!(
            job["state"].as_str(),
            Some("SUCCEEDED" | "FAILED" | "CANCELLED")
        )
    })
    .unwrap_or_else(|_| panic!("the job ends: {job}"));
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["model_id"], "digits-e2e");
    let version = job["model_version"].as_str().unwrap().to_owned();

    // Registered: `evospike eval` on the registry's files.
    let model_dir = data.path().join("downloaded");
    std::fs::create_dir_all(&model_dir).unwrap();
    for file in ["model.json", "weights.safetensors"] {
        let mut response = agent()
            .get(&format!(
                "{gw}/registry/models/digits-e2e/download/{file}?version={version}"
            ))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{file}");
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        std::fs::write(model_dir.join(file), bytes).unwrap();
    }
    let out = Command::new(workspace_bin("evospike"))
        .arg("eval")
        .arg(&model_dir)
        .args(["--data", "builtin:digits", "--holdout", "0.2", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let eval_predictions: Vec<u64> = serde_json::from_value(report["predictions"].clone()).unwrap();

    // Loaded and served.
    let (status, loaded) = call(
        "POST",
        &format!("{gw}/inference/load_model/digits-e2e"),
        None,
    );
    assert_eq!(status, 200, "{loaded}");
    let digits = evospike_learning::data::builtin_digits().unwrap();
    let (_, test) = digits.holdout(0.2).unwrap();
    let labels = test.labels().unwrap().to_vec();
    let inputs: Vec<Value> = (0..test.len())
        .map(|i| json!({"pixels": test.sample(i)}))
        .collect();
    let (status, reply) = call(
        "POST",
        &format!("{gw}/inference/batch_infer"),
        Some(&json!({"model_id": "digits-e2e", "inputs": inputs})),
    );
    assert_eq!(status, 200, "{reply}");
    let served: Vec<u64> = reply["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["prediction"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(served.len(), labels.len());
    assert_eq!(
        served, eval_predictions,
        "inference answers as evospike eval does"
    );
    let correct = served
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == u64::from(**l))
        .count();
    let accuracy = correct as f64 / labels.len() as f64;
    assert!(
        (accuracy - report["accuracy"].as_f64().unwrap()).abs() < 1e-9,
        "{accuracy} vs {report}"
    );
    eprintln!(
        "trained via the gateway: test accuracy {:.4} (job), served {accuracy:.4} on {} digits, eval {:.4}",
        job["progress"]["test_accuracy"], labels.len(), report["accuracy"]
    );

    launcher.signal("INT").unwrap();
    launcher
        .wait_exit(Duration::from_secs(20))
        .expect("launch ends");
}
