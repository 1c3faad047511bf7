//! The API gateway in front of two registry instances, all separate processes on
//! one bus: requests routed over the bus by service name, load shared, an
//! instance killed behind it, guards (API keys, rate limit, validation) that
//! stop a request before it reaches a service, and HTTP services registered
//! from outside the bus.

use std::time::Duration;

use evospike_testkit::{loopback_endpoint, service_node, service_url, wait_until};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status, headers we look at, and the JSON body.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Option<String>, Option<String>, Value) {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.unwrap_or("").to_owned())
        .unwrap();
    let mut response = agent().run(request).unwrap();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (response.status().as_u16(), served_by, retry, value)
}

#[test]
fn the_gateway_routes_over_the_bus_shares_load_and_survives_an_instance() {
    let router_ep = loopback_endpoint();
    let _router = evospike_testkit::router(&router_ep);
    let data = tempfile::tempdir().unwrap();
    let dir = |n: &str| format!("data_dir={}", data.path().join(n).display());
    let mut reg1 = service_node(&router_ep, "registry", "registry1", &[dir("r1")]);
    let mut reg2 = service_node(&router_ep, "registry", "registry2", &[dir("r2")]);
    let mut gateway = service_node(&router_ep, "gateway", "gateway", &[] as &[&str]);
    let gw = service_url(&mut gateway);
    service_url(&mut reg1);
    service_url(&mut reg2);

    // Both instances become visible.
    wait_until(Duration::from_secs(20), || {
        let (status, _, _, body) = call("GET", &format!("{gw}/services"), &[], None);
        status == 200
            && body["services"]
                .as_array()
                .and_then(|s| s.iter().find(|e| e["name"] == "registry"))
                .and_then(|e| e["instances"].as_array())
                .is_some_and(|i| i.len() == 2)
    })
    .expect("the gateway sees both registry instances");

    // The documented register example, through the gateway; the request ID
    // travels to the service and back.
    let register = r#"{
"model_id": "vision_encoder_v1",
"name": "Vision Encoder",
"version": "1.0.0",
"model_type": "vision",
"framework": "pytorch",
"created_at": "2025-12-20T12:00:00Z"
}"#;
    let (status, served_by, _, body) = call(
        "POST",
        &format!("{gw}/registry/models/register"),
        &[("x-request-id", "trace-42")],
        Some(register),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "pending");
    let first = served_by.expect("x-served-by names the instance");

    // Round robin: the next calls go to both instances.
    let mut seen = std::collections::BTreeSet::from([first]);
    for _ in 0..4 {
        let (status, served_by, _, _) = call("GET", &format!("{gw}/registry/models"), &[], None);
        assert_eq!(status, 200);
        seen.extend(served_by);
    }
    assert_eq!(seen.len(), 2, "both instances served: {seen:?}");

    // A service's own 4xx comes back as it is.
    let (status, _, _, body) = call("GET", &format!("{gw}/registry/models/nope"), &[], None);
    assert_eq!(status, 404, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("nope"), "{body}");
    assert!(
        !message.starts_with('{'),
        "the service's error is passed on, not wrapped again: {body}"
    );

    // Every instance's health in one answer.
    let (status, _, _, body) = call("GET", &format!("{gw}/services/health"), &[], None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["services"].as_array().unwrap().len(), 2, "{body}");

    // One instance dies: once a health probe misses it (probes run every
    // second), every request is served by the other.
    reg1.signal("KILL").unwrap();
    reg1.wait_exit(Duration::from_secs(10))
        .expect("registry1 is gone");
    wait_until(Duration::from_secs(10), || {
        let (_, _, _, body) = call("GET", &format!("{gw}/services"), &[], None);
        body["services"][0]["instances"]
            .as_array()
            .is_some_and(|i| {
                i.iter()
                    .all(|x| x["instance"] != "registry1" || x["healthy"] == false)
            })
    })
    .expect("the gateway stops using registry1");
    for _ in 0..6 {
        let (status, served_by, _, body) = call("GET", &format!("{gw}/registry/models"), &[], None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(served_by.as_deref(), Some("registry2"));
    }
    // None left: 503 naming the service, and the gateway keeps running.
    reg2.signal("KILL").unwrap();
    reg2.wait_exit(Duration::from_secs(10))
        .expect("registry2 is gone");
    wait_until(Duration::from_secs(20), || {
        call("GET", &format!("{gw}/registry/models"), &[], None).0 == 503
    })
    .expect("503 once no instance is left");
    let (status, _, retry, body) = call("GET", &format!("{gw}/registry/models"), &[], None);
    assert_eq!(status, 503);
    assert!(retry.is_some());
    assert!(
        body["error"].as_str().unwrap().contains("`registry`"),
        "{body}"
    );
    let (status, _, _, _) = call("GET", &format!("{gw}/health"), &[], None);
    assert_eq!(status, 200);

    // An unknown service: 503 naming it.
    let (status, _, _, body) = call(
        "POST",
        &format!("{gw}/api/generate"),
        &[],
        Some(r#"{"model_id": "m", "inputs": {"pixels": [0.5]}}"#),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("`inference`"),
        "{body}"
    );

    // An HTTP service outside the bus joins with a registration: a registry
    // reached directly over HTTP stands in for one.
    let mut outside = service_node(&router_ep, "registry", "outside", &[dir("r3")]);
    let outside_url = service_url(&mut outside);
    let (status, _, _, body) = call(
        "POST",
        &format!("{gw}/services/register"),
        &[],
        Some(&json!({"name": "models", "url": outside_url, "ttl_s": 30}).to_string()),
    );
    assert_eq!(status, 201, "{body}");
    let (status, served_by, _, body) = call("GET", &format!("{gw}/models/models"), &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served_by.as_deref(),
        Some(outside_url.trim_end_matches('/'))
    );
    for bad in [
        json!({"name": "x"}),
        json!({"name": "x", "url": "ftp://a"}),
        json!({"name": "a/b", "url": "http://a"}),
        json!({"name": "x", "url": "http://a", "ttl_s": 0}),
        json!({"name": "x", "url": "http://a", "colour": 1}),
    ] {
        let (status, _, _, body) = call(
            "POST",
            &format!("{gw}/services/register"),
            &[],
            Some(&bad.to_string()),
        );
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(
            body["error"].is_string() && body["request_id"].is_string(),
            "{body}"
        );
    }
}

#[test]
fn guards_reject_before_the_service_sees_anything() {
    let router_ep = loopback_endpoint();
    let _router = evospike_testkit::router(&router_ep);
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("keys.txt");
    std::fs::write(&keys, "# gateway keys\nkey-from-file\n").unwrap();
    let mut registry = service_node(
        &router_ep,
        "registry",
        "registry",
        &[format!("data_dir={}", data.path().join("r").display())],
    );
    let reg_url = service_url(&mut registry);
    let mut gateway = service_node(
        &router_ep,
        "gateway",
        "gateway",
        &[format!(
            r#"plugins={{"ApiKeyAuth": {{"keys": ["k1"], "keys_file": "{}"}}, "RateLimit": {{"per_second": 1, "burst": 3}}}}"#,
            keys.display()
        )],
    );
    let gw = service_url(&mut gateway);
    let register = |auth: &[(&str, &str)], body: &str| {
        call(
            "POST",
            &format!("{gw}/registry/models/register"),
            auth,
            Some(body),
        )
    };
    let good = r#"{"model_id": "m", "name": "M", "version": "1"}"#;

    // No key, a wrong key: 401, and nothing was registered.
    assert_eq!(register(&[], good).0, 401);
    assert_eq!(register(&[("x-api-key", "k2")], good).0, 401);
    assert_eq!(register(&[("authorization", "Bearer nope")], good).0, 401);
    // A malformed body with a valid key: 400 naming the field, from the gateway.
    let (status, served_by, _, body) = register(
        &[("x-api-key", "k1")],
        r#"{"model_id": "m", "name": 5, "version": "1"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(served_by.is_none(), "rejected at the gateway");
    assert!(body["error"].as_str().unwrap().contains("`name`"), "{body}");
    let (status, _, _, _) = call("GET", &format!("{reg_url}/models/m/versions/1"), &[], None);
    assert_eq!(status, 404, "no rejected request reached the registry");

    // The burst of 3 was spent by the key k1 calls above save one; the next
    // calls from that key get 429 with Retry-After, while the file's key has
    // its own bucket.
    wait_until(Duration::from_secs(10), || {
        register(&[("x-api-key", "k1")], good).0 == 429
    })
    .expect("the burst runs out");
    let (status, _, retry, body) = register(&[("x-api-key", "k1")], good);
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let (status, _, _, body) = register(&[("authorization", "Bearer key-from-file")], good);
    assert!(status == 200 || status == 201, "{status} {body}");
    // The health of the gateway itself is open.
    assert_eq!(call("GET", &format!("{gw}/health"), &[], None).0, 200);
}
