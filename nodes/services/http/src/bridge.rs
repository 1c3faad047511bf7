//! A service's HTTP API over the bus.
//!
//! [`serve_on_bus`] answers `evospike/<ns>/http/<node>` by running each
//! [`HttpRequest`] through the service's own router — the same routes, limits,
//! error shape and request IDs as over TCP — and announces the node as an
//! instance of its service (`@svc/<service>/<node>`), which is how the gateway
//! finds it. [`call`] is the other end: one request to one instance.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::Router;
use evospike_bus::schemas::proto::{ErrorCode, ErrorReply, HttpHeader, HttpRequest, HttpResponse};
use evospike_bus::{Bus, BusError, Call, Declared};
use tower::ServiceExt as _;

use crate::{ApiError, REQUEST_ID_HEADER};

/// The largest response body carried back over the bus (64 MiB); a larger one
/// is answered with 502 saying so (download such files from the service directly).
pub const MAX_BUS_BODY: usize = 64 << 20;

/// What keeps a service reachable over the bus: drop it to withdraw.
#[derive(Debug)]
pub struct BusHttp {
    _queryable: Declared,
    _token: Declared,
}

/// Serves `router` (a service's finished router) at `evospike/<ns>/http/<node>`
/// and announces `node` as an instance of `service`.
///
/// # Errors
/// A key is invalid, or the queryable or token cannot be declared.
pub fn serve_on_bus(
    bus: &Bus,
    service: &str,
    node: &str,
    router: Router,
) -> Result<BusHttp, BusError> {
    let key = bus.keys().http(node)?;
    let queryable =
        bus.serve_async::<HttpRequest, HttpResponse, _, _>(&key, node, move |request, call| {
            let router = router.clone();
            async move { handle(router, request, call).await }
        })?;
    let token = bus.announce_service(service, node)?;
    Ok(BusHttp {
        _queryable: queryable,
        _token: token,
    })
}

fn invalid(message: String) -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidArgument, message)
}

async fn handle(router: Router, msg: HttpRequest, call: Call) -> Result<HttpResponse, ErrorReply> {
    let method = Method::from_bytes(msg.method.as_bytes())
        .map_err(|_| invalid(format!("`{}` is not an HTTP method", msg.method)))?;
    let uri: Uri = msg
        .uri
        .parse()
        .map_err(|e| invalid(format!("`{}` is not a request URI: {e}", msg.uri)))?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(msg.body))
        .map_err(|e| invalid(format!("malformed request: {e}")))?;
    for header in msg.headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not a header name", header.name)))?;
        let value = HeaderValue::from_str(&header.value)
            .map_err(|_| invalid(format!("header {} has a malformed value", header.name)))?;
        request.headers_mut().append(name, value);
    }
    if !call.trace_id.is_empty() && !request.headers().contains_key(REQUEST_ID_HEADER) {
        if let Ok(value) = HeaderValue::from_str(&call.trace_id) {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let (status, body) = match axum::body::to_bytes(body, MAX_BUS_BODY).await {
        Ok(bytes) => (parts.status, bytes.to_vec()),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            serde_json::json!({
                "error": format!("the response is too large to carry over the bus ({e}); ask the service directly"),
                "request_id": call.trace_id,
            })
            .to_string()
            .into_bytes(),
        ),
    };
    Ok(HttpResponse {
        status: u32::from(status.as_u16()),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != axum::http::header::CONTENT_LENGTH)
            .filter_map(|(name, value)| {
                Some(HttpHeader {
                    name: name.to_string(),
                    value: value.to_str().ok()?.to_owned(),
                })
            })
            .collect(),
        body,
    })
}

/// Sends `request` to node `node`'s HTTP API over the bus and returns its
/// response; `request_id` travels as the bus call's trace id.
///
/// # Errors
/// The node did not answer within `timeout` (503) or refused the request (the
/// bus error as an [`ApiError`]).
pub async fn call(
    bus: &Bus,
    node: &str,
    request: HttpRequest,
    request_id: &str,
    timeout: Duration,
) -> Result<Response<Body>, ApiError> {
    let key = bus
        .keys()
        .http(node)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let reply: HttpResponse = bus
        .request_traced(&key, &request, timeout, request_id)
        .await
        .map_err(|e| ApiError::from(&e))?;
    let status = u16::try_from(reply.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{node} answered with status {}", reply.status),
            )
        })?;
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = status;
    for header in reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}
