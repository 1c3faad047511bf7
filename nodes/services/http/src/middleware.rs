//! The middleware around every route: request ID, overload guard, metrics, the
//! request's log line, and the error body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::error::ErrorMessage;
use crate::{ApiError, Metrics, ServiceConfig, REQUEST_ID_HEADER};

/// The request's ID (the client's `x-request-id`, or a generated one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(new_id())))
    }
}

/// What the common middleware shares between requests.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    service: &'static str,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(
        service: &'static str,
        config: &ServiceConfig,
        metrics: Arc<Metrics>,
    ) -> Shared {
        Shared {
            service,
            metrics,
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        }
    }
}

/// A fresh request ID: 128 random bits in hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A client's request ID is kept when it is short printable ASCII; anything
/// else is replaced (it ends up in logs and headers).
fn client_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_owned())
}

pub(crate) async fn common(State(shared): State<Shared>, mut req: Request, next: Next) -> Response {
    let id = client_id(&req).unwrap_or_else(new_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let exempt = route == "/health" || route == "/metrics";

    // What the handler logs names the request (see evospike_node's logging).
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    shared.metrics.started();
    // /health and /metrics never take a slot: they answer even when the
    // service is full, and never keep a request out.
    let response = if exempt {
        next.run(req).instrument(span).await
    } else {
        match shared.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let response = next.run(req).instrument(span).await;
                drop(permit);
                response
            }
            Err(_) => ApiError::unavailable(
                format!("{} is overloaded; retry shortly", shared.service),
                1,
            )
            .into_response(),
        }
    };
    let mut response = finish_error(response, &id).await;
    let status = response.status();
    shared
        .metrics
        .finished(&method, &route, status.as_u16(), started.elapsed());
    access_log(&id, &method, &path, status, started.elapsed());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The request's log line: a failed request at `warn` (5xx) or `info` (4xx),
/// a successful one at `debug`. Every request is counted in the metrics; logging
/// each success too would cost more CPU than serving it when a service answers
/// thousands a second (each line is written to stderr, published on the bus and
/// stored by the log consumer). `RUST_LOG=info,evospike_http=debug` logs them all.
fn access_log(id: &str, method: &str, path: &str, status: StatusCode, took: Duration) {
    let ms = took.as_secs_f64() * 1e3;
    let status = status.as_u16();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(request_id = %id, %method, %path, status, ms, "request")
        };
    }
    match status {
        500.. => line!(warn),
        400..=499 => line!(info),
        _ => line!(debug),
    }
}

/// Gives every error response the one error shape, whatever produced it.
async fn finish_error(response: Response, id: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match parts.extensions.remove::<ErrorMessage>() {
        Some(ErrorMessage(message)) => message,
        None => {
            // A rejection or a layer wrote a plain-text body: keep its words.
            // A body already in the error shape (a service's answer passed on
            // by a gateway) keeps its message, not wrapped a second time.
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_lowercase()
            } else {
                shaped_message(&text).unwrap_or(text)
            }
        }
    };
    let body = serde_json::json!({ "error": message, "request_id": id }).to_string();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The message of a body in the one error shape (`{"error": "…", …}`).
fn shaped_message(text: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Object(mut fields) => match fields.remove("error")? {
            serde_json::Value::String(message) => Some(message),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) async fn time_limit(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("no answer within {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::shaped_message;

    #[test]
    fn an_error_shaped_body_keeps_its_message_once() {
        assert_eq!(
            shaped_message(r#"{"error":"no model digits","request_id":"r1"}"#).as_deref(),
            Some("no model digits")
        );
        assert_eq!(shaped_message("plain words"), None);
        assert_eq!(shaped_message(r#"{"error":{"nested":1}}"#), None);
        assert_eq!(shaped_message(r#"["error"]"#), None);
    }
}
