//! `launch/services.yaml` starts the router and the model registry; the
//! documented register example answers, and Ctrl-C ends it all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, workspace_bin, Child};

fn services() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/services.yaml")
}

#[test]
fn the_services_launch_file_starts_a_registry_that_answers() {
    let data = tempfile::tempdir().unwrap();
    let router = loopback_endpoint();
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .arg("launch")
        .arg(services())
        .args(["--arg", &format!("router={router}")])
        .args(["--arg", "host=127.0.0.1"])
        .args(["--arg", "registry_port=0", "--arg", "training_port=0"])
        .arg("--arg")
        .arg(format!(
            "registry_data={}",
            data.path().join("registry").display()
        ))
        .arg("--arg")
        .arg(format!(
            "training_data={}",
            data.path().join("training").display()
        ))
        .env("RUST_LOG", "info");
    let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
    let line = launcher
        .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
        .expect("the registry starts");
    let url = line
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health = agent.get(&format!("{url}/health")).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The documented example, verbatim but for the address.
    let mut reply = agent
        .post(&format!("{url}/models/register"))
        .header("Content-Type", "application/json")
        .send(
            r#"{
"model_id": "vision_encoder_v1",
"name": "Vision Encoder",
"version": "1.0.0",
"model_type": "vision",
"framework": "pytorch",
"created_at": "2025-12-20T12:00:00Z"
}"#,
        )
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let body = reply.body_mut().read_to_string().unwrap();
    assert!(body.contains("\"state\":\"pending\""), "{body}");

    launcher.signal("INT").unwrap();
    let status = launcher
        .wait_exit(Duration::from_secs(15))
        .expect("launch ends within its shutdown timeouts");
    assert!(
        status.success(),
        "{status}: {}",
        launcher.output().join("\n")
    );
}
