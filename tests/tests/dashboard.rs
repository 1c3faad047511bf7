//! The web dashboard in a real headless Chromium (driven over WebDriver by
//! Debian's chromedriver): the page loads without console errors, lists the
//! running nodes, and its raster shows spikes published after it opened. A
//! screenshot is kept in the target directory (`dashboard.png`).

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use evospike_testkit::{
    free_port, loopback_endpoint, service_node, service_url, wait_until, which, workspace_bin,
    Child,
};
use serde_json::{json, Value};

const START: Duration = Duration::from_secs(60);

/// A WebDriver session on chromedriver.
struct Browser {
    base: String,
    agent: ureq::Agent,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(response.status().is_success(), "{method} {path}: {text}");
        value["value"].clone()
    }

    fn script(&self, session: &str, code: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{session}/execute/sync"),
            Some(json!({"script": code, "args": []})),
        )
    }
}

#[test]
fn the_dashboard_shows_nodes_and_a_live_raster_without_console_errors() {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        assert!(
            std::env::var_os("EVOSPIKE_REQUIRE_CHROMIUM").is_none(),
            "EVOSPIKE_REQUIRE_CHROMIUM is set but chromium or chromedriver is missing"
        );
        eprintln!("chromium/chromedriver not installed: the browser test is skipped");
        return;
    };
    let router_ep = loopback_endpoint();
    let _router = evospike_testkit::router(&router_ep);
    let mut monitoring = service_node(&router_ep, "monitoring", "monitoring", &["interval_ms=300"]);
    let mut gateway = service_node(&router_ep, "gateway", "gateway", &["probe_ms=300"]);
    service_url(&mut monitoring);
    let gw = service_url(&mut gateway);

    let port = free_port();
    let mut driver =
        Child::spawn(Command::new(chromedriver).arg(format!("--port={port}"))).unwrap();
    driver
        .wait_for_line(|l| l.contains("started successfully"), START)
        .expect("chromedriver starts");
    let browser = Browser {
        base: format!("http://127.0.0.1:{port}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into(),
    };
    let session = browser.call(
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}})),
    );
    let id = session["sessionId"]
        .as_str()
        .expect("a session id")
        .to_owned();
    browser.call(
        "POST",
        &format!("/session/{id}/url"),
        Some(json!({"url": format!("{gw}/?topic=demo/spikes")})),
    );

    // The running nodes are listed (from monitoring, through the gateway).
    let mut names = Value::Null;
    wait_until(Duration::from_secs(30), || {
        names = browser.script(
            &id,
            "return [...document.querySelectorAll('.node-name')].map(e => e.textContent)",
        );
        ["router", "gateway", "monitoring"]
            .iter()
            .all(|n| names.as_array().is_some_and(|a| a.contains(&json!(n))))
    })
    .unwrap_or_else(|_| panic!("the page lists the nodes: {names}"));
    assert_eq!(
        browser.script(
            &id,
            "return document.getElementById('raster-spikes').textContent"
        ),
        json!("0"),
        "no spikes before any were published"
    );

    // Spikes published now, after the page opened, reach the raster.
    let mut publisher = Child::spawn(Command::new(workspace_bin("evospike")).args([
        "topic",
        "pub",
        "demo/spikes",
        "--random",
        "0.2",
        "--shape",
        "64",
        "--rate",
        "50",
        "--seed",
        "3",
        "--connect",
        &router_ep,
    ]))
    .unwrap();
    let mut count = Value::Null;
    wait_until(Duration::from_secs(30), || {
        count = browser.script(
            &id,
            "return Number(document.getElementById('raster-spikes').textContent)",
        );
        count.as_f64().is_some_and(|c| c > 0.0)
    })
    .unwrap_or_else(|_| panic!("the raster shows spikes: {count}; {:?}", publisher.output()));
    let info = browser.script(
        &id,
        "return document.getElementById('raster-info').textContent",
    );
    assert!(info.as_str().unwrap().contains("64 neurons"), "{info}");

    // A screenshot as an artifact.
    let png = browser.call("GET", &format!("/session/{id}/screenshot"), None);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, bytes).unwrap();
    eprintln!("screenshot: {}", path.display());

    // No console errors.
    let logs = browser.call(
        "POST",
        &format!("/session/{id}/se/log"),
        Some(json!({"type": "browser"})),
    );
    let severe: Vec<&Value> = logs
        .as_array()
        .map(|l| l.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(severe.is_empty(), "console errors: {severe:?}");

    browser.call("DELETE", &format!("/session/{id}"), None);
    let _ = publisher.signal("INT");
    let _ = driver.signal("TERM");
}
