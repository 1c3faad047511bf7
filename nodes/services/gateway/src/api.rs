//! The gateway's routes: `/{service}/{path}` to the services, its own
//! `/services…`, and the compatibility endpoint `POST /api/generate`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use evospike_bus::Bus;
use evospike_http::{parse_json, ApiError, RequestId, Service, ServiceConfig};
use evospike_schemas::proto::{
    HttpHeader, HttpRequest, InstanceHealth, ListServicesReply, RegisterServiceReply,
    RegisterServiceRequest, ServicesHealthReply,
};

use crate::directory::{Directory, Target};
use crate::middleware::{self, Chain};

/// Headers that belong to one hop, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
];

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) bus: Bus,
    pub(crate) directory: Arc<Directory>,
    /// How long one call to an instance may take.
    pub(crate) call_timeout: Duration,
}

/// The gateway's HTTP service.
pub(crate) fn service(app: App, config: ServiceConfig, chain: Chain) -> Service {
    let json_limit = config.body_limit;
    let chain = Arc::new(chain);
    // The live spike stream lasts as long as the client watches: no time limit.
    let streams = Router::new()
        .route("/events/spikes", get(crate::dashboard::spikes))
        .layer(axum::middleware::from_fn_with_state(
            chain.clone(),
            middleware::guard,
        ))
        .with_state(app.clone());
    let routes = Router::new()
        .route("/services", get(list_services))
        .route("/services/health", get(services_health))
        .route(
            "/services/register",
            post(register_service).layer(evospike_http::body_limit(json_limit)),
        )
        .route(
            "/api/generate",
            post(generate).layer(evospike_http::body_limit(json_limit)),
        )
        .route(
            "/{service}/{*path}",
            any(route).layer(evospike_http::body_limit(
                evospike_http::bridge::MAX_BUS_BODY,
            )),
        )
        .layer(axum::middleware::from_fn_with_state(
            chain,
            middleware::guard,
        ))
        .with_state(app);
    Service::new("gateway", config)
        .routes(routes.merge(crate::dashboard::assets()))
        .long_routes(streams)
}

/// Keeps the view of the services current: every `every`, rediscovers the
/// instances and asks each for `/health` (within `every`); one that does not
/// answer is skipped until it does again. Requests thus rarely meet a dead
/// instance, and never wait for discovery of a known service.
pub(crate) async fn probe_forever(app: App, every: Duration) {
    loop {
        app.directory.discover().await;
        let probes: Vec<_> = app
            .directory
            .all_targets()
            .into_iter()
            .map(|(_, target)| {
                let app = app.clone();
                tokio::spawn(async move {
                    let request = HttpRequest {
                        method: "GET".into(),
                        uri: "/health".into(),
                        headers: Vec::new(),
                        body: Vec::new(),
                    };
                    let probe = App {
                        call_timeout: every,
                        ..app.clone()
                    };
                    match send(&probe, &target, request, "").await {
                        Ok(r) if r.status().is_success() => app.directory.mark_ok(&target),
                        Ok(r) => {
                            tracing::warn!(instance = target.name(), status = %r.status(), "health probe failed");
                            app.directory.mark_failed(&target);
                        }
                        Err(err) => {
                            tracing::warn!(instance = target.name(), error = %err.message, "health probe failed");
                            app.directory.mark_failed(&target);
                        }
                    }
                })
            })
            .collect();
        for probe in probes {
            let _ = probe.await;
        }
        tokio::time::sleep(every).await;
    }
}

async fn list_services(State(app): State<App>) -> Json<ListServicesReply> {
    Json(ListServicesReply {
        services: app.directory.services().await,
    })
}

async fn register_service(
    State(app): State<App>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: RegisterServiceRequest = parse_json(&body)?;
    check_service_name(&req.name)?;
    let url = req.url.trim_end_matches('/');
    if !url.starts_with("http://") || url.len() <= "http://".len() {
        return Err(ApiError::bad_request(format!(
            "`url` must be an http:// base URL, not `{}`",
            req.url
        )));
    }
    let ttl = req.ttl_s.unwrap_or(30);
    if !(1..=3600).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "`ttl_s` must be 1 to 3600 seconds, not {ttl}"
        )));
    }
    app.directory
        .register(&req.name, url, Duration::from_secs(u64::from(ttl)));
    Ok((
        StatusCode::CREATED,
        Json(RegisterServiceReply {
            name: req.name,
            url: url.to_owned(),
            ttl_s: ttl,
        }),
    ))
}

fn check_service_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{name}` is not a service name (1-64 of letters, digits, `_`, `-`)"
        )))
    }
}

async fn services_health(State(app): State<App>, id: RequestId) -> Json<ServicesHealthReply> {
    let entries = app.directory.services().await;
    let mut checks = Vec::new();
    for entry in &entries {
        for instance in &entry.instances {
            let target = if instance.transport == "bus" {
                Target::Bus(instance.instance.clone())
            } else {
                Target::Http(instance.instance.clone())
            };
            let (app, id, service) = (app.clone(), id.0.clone(), entry.name.clone());
            checks.push(tokio::spawn(async move {
                let started = Instant::now();
                let request = HttpRequest {
                    method: "GET".into(),
                    uri: "/health".into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                };
                let outcome = send(&app, &target, request, &id).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1e3;
                let mut health = InstanceHealth {
                    service,
                    instance: target.name().to_owned(),
                    latency_ms,
                    ..Default::default()
                };
                match outcome {
                    Ok(response) if response.status().is_success() => {
                        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                            .await
                            .unwrap_or_default();
                        health.status = "healthy".into();
                        health.health_json = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .filter(serde_json::Value::is_object)
                            .map(|v| v.to_string())
                            .unwrap_or_default();
                    }
                    Ok(response) => {
                        health.status = "unhealthy".into();
                        health.error = format!("/health answered {}", response.status());
                    }
                    Err(err) => {
                        health.status = "unhealthy".into();
                        health.error = err.message;
                    }
                }
                health
            }));
        }
    }
    let mut services = Vec::with_capacity(checks.len());
    for check in checks {
        if let Ok(health) = check.await {
            services.push(health);
        }
    }
    let status = if services.is_empty() {
        "empty"
    } else if services.iter().all(|s| s.status == "healthy") {
        "healthy"
    } else {
        "degraded"
    };
    Json(ServicesHealthReply {
        status: status.into(),
        services,
    })
}

/// `POST /api/generate`: the pre-gateway endpoint, kept working: it is
/// `POST /inference/infer`.
async fn generate(
    State(app): State<App>,
    id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    forward(
        &app,
        "inference",
        Method::POST,
        "/infer",
        &headers,
        body,
        &id.0,
    )
    .await
}

async fn route(
    State(app): State<App>,
    Path((service, path)): Path<(String, String)>,
    id: RequestId,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    check_service_name(&service)?;
    let target_uri = match uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    forward(&app, &service, method, &target_uri, &headers, body, &id.0).await
}

/// Sends the request to the first instance of `service` that answers; an
/// instance that does not answer is skipped for a while and the next is tried.
async fn forward(
    app: &App,
    service: &str,
    method: Method,
    uri: &str,
    headers: &HeaderMap,
    body: Bytes,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let targets = app.directory.targets(service).await;
    if targets.is_empty() {
        return Err(ApiError::unavailable(
            format!("no healthy instance of service `{service}` is running"),
            1,
        ));
    }
    let request = HttpRequest {
        method: method.as_str().to_owned(),
        uri: uri.to_owned(),
        headers: headers
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                !HOP_BY_HOP.contains(&name) && name != "content-length"
            })
            .filter_map(|(name, value)| {
                Some(HttpHeader {
                    name: name.to_string(),
                    value: value.to_str().ok()?.to_owned(),
                })
            })
            .collect(),
        body: body.to_vec(),
    };
    // A request that may have run on an instance that then did not answer is
    // not sent again unless repeating it is harmless.
    let idempotent = matches!(
        method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let mut last = None;
    let mut request = request;
    for (i, target) in targets.iter().enumerate() {
        // Only a request that may go to another instance after this one is copied.
        let attempt = if i + 1 < targets.len() {
            request.clone()
        } else {
            std::mem::take(&mut request)
        };
        match send(app, target, attempt, request_id).await {
            Ok(mut response) => {
                if let Ok(value) = HeaderValue::from_str(target.name()) {
                    response.headers_mut().insert("x-served-by", value);
                }
                return Ok(response);
            }
            // No answer: the instance is gone or stuck; skip it from now on.
            Err(err) if err.status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(request_id, service, instance = target.name(), error = %err.message, "instance did not answer");
                app.directory.mark_failed(target);
                if !idempotent {
                    return Err(ApiError::unavailable(
                        format!(
                            "instance {} of service `{service}` did not answer; the request was not repeated ({method} may not be safe to repeat)",
                            target.name()
                        ),
                        1,
                    ));
                }
                last = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::unavailable(
        format!(
            "no instance of service `{service}` answered ({} tried; last: {})",
            targets.len(),
            last.map(|e| e.message).unwrap_or_default()
        ),
        1,
    ))
}

async fn send(
    app: &App,
    target: &Target,
    request: HttpRequest,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    match target {
        Target::Bus(node) => {
            evospike_http::bridge::call(&app.bus, node, request, request_id, app.call_timeout).await
        }
        Target::Http(base) => {
            crate::external::call(base, request, request_id, app.call_timeout).await
        }
    }
}
