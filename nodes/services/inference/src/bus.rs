//! The inference service on the bus: queryables under
//! `evospike/<ns>/svc/inference/<method>` answering the messages of
//! `schemas/proto/evospike/v1/svc/inference.proto`.
//!
//! | method | request | reply |
//! |---|---|---|
//! | `infer` | `InferRequest` | `InferReply` |
//! | `batch_infer` | `BatchInferRequest` | `BatchInferReply` |
//! | `load_model` | `LoadModelRequest` | `LoadedModel` |
//! | `list_models` | `ListLoadedModelsRequest` | `ListLoadedModelsReply` |
//!
//! Errors are the bus's `ErrorReply`, coded from the HTTP status the same
//! request gets over HTTP (400 `INVALID_ARGUMENT`, 404 `NOT_FOUND`, 503
//! `UNAVAILABLE`, …). The caller's trace id is the request id of the service's
//! logs and of its calls to the registry.

use std::future::Future;
use std::sync::Arc;

use evospike_bus::{Bus, BusError, Call, Declared};
use evospike_http::ApiError;
use evospike_schemas::proto::{
    BatchInferReply, BatchInferRequest, ErrorCode, ErrorReply, InferReply, InferRequest,
    ListLoadedModelsReply, ListLoadedModelsRequest, LoadModelRequest, LoadedModel,
};
use prost::{Message, Name};

use crate::Inference;

/// An HTTP error as the bus's error reply.
pub fn error_reply(err: ApiError) -> ErrorReply {
    let code = match err.status.as_u16() {
        400 | 409 | 413 | 422 => ErrorCode::InvalidArgument,
        404 => ErrorCode::NotFound,
        408 | 504 => ErrorCode::DeadlineExceeded,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    ErrorReply {
        code: code as i32,
        message: err.message,
        ..Default::default()
    }
}

fn serve<Req, Resp, F, Fut>(
    bus: &Bus,
    responder: &str,
    inference: &Arc<Inference>,
    method: &str,
    handler: F,
) -> Result<Declared, BusError>
where
    Req: Message + Name + Default + Send + 'static,
    Resp: Message + Name + 'static,
    F: Fn(Arc<Inference>, Req, Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
{
    let inference = inference.clone();
    let key = bus.keys().service("inference", method)?;
    bus.serve_async::<Req, Resp, _, _>(&key, responder, move |req, call| {
        let pending = handler(inference.clone(), req, call);
        async move { pending.await.map_err(error_reply) }
    })
}

/// Declares the service's queryables; they answer while the handles live.
///
/// # Errors
/// A queryable cannot be declared.
pub fn serve_all(
    bus: &Bus,
    responder: &str,
    inference: &Arc<Inference>,
) -> Result<Vec<Declared>, BusError> {
    Ok(vec![
        serve::<InferRequest, InferReply, _, _>(
            bus,
            responder,
            inference,
            "infer",
            |i, req, call| async move { i.infer(req, &call.trace_id).await },
        )?,
        serve::<BatchInferRequest, BatchInferReply, _, _>(
            bus,
            responder,
            inference,
            "batch_infer",
            |i, req, call| async move { i.batch_infer(req, &call.trace_id).await },
        )?,
        serve::<LoadModelRequest, LoadedModel, _, _>(
            bus,
            responder,
            inference,
            "load_model",
            |i, req, call| async move { i.load_model(req, &call.trace_id).await },
        )?,
        serve::<ListLoadedModelsRequest, ListLoadedModelsReply, _, _>(
            bus,
            responder,
            inference,
            "list_models",
            |i, _, _| async move { Ok(i.list_models()) },
        )?,
    ])
}
