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
//! - **State.** [`store`]: durable tables in one embedded redb file, written in
//!   atomic, fsynced batches.
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

mod config;
mod error;
mod metrics;
mod middleware;
pub mod store;

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
        }
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
        let builtin = Router::new()
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
            .route("/metrics", get(render_metrics))
            .with_state(self.metrics.clone());
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
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}
