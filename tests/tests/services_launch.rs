//! `launch/services.yaml` starts the router and every service; the documented
//! register example answers, directly and through the gateway; monitoring sees
//! the services and the log consumer stored their start; Ctrl-C ends it all.

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, workspace_bin, Child};

#[test]
fn the_services_launch_file_starts_a_registry_that_answers() {
    let data = tempfile::tempdir().unwrap();
    let router = loopback_endpoint();
    let mut command = evospike_testkit::services_launch(&router, data.path());
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

    // The log consumer stored the services' start-up.
    let router_ep = router.clone();
    evospike_testkit::wait_until(Duration::from_secs(10), || {
        Command::new(workspace_bin("evospike"))
            .args(["log", "--connect", &router_ep, "--node", "registry"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("serving http://"))
    })
    .expect("`evospike log` shows the registry's start");

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
