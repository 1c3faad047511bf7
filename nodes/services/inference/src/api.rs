//! The HTTP API (docs/services.md): `POST /infer`, `POST /batch_infer`,
//! `POST /load_model/{model_id}` and `GET /models`, as the design names them,
//! their bodies the messages of `schemas/proto/evospike/v1/svc/inference.proto`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use evospike_http::{parse_json, ApiError, RequestId, Service, ServiceConfig};
use evospike_schemas::proto::{BatchInferRequest, InferRequest, LoadModelRequest};

use crate::Inference;

/// The inference service's HTTP service: routes, body limits, and the shared kit
/// around them. Its `/metrics` carry the service's own counters when
/// `inference` was built with this service's [`Service::metrics`] — use
/// [`service_with`] for that.
pub fn service(inference: Arc<Inference>, config: ServiceConfig) -> Service {
    let limit = config.body_limit;
    Service::new("inference", config).routes(routes(inference, limit))
}

/// The HTTP service, with `build` making the [`Inference`] from the service's
/// metrics (so that `/metrics` shows the cache and queue counters).
pub fn service_with(
    config: ServiceConfig,
    build: impl FnOnce(Arc<evospike_http::Metrics>) -> Arc<Inference>,
) -> (Service, Arc<Inference>) {
    let limit = config.body_limit;
    let service = Service::new("inference", config);
    let inference = build(service.metrics());
    (service.routes(routes(inference.clone(), limit)), inference)
}

/// The routes, each JSON body limited to `limit` bytes (413 beyond).
pub fn routes(inference: Arc<Inference>, limit: usize) -> Router {
    Router::new()
        .route(
            "/infer",
            post(infer).layer(evospike_http::body_limit(limit)),
        )
        .route(
            "/batch_infer",
            post(batch_infer).layer(evospike_http::body_limit(limit)),
        )
        .route(
            "/load_model/{model_id}",
            post(load_model).layer(evospike_http::body_limit(limit)),
        )
        .route("/models", get(models))
        .with_state(inference)
}

async fn infer(
    State(inference): State<Arc<Inference>>,
    id: RequestId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: InferRequest = parse_json(&body)?;
    Ok(Json(inference.infer(req, &id.0).await?).into_response())
}

async fn batch_infer(
    State(inference): State<Arc<Inference>>,
    id: RequestId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: BatchInferRequest = parse_json(&body)?;
    Ok(Json(inference.batch_infer(req, &id.0).await?).into_response())
}

/// The body is optional: nothing, or an object that may name a `version` or an
/// `alias` (and the path's `model_id`, which it must then equal).
async fn load_model(
    State(inference): State<Arc<Inference>>,
    Path(model_id): Path<String>,
    id: RequestId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        LoadModelRequest {
            model_id,
            ..Default::default()
        }
    } else {
        let mut value: serde_json::Value = parse_json(&body)?;
        let Some(object) = value.as_object_mut() else {
            return Err(ApiError::bad_request(
                "invalid JSON body: expected an object (or no body)",
            ));
        };
        match object.get("model_id") {
            None => {
                object.insert("model_id".into(), model_id.into());
            }
            Some(serde_json::Value::String(given)) if *given == model_id => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "the body's `model_id` ({other}) differs from the path's `{model_id}`"
                )))
            }
        }
        parse_json(value.to_string().as_bytes())?
    };
    Ok(Json(inference.load_model(req, &id.0).await?).into_response())
}

async fn models(State(inference): State<Arc<Inference>>) -> Response {
    Json(inference.list_models()).into_response()
}
