//! Calls to HTTP services registered with `POST /services/register` (outside
//! the bus), made with a blocking client off the async threads.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use evospike_http::{ApiError, REQUEST_ID_HEADER};
use evospike_schemas::proto::HttpRequest;

/// The largest response body taken from an HTTP service.
const MAX_BODY: u64 = 64 << 20;

/// Sends `request` to the service at `base` (`http://host:port`).
///
/// # Errors
/// 503 when the service cannot be reached or does not answer in `timeout`.
pub(crate) async fn call(
    base: &str,
    request: HttpRequest,
    request_id: &str,
    timeout: Duration,
) -> Result<Response<Body>, ApiError> {
    let url = format!("{base}{}", request.uri);
    let request_id = request_id.to_owned();
    let result =
        tokio::task::spawn_blocking(move || blocking_call(&url, request, &request_id, timeout))
            .await
            .map_err(|e| ApiError::internal(&e))?;
    result.map_err(|message| ApiError::unavailable(message, 1))
}

fn blocking_call(
    url: &str,
    request: HttpRequest,
    request_id: &str,
    timeout: Duration,
) -> Result<Response<Body>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(url);
    for header in &request.headers {
        builder = builder.header(header.name.as_str(), header.value.as_str());
    }
    if !request.headers.iter().any(|h| h.name == REQUEST_ID_HEADER) {
        builder = builder.header(REQUEST_ID_HEADER, request_id);
    }
    let outgoing = builder
        .body(request.body)
        .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
    let mut incoming = agent
        .run(outgoing)
        .map_err(|e| format!("{url} did not answer: {e}"))?;
    let status = StatusCode::from_u16(incoming.status().as_u16())
        .map_err(|e| format!("{url} answered a bad status: {e}"))?;
    let headers: Vec<(HeaderName, HeaderValue)> = incoming
        .headers()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "connection" | "transfer-encoding" | "content-length" | "keep-alive"
            )
        })
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
                HeaderValue::from_bytes(value.as_bytes()).ok()?,
            ))
        })
        .collect();
    let body = incoming
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("reading the answer of {url} failed: {e}"))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    Ok(response)
}
