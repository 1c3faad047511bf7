//! Query/reply with protobuf envelopes: how services are called.
//!
//! A caller sends a [`RequestEnvelope`] carrying the encoded request; the service
//! answers with a [`ReplyEnvelope`] holding either the encoded response or an
//! [`ErrorReply`]. Both sides check the wire version and the body's type name, so
//! a mismatch is a clear error instead of a misread message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evospike_schemas::proto::{
    self, reply_envelope, ErrorCode, ErrorReply, ReplyEnvelope, RequestEnvelope,
};
use evospike_schemas::WIRE_VERSION;
use prost::{Message, Name};
use tracing::Instrument as _;

use crate::bus::Declared;
use crate::transport::Query;
use crate::{Bus, BusError};

fn reply_bytes(
    request_id: u64,
    responder: &str,
    result: Result<Vec<u8>, ErrorReply>,
    body_type: String,
) -> Vec<u8> {
    let result = match result {
        Ok(body) => reply_envelope::Result::Body(body),
        Err(error) => reply_envelope::Result::Error(error),
    };
    ReplyEnvelope {
        wire_version: u32::from(WIRE_VERSION),
        request_id,
        responder: responder.to_string(),
        result: Some(result),
        body_type,
    }
    .encode_to_vec()
}

/// Who called a service, as a handler served with [`Bus::serve_async`] sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The caller's node name (empty when it gave none).
    pub caller: String,
    /// The originating request's ID (an HTTP `x-request-id`), empty when none.
    pub trace_id: String,
}

/// The span a served call runs in: what it logs names the originating request
/// ID and the caller (no span when the call carries no request ID).
fn call_span(call: &Call) -> tracing::Span {
    if call.trace_id.is_empty() {
        tracing::Span::none()
    } else {
        tracing::info_span!("call", request_id = %call.trace_id, caller = %call.caller)
    }
}

/// Decodes a query's envelope and request: the request and its call context, or
/// the error reply (with the request ID, 0 when the envelope was unreadable).
fn open_request<Req>(query: &Query) -> Result<(u64, Req, Call), (u64, ErrorReply)>
where
    Req: Message + Name + Default,
{
    let invalid = |message: String| ErrorReply {
        code: ErrorCode::InvalidArgument as i32,
        message,
        key: query.key().to_string(),
        ..Default::default()
    };
    let envelope = match proto::decode::<RequestEnvelope>(query.payload()) {
        Ok(envelope) => envelope,
        Err(err) => return Err((0, invalid(err.to_string()))),
    };
    let id = envelope.request_id;
    if envelope.wire_version != u32::from(WIRE_VERSION) {
        let error = ErrorReply {
            code: ErrorCode::WireVersion as i32,
            message: format!(
                "request has wire version {}, service reads {WIRE_VERSION}",
                envelope.wire_version
            ),
            key: query.key().to_string(),
            ..Default::default()
        };
        return Err((id, error));
    }
    if envelope.body_type != Req::full_name() {
        return Err((
            id,
            invalid(format!(
                "expected a {} request, got {:?}",
                Req::full_name(),
                envelope.body_type
            )),
        ));
    }
    match proto::decode::<Req>(&envelope.body) {
        Ok(request) => Ok((
            id,
            request,
            Call {
                caller: envelope.caller,
                trace_id: envelope.trace_id,
            },
        )),
        Err(err) => Err((id, invalid(err.to_string()))),
    }
}

fn answer<Resp: Message + Name>(
    query: Query,
    responder: &str,
    id: u64,
    result: Result<Resp, ErrorReply>,
) {
    // A refused call is logged like a failed HTTP request (in the call's span:
    // with the originating request ID); a served one is only answered.
    if let Err(error) = &result {
        tracing::info!(
            service = %query.key(),
            code = ?error.code(),
            error = %error.message,
            "call failed"
        );
    }
    let bytes = reply_bytes(
        id,
        responder,
        result.map(|response| response.encode_to_vec()),
        Resp::full_name(),
    );
    if let Err(err) = query.reply(bytes) {
        tracing::warn!(%err, "could not send a reply");
    }
}

impl Bus {
    /// Serves `key` (usually from [`KeySpace::service`](crate::KeySpace::service)):
    /// every request is decoded as `Req` and answered with `handler`'s result.
    /// Malformed requests are answered with an `INVALID_ARGUMENT` error reply; the
    /// handler never sees them.
    pub fn serve<Req, Resp, F>(
        &self,
        key: &str,
        responder: &str,
        handler: F,
    ) -> Result<Declared, BusError>
    where
        Req: Message + Name + Default + 'static,
        Resp: Message + Name + 'static,
        F: Fn(Req) -> Result<Resp, ErrorReply> + Send + Sync + 'static,
    {
        let responder = responder.to_string();
        let queryable = self.transport().declare_queryable(
            key,
            Arc::new(move |query: Query| match open_request::<Req>(&query) {
                Ok((id, request, call)) => {
                    let _span = call_span(&call).entered();
                    answer(query, &responder, id, handler(request));
                }
                Err((id, error)) => answer::<Resp>(query, &responder, id, Err(error)),
            }),
        )?;
        Ok(Declared::new(key.to_string(), queryable))
    }

    /// Like [`Bus::serve`], for handlers that wait (on a queue, on I/O): each
    /// request runs as a task on the Tokio runtime this is called from, and its
    /// reply is sent when the task ends. The handler also gets the [`Call`]: who
    /// asked, and the originating request ID for its logs.
    ///
    /// # Errors
    /// [`BusError::Query`] when called outside a Tokio runtime; a queryable that
    /// cannot be declared.
    pub fn serve_async<Req, Resp, F, Fut>(
        &self,
        key: &str,
        responder: &str,
        handler: F,
    ) -> Result<Declared, BusError>
    where
        Req: Message + Name + Default + Send + 'static,
        Resp: Message + Name + 'static,
        F: Fn(Req, Call) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Resp, ErrorReply>> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| BusError::Query {
            key: key.to_string(),
            reason: format!("serving asynchronously needs a Tokio runtime: {e}"),
        })?;
        let responder: Arc<str> = Arc::from(responder);
        let queryable = self.transport().declare_queryable(
            key,
            Arc::new(move |query: Query| match open_request::<Req>(&query) {
                Ok((id, request, call)) => {
                    let span = call_span(&call);
                    let pending = span.in_scope(|| handler(request, call));
                    let responder = responder.clone();
                    runtime.spawn(
                        async move {
                            answer(query, &responder, id, pending.await);
                        }
                        .instrument(span),
                    );
                }
                Err((id, error)) => answer::<Resp>(query, &responder, id, Err(error)),
            }),
        )?;
        Ok(Declared::new(key.to_string(), queryable))
    }

    /// Sends `request` to every service matching `key_expr` (wildcards allowed, e.g.
    /// every node's health queryable) and returns each reply that arrived within
    /// `timeout`, decoded, with its responder's name; an empty list when nobody answered.
    pub async fn request_all<Req, Resp>(
        &self,
        key_expr: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Vec<(String, Result<Resp, BusError>)>, BusError>
    where
        Req: Message + Name,
        Resp: Message + Name + Default,
    {
        let replies = self
            .transport()
            .get(
                key_expr,
                envelope(request, timeout, "").encode_to_vec(),
                timeout,
            )
            .await?;
        Ok(replies
            .iter()
            .map(|bytes| match proto::decode::<ReplyEnvelope>(bytes) {
                Ok(reply) => (reply.responder.clone(), open_reply::<Resp>(key_expr, reply)),
                Err(source) => (
                    String::new(),
                    Err(BusError::Payload {
                        key: key_expr.to_string(),
                        source,
                    }),
                ),
            })
            .collect())
    }

    /// Calls the service at `key` with `request` and waits at most `timeout` for its
    /// reply, asking again while no service is known there yet (it may be starting). Fails with [`BusError::Timeout`] naming the key when nobody answers,
    /// and with [`BusError::Remote`] when the service answers with an error.
    pub async fn request<Req, Resp>(
        &self,
        key: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, BusError>
    where
        Req: Message + Name,
        Resp: Message + Name + Default,
    {
        self.request_traced(key, request, timeout, "").await
    }

    /// [`Bus::request`] on behalf of an originating request: `trace_id` (an HTTP
    /// `x-request-id`) travels in the envelope to the service's [`Call`].
    pub async fn request_traced<Req, Resp>(
        &self,
        key: &str,
        request: &Req,
        timeout: Duration,
        trace_id: &str,
    ) -> Result<Resp, BusError>
    where
        Req: Message + Name,
        Resp: Message + Name + Default,
    {
        let bytes = envelope(request, timeout, trace_id).encode_to_vec();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        // A query that no known queryable matches returns at once; the service may
        // still be starting or not yet discovered, so ask again until the deadline.
        let first = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut replies = self.transport().get(key, bytes.clone(), left).await?;
            if !replies.is_empty() {
                break replies.swap_remove(0);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BusError::Timeout {
                    key: key.to_string(),
                    timeout,
                });
            }
            tokio::time::sleep(
                pause.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let reply = proto::decode::<ReplyEnvelope>(&first).map_err(|source| BusError::Payload {
            key: key.to_string(),
            source,
        })?;
        open_reply(key, reply)
    }
}

fn envelope<Req: Message + Name>(
    request: &Req,
    timeout: Duration,
    trace_id: &str,
) -> RequestEnvelope {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    RequestEnvelope {
        wire_version: u32::from(WIRE_VERSION),
        request_id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        caller: String::new(),
        body_type: Req::full_name(),
        body: request.encode_to_vec(),
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        trace_id: trace_id.to_string(),
    }
}

fn open_reply<Resp: Message + Name + Default>(
    key: &str,
    reply: ReplyEnvelope,
) -> Result<Resp, BusError> {
    match reply.result {
        Some(reply_envelope::Result::Body(body)) => {
            proto::decode::<Resp>(&body).map_err(|source| BusError::Payload {
                key: key.to_string(),
                source,
            })
        }
        Some(reply_envelope::Result::Error(error)) => Err(BusError::Remote {
            key: key.to_string(),
            code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
            message: error.message,
        }),
        None => Err(BusError::Query {
            key: key.to_string(),
            reason: "reply has neither body nor error".into(),
        }),
    }
}
