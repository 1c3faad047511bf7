//! MONITORING plugins in a running pipeline (`launch/insight.yaml`):
//! monitoring's DataMonitor measures each layer from its spike topic and
//! publishes the statistics as the layer's metrics; with layer2's input
//! weight at 0 (a silenced layer) InsightEngine's `insight_silent_layer`
//! alert fires for layer2, and not for layer1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};
use serde_json::Value;

fn get_json(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()
}

fn alert<'a>(alerts: &'a Value, rule: &str, node: &str) -> Option<&'a Value> {
    alerts["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["rule"] == rule && a["node"] == node)
}

fn metric(metrics: &Value, name: &str) -> Option<f64> {
    metrics["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)?["value"]
        .as_f64()
}

#[test]
fn a_silenced_layer_raises_an_insight_alert() {
    let router = loopback_endpoint();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/insight.yaml");
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .arg("launch")
        .arg(file)
        .args(["--arg", &format!("router={router}")])
        .args(["--arg", "host=127.0.0.1", "--arg", "monitoring_port=0"])
        .args(["--arg", "layer2_weight=0", "--arg", "rate=300"])
        .env("RUST_LOG", "info");
    let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
    let line = launcher
        .wait_for_line(
            |l| l.contains("(monitoring) serving http://"),
            Duration::from_secs(60),
        )
        .expect("monitoring starts");
    let mon = line
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned();

    // DataMonitor's statistics arrive as layer1's metrics.
    let mut layer1 = Value::Null;
    wait_until(Duration::from_secs(60), || {
        layer1 = get_json(&format!("{mon}/metrics/layer1")).unwrap_or(Value::Null);
        metric(&layer1, "layer_rate_hz").is_some_and(|r| r > 0.0)
            && metric(&layer1, "layer_isi_cv").is_some()
            && metric(&layer1, "layer_fano").is_some()
    })
    .unwrap_or_else(|_| panic!("layer1 is measured: {layer1}"));
    let cv = metric(&layer1, "layer_isi_cv").unwrap();
    assert!(cv.is_finite() && cv >= 0.0, "{layer1}");
    let synchrony = metric(&layer1, "layer_synchrony");
    assert!(
        synchrony.is_none_or(|s| (0.0..=1.0).contains(&s)),
        "{layer1}"
    );

    // The silenced layer: measured at 0 Hz, and InsightEngine's alert fires.
    let mut alerts = Value::Null;
    wait_until(Duration::from_secs(60), || {
        alerts = get_json(&format!("{mon}/alerts")).unwrap_or(Value::Null);
        alert(&alerts, "insight_silent_layer", "layer2").is_some_and(|a| a["state"] == "firing")
    })
    .unwrap_or_else(|_| panic!("insight_silent_layer fires for layer2: {alerts}"));
    let firing = alert(&alerts, "insight_silent_layer", "layer2").unwrap();
    assert!(
        firing["message"].as_str().unwrap().contains("layer2"),
        "{firing}"
    );
    let layer2 = get_json(&format!("{mon}/metrics/layer2")).unwrap();
    assert_eq!(metric(&layer2, "layer_rate_hz"), Some(0.0), "{layer2}");
    assert!(
        alert(&alerts, "insight_silent_layer", "layer1").is_none(),
        "layer1 fires: {alerts}"
    );

    launcher.signal("INT").unwrap();
    let status = launcher
        .wait_exit(Duration::from_secs(20))
        .expect("launch ends within its shutdown timeouts");
    assert!(status.success(), "{status}");
}
