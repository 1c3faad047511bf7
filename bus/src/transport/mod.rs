//! The COMMUNICATION contract: what a transport must do for the [`Bus`](crate::Bus).
//!
//! A transport moves bytes: it declares publishers (which lend out send buffers,
//! ideally shared memory, so senders serialize in place), subscribers and
//! queryables (called back with what arrives), answers queries, and keeps
//! liveliness tokens. Everything typed — spike tensors, protobuf messages,
//! envelopes, key layout, copy accounting — lives above it in the bus, so every
//! transport behaves the same. Two implementations ship: [`zenoh`] (default) and
//! [`local`] (in-process). Both pass the same contract suite (`bus/tests/contract.rs`).

pub(crate) mod local;
mod shm_pool;
pub(crate) mod zenoh;

use std::fmt::Debug;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rkyv::util::AlignedVec;

use crate::BusError;

/// A boxed future, for the transport trait's few async operations (none is on the
/// data path).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Heap buffers are aligned like shared-memory ones so local payloads can be read in place.
pub(crate) const BUF_ALIGN: usize = evospike_schemas::ALIGNMENT;

/// A buffer lent by a publisher, written by the caller, then sent with
/// [`RawPublisher::put`].
pub enum SendBuf {
    /// Zenoh shared memory: sent by reference to processes on the same host.
    Shm(::zenoh::shm::ZShmMut),
    /// An aligned heap buffer (local transport: receivers read it in place).
    Heap(AlignedVec<BUF_ALIGN>),
    /// A plain heap buffer (Zenoh without shared memory: the bytes are copied onto
    /// the network anyway, and Zenoh takes a `Vec` without another copy).
    Vec(Vec<u8>),
}

impl Debug for SendBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SendBuf::Shm(_) => "Shm",
            SendBuf::Heap(_) => "Heap",
            SendBuf::Vec(_) => "Vec",
        };
        write!(f, "SendBuf::{kind}({} bytes)", self.len())
    }
}

impl SendBuf {
    pub(crate) fn heap(len: usize) -> SendBuf {
        let mut buf = AlignedVec::<BUF_ALIGN>::with_capacity(len);
        buf.resize(len, 0);
        SendBuf::Heap(buf)
    }

    /// Whether the buffer lives in shared memory.
    pub fn is_shm(&self) -> bool {
        matches!(self, SendBuf::Shm(_))
    }
}

impl Deref for SendBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SendBuf::Shm(buf) => buf,
            SendBuf::Heap(buf) => buf,
            SendBuf::Vec(buf) => buf,
        }
    }
}

impl DerefMut for SendBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            SendBuf::Shm(buf) => buf,
            SendBuf::Heap(buf) => buf,
            SendBuf::Vec(buf) => buf,
        }
    }
}

/// A received sample: a key and a payload, as the transport delivered it.
#[derive(Debug, Clone)]
// Boxing the Zenoh sample would allocate once per message on the data path.
#[allow(clippy::large_enum_variant)]
pub enum Received {
    /// From Zenoh (the payload may be shared memory or network buffers).
    Zenoh(::zenoh::sample::Sample),
    /// From the local transport (shared with every local subscriber, never copied).
    Local {
        /// Key the sample was published on.
        key: Arc<str>,
        /// The payload.
        payload: Arc<AlignedVec<BUF_ALIGN>>,
    },
}

impl Received {
    /// Key the sample was published on.
    pub fn key(&self) -> &str {
        match self {
            Received::Zenoh(sample) => sample.key_expr().as_str(),
            Received::Local { key, .. } => key,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Received::Zenoh(sample) => sample.payload().len(),
            Received::Local { payload, .. } => payload.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as one slice, if it is one contiguous buffer (no copy).
    pub fn contiguous(&self) -> Option<&[u8]> {
        match self {
            Received::Zenoh(sample) => {
                let mut slices = sample.payload().slices();
                match (slices.next(), slices.next()) {
                    (Some(only), None) => Some(only),
                    (None, _) => Some(&[]),
                    _ => None,
                }
            }
            Received::Local { payload, .. } => Some(payload),
        }
    }

    /// Copies the payload into `out` (cleared first), slice by slice.
    pub fn copy_into(&self, out: &mut AlignedVec<BUF_ALIGN>) {
        out.clear();
        match self {
            Received::Zenoh(sample) => {
                for slice in sample.payload().slices() {
                    out.extend_from_slice(slice);
                }
            }
            Received::Local { payload, .. } => out.extend_from_slice(payload),
        }
    }

    /// Whether the payload arrived in shared memory.
    pub fn is_shm(&self) -> bool {
        match self {
            Received::Zenoh(sample) => sample.payload().as_shm().is_some(),
            Received::Local { .. } => false,
        }
    }
}

/// Called by a transport for every sample a subscription receives. It may block
/// (a full queue pushes back on the sender); it must not panic.
pub type SampleHandler = Arc<dyn Fn(Received) + Send + Sync>;

/// A query as a queryable sees it; answer it with [`Query::reply`]. Dropping it
/// without replying tells the caller this queryable has nothing to say.
pub struct Query {
    key: String,
    payload: Vec<u8>,
    responder: Box<dyn FnOnce(Vec<u8>) -> Result<(), BusError> + Send>,
}

impl Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("key", &self.key)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Query {
    /// Builds a query; transports pass how a reply is delivered.
    pub fn new(
        key: String,
        payload: Vec<u8>,
        responder: impl FnOnce(Vec<u8>) -> Result<(), BusError> + Send + 'static,
    ) -> Query {
        Query {
            key,
            payload,
            responder: Box::new(responder),
        }
    }

    /// The key the query was sent to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The query's payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Sends the one reply of this queryable.
    pub fn reply(self, payload: Vec<u8>) -> Result<(), BusError> {
        (self.responder)(payload)
    }
}

/// Called by a transport for every query that reaches a queryable.
pub type QueryHandler = Arc<dyn Fn(Query) + Send + Sync>;

/// Something declared on a transport; dropping it undeclares it.
pub trait Declaration: Send + Sync + Debug {}

/// A publisher declared on a transport for one key.
pub trait RawPublisher: Send + Sync + Debug {
    /// The key it publishes on.
    fn key(&self) -> &str;
    /// Lends a buffer of exactly `len` bytes: shared memory when the transport has
    /// it, heap otherwise. It is aligned to [`evospike_schemas::ALIGNMENT`] when `len`
    /// is a multiple of it (as spike archives always are).
    fn loan(&self, len: usize) -> Result<SendBuf, BusError>;
    /// Sends a buffer obtained from [`loan`](Self::loan).
    fn put(&self, buf: SendBuf) -> Result<(), BusError>;
    /// Whether a subscriber currently matches the key (so a put would reach someone).
    fn has_subscribers(&self) -> Result<bool, BusError>;
}

/// One transport instance (a session). See the module docs for the contract.
pub trait Transport: Send + Sync + Debug {
    /// Short name (`"zenoh"`, `"local"`).
    fn name(&self) -> &'static str;
    /// Declares a publisher on `key`.
    fn declare_publisher(&self, key: &str) -> Result<Box<dyn RawPublisher>, BusError>;
    /// Calls `handler` for every sample published on keys matching `key_expr`.
    fn declare_subscriber(
        &self,
        key_expr: &str,
        handler: SampleHandler,
    ) -> Result<Box<dyn Declaration>, BusError>;
    /// Calls `handler` for every query on keys matching `key_expr`.
    fn declare_queryable(
        &self,
        key_expr: &str,
        handler: QueryHandler,
    ) -> Result<Box<dyn Declaration>, BusError>;
    /// Sends a query and gathers the replies that arrive within `timeout` (an empty
    /// list when nobody answered).
    fn get<'a>(
        &'a self,
        key_expr: &'a str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, BusError>>;
    /// Declares a liveliness token: others see `key` alive until it is dropped.
    fn declare_token(&self, key: &str) -> Result<Box<dyn Declaration>, BusError>;
    /// Keys of the live tokens matching `key_expr`.
    fn live_tokens<'a>(
        &'a self,
        key_expr: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, BusError>>;
    /// Waits until every buffer this session sent has been released by its
    /// receivers, or `timeout` passes (`Ok(false)`). A process calls it before it
    /// exits, so its last messages are not lost with its shared memory.
    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, BusError>>;
    /// Bytes of shared memory this session holds for its send buffers now (0 for a
    /// transport without shared memory, or before anything was sent).
    fn shm_pool_bytes(&self) -> usize {
        0
    }
}

/// Whether two key expressions share at least one key (wildcards `*` and `**`),
/// with Zenoh's own matching so both transports agree.
pub(crate) fn intersects(a: &str, b: &str) -> bool {
    use ::zenoh::key_expr::keyexpr;
    match (keyexpr::new(a), keyexpr::new(b)) {
        (Ok(a), Ok(b)) => a.intersects(b),
        _ => false,
    }
}

pub(crate) fn check_key_expr(what: &'static str, key: &str) -> Result<(), BusError> {
    ::zenoh::key_expr::keyexpr::new(key)
        .map(drop)
        .map_err(|err| BusError::Declare {
            what,
            key: key.to_string(),
            reason: err.to_string(),
        })
}
