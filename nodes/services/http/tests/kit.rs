//! The kit's shared behaviour, seen from a client: overload answers 503 with
//! `Retry-After`, slow requests time out, unknown routes and rejections get the
//! one error shape, and request IDs round-trip.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use evospike_http::{ApiError, Service, ServiceConfig};
use tokio::sync::Notify;

struct Running {
    rt: tokio::runtime::Runtime,
    base: String,
    release: Arc<Notify>,
}

fn start(config: ServiceConfig) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let routes = Router::new()
        .route(
            "/wait",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    "released"
                }
            }),
        )
        .route(
            "/teapot",
            get(|| async { ApiError::new(axum::http::StatusCode::IM_A_TEAPOT, "short and stout") }),
        );
    let router = Service::new("kit", config.clone())
        .routes(routes)
        .into_router();
    let listener = rt.block_on(evospike_http::bind(&config)).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(evospike_http::serve(
        listener,
        router,
        std::future::pending(),
    ));
    Running { rt, base, release }
}

fn config() -> ServiceConfig {
    let mut config = ServiceConfig::with_port(0);
    config.host = "127.0.0.1".into();
    config
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn json(resp: &mut ureq::http::Response<ureq::Body>) -> serde_json::Value {
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn past_the_in_flight_cap_the_service_answers_503_with_retry_after() {
    let mut config = config();
    config.max_in_flight = 1;
    let server = start(config);
    let url = format!("{}/wait", server.base);
    let busy = std::thread::spawn(move || agent().get(&url).call().unwrap().status().as_u16());
    // Wait until the first request holds the only slot.
    let metrics = format!("{}/metrics", server.base);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = agent()
            .get(&metrics)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        if text.contains("http_requests_in_flight{service=\"kit\"} 2") {
            break; // the waiting request and this /metrics request
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut refused = agent()
        .get(&format!("{}/teapot", server.base))
        .call()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body = json(&mut refused);
    assert!(
        body["error"].as_str().unwrap().contains("overloaded"),
        "{body}"
    );
    // /health still answers while the service is busy.
    assert_eq!(
        agent()
            .get(&format!("{}/health", server.base))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    server.release.notify_one();
    assert_eq!(busy.join().unwrap(), 200);
    drop(server.rt);
}

#[test]
fn a_request_past_the_time_limit_gets_408_in_the_error_shape() {
    let mut config = config();
    config.request_timeout = Duration::from_millis(100);
    let server = start(config);
    let mut resp = agent()
        .get(&format!("{}/wait", server.base))
        .header("x-request-id", "slow-1")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 408);
    let body = json(&mut resp);
    assert_eq!(body["request_id"], "slow-1");
    assert!(
        body["error"].as_str().unwrap().contains("no answer within"),
        "{body}"
    );
}

#[test]
fn every_error_has_the_one_shape_and_ids_are_generated_when_missing() {
    let server = start(config());
    let mut teapot = agent()
        .get(&format!("{}/teapot", server.base))
        .call()
        .unwrap();
    assert_eq!(teapot.status().as_u16(), 418);
    let id = teapot.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "a generated ID: {id}");
    let body = json(&mut teapot);
    assert_eq!(
        body,
        serde_json::json!({"error": "short and stout", "request_id": id})
    );

    let mut missing = agent()
        .get(&format!("{}/nowhere", server.base))
        .call()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(json(&mut missing)["request_id"].is_string());

    let mut wrong_method = agent()
        .post(&format!("{}/health", server.base))
        .send("")
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert!(json(&mut wrong_method)["error"].is_string());
}
