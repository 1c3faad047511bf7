//! The gateway's guards: checks every routed request passes, in priority order,
//! before anything reaches a service — authentication (priority 20, "security"),
//! rate limiting (30, "middleware") and request validation (30). Each is switched
//! on by the gateway's parameters; a rejected request never leaves the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use evospike_http::{parse_json, ApiError};
use evospike_schemas::proto::{
    BatchInferRequest, InferRequest, RegisterModelRequest, RegisterServiceRequest, TrainRequest,
};

/// One check on a request.
pub(crate) trait Guard: Send + Sync + std::fmt::Debug {
    /// Lower runs first (security 20, middleware 30).
    fn priority(&self) -> u32;
    /// Whether [`Guard::check`] needs the request body.
    fn needs_body(&self, _parts: &Parts) -> bool {
        false
    }
    /// `Err` rejects the request with that answer.
    fn check(&self, parts: &Parts, body: Option<&[u8]>) -> Result<(), ApiError>;
}

/// The guards in force, in priority order.
#[derive(Debug, Default)]
pub(crate) struct Guards(Vec<Box<dyn Guard>>);

impl Guards {
    pub(crate) fn new(mut guards: Vec<Box<dyn Guard>>) -> Guards {
        guards.sort_by_key(|g| g.priority());
        Guards(guards)
    }
}

/// The axum middleware running the guards.
pub(crate) async fn guard(
    State(guards): State<Arc<Guards>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let (body, bytes) = if guards.0.iter().any(|g| g.needs_body(&parts)) {
        match axum::body::to_bytes(body, evospike_http::bridge::MAX_BUS_BODY).await {
            Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
            Err(e) => {
                return if evospike_http::is_length_limit(&e) {
                    ApiError::too_large("the request body is too large").into_response()
                } else {
                    ApiError::bad_request(format!("the request body was cut off: {e}"))
                        .into_response()
                };
            }
        }
    } else {
        (body, None)
    };
    for g in &guards.0 {
        if let Err(err) = g.check(&parts, bytes.as_deref()) {
            return err.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Authentication: a request must carry one of the configured API keys, as
/// `Authorization: Bearer <key>` or `x-api-key: <key>`; 401 otherwise.
#[derive(Debug)]
pub(crate) struct ApiKeys {
    keys: Vec<String>,
}

impl ApiKeys {
    pub(crate) fn new(keys: Vec<String>) -> ApiKeys {
        ApiKeys { keys }
    }
}

/// The caller's API key, if it sent one: `x-api-key`, `Authorization: Bearer`,
/// or for the dashboard's event stream (a browser's EventSource sends no
/// headers) a `key` query parameter.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get("x-api-key") {
        return value.to_str().ok();
    }
    if let Some(bearer) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    if parts.uri.path() == "/events/spikes" {
        return parts
            .uri
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="));
    }
    None
}

/// Compares without an early exit, so timing does not tell how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Guard for ApiKeys {
    fn priority(&self) -> u32 {
        20
    }

    fn check(&self, parts: &Parts, _: Option<&[u8]>) -> Result<(), ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        match presented_key(parts) {
            None => Err(unauthorized(
                "authentication required: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )),
            Some(key) if self.keys.iter().any(|k| same(k, key)) => Ok(()),
            Some(_) => Err(unauthorized("the API key is not valid")),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Rate limiting: a token bucket per API key, or per client address for callers
/// without one; 429 with `Retry-After` when a bucket is empty.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept at most; full ones are dropped first past it.
const MAX_BUCKETS: usize = 10_000;

impl RateLimit {
    pub(crate) fn new(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn caller(parts: &Parts) -> String {
        if let Some(key) = presented_key(parts) {
            return format!("key:{key}");
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "addr:bus".to_owned(), |c| format!("addr:{}", c.0.ip()))
    }

    /// Takes a token for `caller`, or says how many seconds until one is there.
    fn take(&self, caller: String, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&caller) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(caller).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

impl Guard for RateLimit {
    fn priority(&self) -> u32 {
        30
    }

    fn check(&self, parts: &Parts, _: Option<&[u8]>) -> Result<(), ApiError> {
        self.take(Self::caller(parts), Instant::now())
            .map_err(|seconds| ApiError {
                retry_after: Some(seconds),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "rate limit exceeded ({} requests/s, bursts of {}); retry in {seconds} s",
                        self.per_second, self.burst
                    ),
                )
            })
    }
}

/// Request validation: the JSON body of each known endpoint is read as its
/// protobuf message (the service's own definition) before it is forwarded; a
/// body that does not fit gets 400 naming the field.
#[derive(Debug)]
pub(crate) struct Validation;

type Check = fn(&[u8]) -> Result<(), ApiError>;

fn as_message<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(), ApiError> {
    parse_json::<T>(body).map(drop)
}

impl Validation {
    fn schema(parts: &Parts) -> Option<Check> {
        if parts.method != Method::POST {
            return None;
        }
        Some(match parts.uri.path() {
            "/inference/infer" | "/api/generate" => as_message::<InferRequest>,
            "/inference/batch_infer" => as_message::<BatchInferRequest>,
            "/training/train" => as_message::<TrainRequest>,
            "/registry/models/register" => as_message::<RegisterModelRequest>,
            "/services/register" => as_message::<RegisterServiceRequest>,
            _ => return None,
        })
    }
}

impl Guard for Validation {
    fn priority(&self) -> u32 {
        30
    }

    fn needs_body(&self, parts: &Parts) -> bool {
        Self::schema(parts).is_some()
    }

    fn check(&self, parts: &Parts, body: Option<&[u8]>) -> Result<(), ApiError> {
        match (Self::schema(parts), body) {
            (Some(check), Some(body)) => check(body),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn api_keys_accept_bearer_or_header_and_nothing_else() {
        let auth = ApiKeys::new(vec!["s3cret".into()]);
        let ok = parts(Method::GET, "/x/y", &[("authorization", "Bearer s3cret")]);
        assert!(auth.check(&ok, None).is_ok());
        let ok = parts(Method::GET, "/x/y", &[("x-api-key", "s3cret")]);
        assert!(auth.check(&ok, None).is_ok());
        for bad in [
            parts(Method::GET, "/x/y", &[]),
            parts(Method::GET, "/x/y", &[("x-api-key", "s3cre")]),
            parts(Method::GET, "/x/y", &[("authorization", "Basic s3cret")]),
        ] {
            assert_eq!(
                auth.check(&bad, None).unwrap_err().status,
                StatusCode::UNAUTHORIZED
            );
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let limit = RateLimit::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limit.take("a".into(), t0).is_ok());
        }
        assert_eq!(limit.take("a".into(), t0), Err(1));
        // Another caller has its own bucket.
        assert!(limit.take("b".into(), t0).is_ok());
        // Half a second at 2/s is one token.
        assert!(limit
            .take("a".into(), t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limit
            .take("a".into(), t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let p = parts(Method::POST, "/training/train", &[]);
        assert!(Validation.needs_body(&p));
        let err = Validation
            .check(&p, Some(br#"{"model_type": "classifier", "dataset_path": "x", "config": {"epochs": "ten"}}"#))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("config.epochs"), "{}", err.message);
        let other = parts(Method::GET, "/training/jobs", &[]);
        assert!(!Validation.needs_body(&other));
    }
}
