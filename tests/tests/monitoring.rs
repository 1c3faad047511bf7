//! The monitoring service collects every node's metrics from the bus and each
//! service's traffic by itself, takes pushed metrics, raises alerts from rules
//! (pending → firing → resolved, and a node that disappeared), and serves it all
//! as Prometheus text — scraped here by a real Prometheus server when one is
//! installed (`.ci/run` installs Debian's `prometheus`).

use std::process::Command;
use std::time::Duration;

use evospike_testkit::{
    free_port, loopback_endpoint, service_node, service_url, wait_until, which, Child,
};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn get_json(url: &str) -> (u16, Value) {
    let (status, text) = get(url);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post(url: &str, body: &str) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn alert<'a>(alerts: &'a Value, rule: &str, node: &str) -> Option<&'a Value> {
    alerts["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["rule"] == rule && a["node"] == node)
}

#[test]
fn monitoring_collects_alerts_and_serves_prometheus() {
    let router_ep = loopback_endpoint();
    let _router = evospike_testkit::router(&router_ep);
    let data = tempfile::tempdir().unwrap();
    let mut registry = service_node(
        &router_ep,
        "registry",
        "registry",
        &[format!("data_dir={}", data.path().join("r").display())],
    );
    let reg = service_url(&mut registry);
    let rule = json!([{"name": "registry_running", "metric": "steps_total", "node": "reg*", "op": ">=", "threshold": 0, "for_s": 1}]);
    let mut monitoring = service_node(
        &router_ep,
        "monitoring",
        "monitoring",
        &[format!("rules={rule}"), "interval_ms=300".to_owned()],
    );
    let mon = service_url(&mut monitoring);

    // Node metrics arrive from the bus by themselves; the registry's HTTP
    // traffic is read from its /metrics over the bus.
    assert_eq!(get(&format!("{reg}/models")).0, 200);
    let mut text = String::new();
    wait_until(Duration::from_secs(20), || {
        text = get(&format!("{mon}/metrics")).1;
        text.contains("evospike_steps_total{node=\"registry\"}")
            && text.contains("evospike_node_up{node=\"registry\"} 1")
            && text.contains("http_requests_total{")
            && text.contains("node=\"registry\"")
    })
    .unwrap_or_else(|_| panic!("monitoring's /metrics has the registry:\n{text}"));
    let (status, registry_metrics) = get_json(&format!("{mon}/metrics/registry"));
    assert_eq!(status, 200, "{registry_metrics}");
    let sources = registry_metrics["sources"].as_array().unwrap();
    assert!(
        sources.contains(&json!("bus")) && sources.contains(&json!("http")),
        "{registry_metrics}"
    );
    assert_eq!(get(&format!("{mon}/metrics/nobody")).0, 404);

    // Pushed metrics.
    let (status, body) = post(
        &format!("{mon}/metrics"),
        r#"{"service": "batch-job", "metrics": [{"name": "rows_done", "value": 42, "labels": {"table": "a"}}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1);
    let (_, pushed) = get_json(&format!("{mon}/metrics/batch-job"));
    assert_eq!(pushed["metrics"][0]["value"], 42.0, "{pushed}");
    assert_eq!(pushed["sources"], json!(["push"]));
    for bad in [
        "{",
        r#"{"metrics": []}"#,
        r#"{"service": "", "metrics": []}"#,
        r#"{"service": "x", "metrics": [{"name": "a b", "value": 1}]}"#,
        r#"{"service": "x", "metrics": [{"name": "a", "value": "high"}]}"#,
        r#"{"service": "x", "metrics": [], "extra": 1}"#,
    ] {
        let (status, body) = post(&format!("{mon}/metrics"), bad);
        assert_eq!(status, 400, "{bad} → {body}");
    }

    // The configured rule fires after its second.
    let mut alerts = Value::Null;
    wait_until(Duration::from_secs(15), || {
        alerts = get_json(&format!("{mon}/alerts")).1;
        alert(&alerts, "registry_running", "registry").is_some_and(|a| a["state"] == "firing")
    })
    .unwrap_or_else(|_| panic!("the rule fires: {alerts}"));
    let firing = alert(&alerts, "registry_running", "registry").unwrap();
    assert!(!firing["pending_since"].as_str().unwrap().is_empty());
    assert!(!firing["firing_since"].as_str().unwrap().is_empty());

    // The dashboard's data.
    let (status, dashboard) = get_json(&format!("{mon}/dashboard"));
    assert_eq!(status, 200);
    let nodes = dashboard["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n["name"] == "registry" && n["alive"] == true),
        "{dashboard}"
    );
    let services = dashboard["services"].as_array().unwrap();
    assert!(
        services
            .iter()
            .any(|s| s["name"] == "registry" && s["requests_total"].as_u64() >= Some(1)),
        "{dashboard}"
    );

    // A real Prometheus scrapes monitoring, and its query API has a series.
    if let Some(prometheus) = which("prometheus") {
        scrape_with_prometheus(&prometheus, &mon, data.path());
    } else if std::env::var_os("EVOSPIKE_REQUIRE_PROMETHEUS").is_some() {
        panic!("EVOSPIKE_REQUIRE_PROMETHEUS is set but `prometheus` is not installed");
    } else {
        eprintln!("prometheus is not installed: the scrape check is skipped");
    }

    // The registry disappears: its rule resolves and node_down fires (after 5 s).
    registry.signal("KILL").unwrap();
    wait_until(Duration::from_secs(30), || {
        alerts = get_json(&format!("{mon}/alerts")).1;
        alert(&alerts, "node_down", "registry").is_some_and(|a| a["state"] == "firing")
            && alert(&alerts, "registry_running", "registry")
                .is_some_and(|a| a["state"] == "resolved")
    })
    .unwrap_or_else(|_| panic!("node_down fires and the rule resolves: {alerts}"));
    let resolved = alert(&alerts, "registry_running", "registry").unwrap();
    assert!(
        !resolved["resolved_at"].as_str().unwrap().is_empty(),
        "{resolved}"
    );
    assert!(get(&format!("{mon}/metrics"))
        .1
        .contains("evospike_node_up{node=\"registry\"} 0"));
}

fn scrape_with_prometheus(prometheus: &std::path::Path, monitoring: &str, dir: &std::path::Path) {
    let target = monitoring
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: evospike\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = Child::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    )
    .unwrap();
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=evospike_node_up");
    let mut answer = Value::Null;
    let found = wait_until(Duration::from_secs(30), || {
        answer = agent()
            .get(&query)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        answer["data"]["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s["metric"]["node"] == "registry"))
    });
    let _ = server.signal("TERM");
    found.unwrap_or_else(|_| {
        panic!(
            "Prometheus has evospike_node_up for the registry: {answer}\n{}",
            server.output().join("\n")
        )
    });
}
