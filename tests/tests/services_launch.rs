//! `launch/services.yaml` starts the router and every service; the documented
//! register example answers, directly and through the gateway; monitoring sees
//! the services and the log consumer stored their start; Ctrl-C ends it all.
//!
//! The same again secured (`secret`, `acl=true`, `bus_mode=client`): every
//! service authenticates as itself and the router enforces the access-control
//! list derived from the launch file, which gives each service kind what it
//! needs (the gateway every HTTP API, monitoring every metric, inference the
//! registry, …) and nothing more.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, workspace_bin, Child};

#[test]
fn the_services_launch_file_starts_a_registry_that_answers() {
    services_answer(false);
}

#[test]
fn secured_services_reach_what_their_kinds_need_and_no_more() {
    services_answer(true);
}

fn services_answer(secured: bool) {
    let data = tempfile::tempdir().unwrap();
    let router = loopback_endpoint();
    let mut command = evospike_testkit::services_launch(&router, data.path());
    let certs = data.path().join("certs");
    // `evospike log`'s credentials: the operator may ask any service.
    let mut tool_user: Vec<String> = Vec::new();
    if secured {
        let status = Command::new(workspace_bin("evospike"))
            .args(["certs", "--machine", "local=127.0.0.1", "--out"])
            .arg(&certs)
            .status()
            .unwrap();
        assert!(status.success(), "evospike certs");
        let secret = certs.join("cluster.secret").display().to_string();
        command.args(["--arg", &format!("secret={secret}")]);
        command.args(["--arg", "acl=true", "--arg", "bus_mode=client"]);
        tool_user = vec![
            "--user".into(),
            "operator".into(),
            "--secret-file".into(),
            secret,
        ];
    }
    let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
    let mut urls = std::collections::BTreeMap::new();
    while urls.len() < 5 {
        let line = launcher
            .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
            .expect("the services start");
        let service = [
            "(registry)",
            "(gateway)",
            "(monitoring)",
            "(inference)",
            "(training)",
        ]
        .into_iter()
        .find(|s| line.contains(s))
        .unwrap_or_else(|| panic!("which service? {line}"));
        let url = line
            .split("serving ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a URL in the log line")
            .to_owned();
        urls.insert(service, url);
    }
    let url = urls["(registry)"].clone();
    let gateway = urls["(gateway)"].clone();

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

    // Through the gateway, over the bus: `curl http://localhost:8000/services/health`.
    evospike_testkit::wait_until(Duration::from_secs(20), || {
        agent
            .get(&format!("{gateway}/services/health"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .is_some_and(|b| b.contains("\"status\":\"healthy\"") && b.contains("\"registry\""))
    })
    .expect("the gateway reports the registry healthy");
    let mut reply = agent
        .get(&format!(
            "{gateway}/registry/models/vision_encoder_v1/versions/1.0.0"
        ))
        .call()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let body = reply.body_mut().read_to_string().unwrap();
    assert!(body.contains("\"state\":\"pending\""), "{body}");

    // Monitoring sees every service: `curl http://localhost:8004/dashboard`.
    let monitoring = urls["(monitoring)"].clone();
    evospike_testkit::wait_until(Duration::from_secs(20), || {
        agent
            .get(&format!("{monitoring}/dashboard"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .is_some_and(|b| {
                ["registry", "gateway", "monitoring", "logs"]
                    .iter()
                    .all(|n| b.contains(&format!("\"name\":\"{n}\"")))
            })
    })
    .expect("the dashboard data lists the services' nodes");

    // Inference asks the registry over the bus: an unknown model is the
    // registry's 404, not a timeout.
    let trace = "trace-services-launch-1";
    let mut reply = agent
        .post(&format!("{gateway}/inference/load_model/no_such_model"))
        .header("Content-Type", "application/json")
        .header("x-request-id", trace)
        .send("{}")
        .unwrap();
    let body = reply.body_mut().read_to_string().unwrap();
    assert_eq!(reply.status().as_u16(), 404, "{body}");
    assert!(body.contains(trace), "{body}");

    // The log consumer stored the services' start-up.
    let log = |user: &[String]| {
        Command::new(workspace_bin("evospike"))
            .args(["log", "--connect", &router, "--node", "registry"])
            .args(user)
            .output()
            .unwrap()
    };
    evospike_testkit::wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&log(&tool_user).stdout).contains("serving http://")
    })
    .expect("`evospike log` shows the registry's start");
    // The request ID travelled from the gateway over the bus to inference and on
    // to the registry, and each of them logged the request under it.
    let mut traced = String::new();
    evospike_testkit::wait_until(Duration::from_secs(10), || {
        let output = Command::new(workspace_bin("evospike"))
            .args(["log", "--connect", &router])
            .args(&tool_user)
            .output()
            .unwrap();
        traced = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.contains(&format!("request_id={trace}")))
            .collect::<Vec<_>>()
            .join("\n");
        ["gateway:", "inference:", "registry:"]
            .iter()
            .all(|node| traced.contains(node))
    })
    .unwrap_or_else(|_| panic!("the gateway, inference and the registry log {trace}:\n{traced}"));
    if secured {
        // Valid credentials of a service whose kind never asks the log
        // consumer: the router does not deliver its query.
        let secret = certs.join("cluster.secret").display().to_string();
        let output = log(&[
            "--user".into(),
            "inference".into(),
            "--secret-file".into(),
            secret,
        ]);
        assert!(
            !output.status.success()
                && !String::from_utf8_lossy(&output.stdout).contains("serving http://"),
            "inference's credentials must not read the logs: {output:?}"
        );
    }

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
