//! Errors: the kit's own ([`HttpError`]) and the one error shape of every
//! response ([`ApiError`]).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Setting up or running the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// An environment variable is set but malformed.
    #[error("{var}=`{value}` is not {expected}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The service could not be offered over the bus.
    #[error("cannot serve HTTP over the bus")]
    Bus(#[from] evospike_bus::BusError),
}

/// An error answer: a status and a message. The kit's middleware turns it into
/// `{"error": message, "request_id": id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// Seconds after which the client may retry (`Retry-After`), for 503s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: it conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 413: the body is too large.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 503 with `Retry-After: seconds`.
    pub fn unavailable(message: impl Into<String>, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 500: something failed on our side; the details go to the log, not the client.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> ApiError {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        tracing::error!(err = %text, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the service log)",
        )
    }
}

/// Reads a JSON request body as `T` (for services, a message of
/// `schemas/proto/evospike/v1/svc/`), naming the field at fault:
/// ``invalid JSON body: `config.epochs`: invalid type: string "ten", expected u32``.
///
/// # Errors
/// 400 for malformed JSON, a missing or unknown field, or a value of the wrong type.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body: `{path}`: {inner}"))
        }
    })?;
    reader
        .end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

impl From<&evospike_bus::BusError> for ApiError {
    /// A failed call to another service over the bus, as this service's answer:
    /// its own 4xx when the callee refused the request, 503 (retry in 1 s) when
    /// nobody answered, 502 when the callee failed.
    fn from(err: &evospike_bus::BusError) -> ApiError {
        use evospike_bus::schemas::proto::ErrorCode;
        use evospike_bus::BusError;
        match err {
            BusError::Remote { code, message, .. } => match code {
                ErrorCode::InvalidArgument => ApiError::bad_request(message.clone()),
                ErrorCode::NotFound => ApiError::not_found(message.clone()),
                ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => {
                    ApiError::unavailable(message.clone(), 1)
                }
                _ => ApiError::new(StatusCode::BAD_GATEWAY, message.clone()),
            },
            BusError::Timeout { key, .. } => {
                ApiError::unavailable(format!("no service answered at {key}"), 1)
            }
            other => {
                tracing::error!(err = %other, "bus call failed");
                ApiError::new(StatusCode::BAD_GATEWAY, format!("bus call failed: {other}"))
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// The message of an error response, left in the response's extensions for the
/// middleware, which writes the body (it knows the request ID).
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorMessage(self.message));
        response
    }
}
