//! The HTTP server kit every evospike service shares.
//!
//! A service (registry, inference, training, …) writes its handlers as plain axum
//! routes and hands them to a [`Service`], which wraps them in the behaviour all
//! services have in common:
//!
//! - **Request IDs.** Every request gets an `x-request-id` — the client's when it
//!   sent one, a fresh one otherwise. Handlers read it with the [`RequestId`]
//!   extractor; it is echoed in every response and named in the request's log line.
//! - **One error shape.** Every 4xx/5xx response body is
//!   `{"error": "<what went wrong>", "request_id": "<id>"}`, whoever produced it: a
//!   handler returning an [`ApiError`], a body limit (413), an unknown route (404),
//!   a timeout (408) or an overload (503 with `Retry-After`).
//! - **Limits.** A request body limit per route ([`body_limit`]), a time limit for
//!   ordinary routes (long-running routes such as uploads opt out), and a cap on
//!   requests in flight past which the service answers 503 at once.
//! - **`GET /health`** and **`GET /metrics`** (Prometheus text format).
//! - **The same API over the bus** ([`bridge`]): the gateway reaches a service
//!   instance at `evospike/<ns>/http/<node>` through the very same router.
//!
//! ```no_run
//! use axum::routing::get;
//! use evospike_http::{Service, ServiceConfig};
//!
//! # async fn demo() -> Result<(), evospike_http::HttpError> {
//! let config = ServiceConfig::from_env(8003)?;
//! let service = Service::new("registry", config.clone())
//!     .routes(axum::Router::new().route("/hello", get(|| async { "hi" })));
//! let listener = evospike_http::bind(&config).await?;
//! evospike_http::serve(listener, service.into_router(), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod bridge;
pub mod child;
mod config;
mod error;
mod metrics;
mod middleware;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub use config::ServiceConfig;
pub use error::{parse_json, ApiError, HttpError};
pub use metrics::Metrics;
pub use middleware::RequestId;

/// The name of the request-ID header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A layer that limits a route's request body to `bytes` (413 beyond it).
///
/// The limit holds for bodies of any kind, streamed ones included: a declared
/// `Content-Length` over it is refused before the handler runs, and a body that
/// grows past it makes the handler's stream fail with
/// [`http_body_util::LengthLimitError`] (see [`is_length_limit`]).
pub fn body_limit(bytes: usize) -> tower_http::limit::RequestBodyLimitLayer {
    tower_http::limit::RequestBodyLimitLayer::new(bytes)
}

/// Whether `err` (from reading a request body) is the body limit being hit.
pub fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A service's HTTP side: its routes plus the shared behaviour (module docs).
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    config: ServiceConfig,
    timed: Router,
    untimed: Router,
    metrics: Arc<Metrics>,
    own_metrics_route: bool,
}

impl Service {
    /// A service called `name` (as `/health` and the metrics report it).
    pub fn new(name: &'static str, config: ServiceConfig) -> Service {
        Service {
            name,
            config,
            timed: Router::new(),
            untimed: Router::new(),
            metrics: Arc::new(Metrics::new(name)),
            own_metrics_route: false,
        }
    }

    /// The service answers `/metrics` itself (monitoring serves every node's
    /// metrics there, its own included via [`Metrics::render`]).
    pub fn own_metrics_route(mut self) -> Service {
        self.own_metrics_route = true;
        self
    }

    /// Adds routes that must answer within the configured request timeout.
    pub fn routes(mut self, routes: Router) -> Service {
        self.timed = self.timed.merge(routes);
        self
    }

    /// Adds routes exempt from the request timeout (uploads, which take as long
    /// as the client needs to send; such a route must end a stalled client itself,
    /// as the registry's upload does).
    pub fn long_routes(mut self, routes: Router) -> Service {
        self.untimed = self.untimed.merge(routes);
        self
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The service's metrics, to add its own gauges and counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The finished router: the service's routes, `/health`, `/metrics`, and the
    /// shared middleware around all of them.
    pub fn into_router(self) -> Router {
        let state = middleware::Shared::new(self.name, &self.config, self.metrics.clone());
        let started = Instant::now();
        let name = self.name;
        let mut builtin = Router::new()
            .route(
                "/health",
                get(move || async move {
                    axum::Json(serde_json::json!({
                        "status": "healthy",
                        "service": name,
                        "uptime_s": started.elapsed().as_secs_f64(),
                    }))
                }),
            )
            .with_state(self.metrics.clone());
        if !self.own_metrics_route {
            builtin = builtin.route(
                "/metrics",
                get(render_metrics).with_state(self.metrics.clone()),
            );
        }
        let timeout = self.config.request_timeout;
        let timed = self
            .timed
            .layer(axum::middleware::from_fn(move |req, next| {
                middleware::time_limit(timeout, req, next)
            }));
        Router::new()
            .merge(builtin)
            .merge(timed)
            .merge(self.untimed)
            .fallback(|| async { ApiError::not_found("no such endpoint") })
            .layer(axum::middleware::from_fn_with_state(
                state,
                middleware::common,
            ))
    }
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// Binds the service's listener on `SERVICE_HOST:SERVICE_PORT`.
///
/// # Errors
/// [`HttpError::Bind`] naming the address.
pub async fn bind(config: &ServiceConfig) -> Result<tokio::net::TcpListener, HttpError> {
    let addr = config.addr();
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// [`bind`], and the address it got (the port chosen when `SERVICE_PORT=0`).
///
/// # Errors
/// [`HttpError::Bind`] when the address is taken, not local, or unreadable.
pub async fn listen(
    config: &ServiceConfig,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), HttpError> {
    let listener = bind(config).await?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: config.addr(),
        source,
    })?;
    Ok((listener, addr))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
///
/// # Errors
/// [`HttpError::Serve`] when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(HttpError::Serve)
}

/// Serves `service` on `listener` and over the bus — as an instance of the
/// service on node `node` ([`bridge::serve_on_bus`]) — until `shutdown`
/// completes: what every service node does once it is set up.
///
/// # Errors
/// [`HttpError::Bus`] when the bus side cannot be declared, [`HttpError::Serve`]
/// when the server fails.
pub async fn serve_service(
    bus: &evospike_bus::Bus,
    node: &str,
    service: Service,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let name = service.name();
    let router = service.into_router();
    let _on_bus = bridge::serve_on_bus(bus, name, node, router.clone())?;
    serve(listener, router, shutdown).await
}
