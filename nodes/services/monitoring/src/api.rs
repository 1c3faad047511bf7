//! The HTTP API (docs/services.md): `POST /metrics`, `GET /metrics`,
//! `GET /metrics/{service_name}`, `GET /alerts`, `GET /dashboard`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use evospike_bus::Bus;
use evospike_http::{parse_json, ApiError, Metrics, Service, ServiceConfig};
use evospike_schemas::proto::{
    AlertsReply, DashboardReply, ListJobsReply, ListJobsRequest, PushMetricsReply,
    PushMetricsRequest, ServiceMetrics,
};

use crate::state::{Monitor, Source};

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) monitor: Arc<Mutex<Monitor>>,
    pub(crate) bus: Bus,
    /// Whether a training service was seen at the last look.
    pub(crate) training: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
}

impl App {
    pub(crate) fn monitor(&self) -> std::sync::MutexGuard<'_, Monitor> {
        self.monitor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The monitoring service's HTTP side.
pub(crate) fn service(
    monitor: Arc<Mutex<Monitor>>,
    bus: Bus,
    training: Arc<std::sync::atomic::AtomicBool>,
    config: ServiceConfig,
) -> Service {
    let json_limit = config.body_limit;
    let service = Service::new("monitoring", config).own_metrics_route();
    let app = App {
        monitor,
        bus,
        training,
        metrics: service.metrics(),
    };
    let routes = Router::new()
        .route(
            "/metrics",
            get(prometheus_text)
                .post(push)
                .layer(evospike_http::body_limit(json_limit)),
        )
        .route("/metrics/{service_name}", get(metrics_of))
        .route("/alerts", get(alerts))
        .route("/dashboard", get(dashboard))
        .with_state(app);
    service.routes(routes)
}

async fn push(State(app): State<App>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: PushMetricsRequest = parse_json(&body)?;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    };
    if !name_ok(&req.service) {
        return Err(ApiError::bad_request(format!(
            "`service` must be 1-128 of letters, digits, `_-.:`, not `{}`",
            req.service
        )));
    }
    for (i, m) in req.metrics.iter().enumerate() {
        if !name_ok(&m.name) {
            return Err(ApiError::bad_request(format!(
                "`metrics[{i}].name` must be 1-128 of letters, digits, `_-.:`, not `{}`",
                m.name
            )));
        }
        if !m.value.is_finite() {
            return Err(ApiError::bad_request(format!(
                "`metrics[{i}].value` must be a finite number"
            )));
        }
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let accepted = u32::try_from(req.metrics.len()).unwrap_or(u32::MAX);
    let mut monitor = app.monitor();
    for m in req.metrics {
        monitor.record(
            &req.service,
            &m.name,
            m.labels.into_iter().collect(),
            m.value,
            now_ns,
            Source::Push,
        );
    }
    Ok(Json(PushMetricsReply { accepted }))
}

async fn prometheus_text(State(app): State<App>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    app.monitor().prometheus(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn metrics_of(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<ServiceMetrics>, ApiError> {
    app.monitor()
        .metrics_of(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no metrics from `{name}` (yet)")))
}

async fn alerts(State(app): State<App>) -> Json<AlertsReply> {
    Json(AlertsReply {
        alerts: app.monitor().alert_list(true),
    })
}

async fn dashboard(State(app): State<App>) -> Json<DashboardReply> {
    let jobs = if app.training.load(std::sync::atomic::Ordering::Relaxed) {
        match app.bus.keys().service("training", "list_jobs") {
            Ok(key) => app
                .bus
                .request::<ListJobsRequest, ListJobsReply>(
                    &key,
                    &ListJobsRequest::default(),
                    Duration::from_millis(500),
                )
                .await
                .map(|r| r.jobs)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    Json(app.monitor().dashboard(jobs, Instant::now()))
}
