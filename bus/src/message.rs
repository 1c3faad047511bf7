//! Typed publish/subscribe of protobuf (control-plane) messages.

use std::marker::PhantomData;
use std::time::Duration;

use evospike_schemas::proto;

use crate::transport::{RawPublisher, Received};
use crate::{BusError, Subscription};

/// Publishes messages of type `M` on one key.
#[derive(Debug)]
pub struct MessagePublisher<M> {
    raw: Box<dyn RawPublisher>,
    _type: PhantomData<fn(M)>,
}

impl<M: prost::Message + prost::Name> MessagePublisher<M> {
    pub(crate) fn new(raw: Box<dyn RawPublisher>) -> Self {
        MessagePublisher {
            raw,
            _type: PhantomData,
        }
    }

    /// The key it publishes on.
    pub fn key(&self) -> &str {
        self.raw.key()
    }

    /// Waits until at least one subscriber matches, or `timeout` passes (`Ok(false)`).
    pub async fn wait_for_subscribers(&self, timeout: Duration) -> Result<bool, BusError> {
        crate::spike::wait_for_subscribers(self.raw.as_ref(), timeout).await
    }

    /// Encodes `message` straight into a transport buffer and sends it.
    pub fn publish(&self, message: &M) -> Result<(), BusError> {
        let mut buf = self.raw.loan(message.encoded_len())?;
        message
            .encode(&mut &mut buf[..])
            .map_err(|err| BusError::Publish {
                key: self.key().to_string(),
                reason: err.to_string(),
            })?;
        self.raw.put(buf)
    }
}

/// Receives messages of type `M` from a key expression.
#[derive(Debug)]
pub struct MessageSubscriber<M> {
    inner: Subscription,
    _type: PhantomData<fn() -> M>,
}

/// A decoded message and the key it arrived on.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<M> {
    /// The key it was published on.
    pub key: String,
    /// The message.
    pub message: M,
}

impl<M: prost::Message + prost::Name + Default> MessageSubscriber<M> {
    pub(crate) fn new(inner: Subscription) -> Self {
        MessageSubscriber {
            inner,
            _type: PhantomData,
        }
    }

    /// The key expression it listens to.
    pub fn key_expr(&self) -> &str {
        self.inner.key_expr()
    }

    fn decode(sample: Received) -> Result<Keyed<M>, BusError> {
        let key = sample.key().to_string();
        let decoded = match sample.contiguous() {
            Some(bytes) => proto::decode::<M>(bytes),
            None => {
                let mut copy = rkyv::util::AlignedVec::new();
                sample.copy_into(&mut copy);
                proto::decode::<M>(&copy)
            }
        };
        match decoded {
            Ok(message) => Ok(Keyed { key, message }),
            Err(source) => Err(BusError::Payload { key, source }),
        }
    }

    /// Waits for the next message. Undecodable payloads are returned as
    /// [`BusError::Payload`]; the subscription goes on.
    pub async fn recv(&self) -> Result<Keyed<M>, BusError> {
        Self::decode(self.inner.recv().await?)
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Keyed<M>>, BusError> {
        self.inner
            .recv_timeout(timeout)?
            .map(Self::decode)
            .transpose()
    }
}
