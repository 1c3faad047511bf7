//! The sending half of the data plane: [`SpikePublisher`], its loaned buffers
//! ([`SpikeLoan`]) and the copy accounting of what it sends ([`SendStats`]).
//!
//! A tensor reaches the transport's buffer in one of two ways:
//!
//! - **loaned** ([`SpikePublisher::loan`]): the producer computes its bitset or
//!   analog values straight into the buffer that will be sent, laid out by a
//!   [`SpikeLayout`]; the publisher adds only the frame (header, shape, root — a few
//!   dozen bytes) and the stamp. The tensor's elements are never copied.
//! - **serialized** ([`SpikePublisher::publish`]): a [`SpikeTensor`] the producer
//!   owns is archived into the buffer: one copy of its elements, counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use evospike_schemas::{SpikeLayout, SpikeTensor, ALIGNMENT};
use rkyv::util::AlignedVec;
use serde::Serialize;

use super::now_ns;
use crate::transport::{RawPublisher, SendBuf};
use crate::BusError;

/// Counters of every spike publisher of one bus.
#[derive(Debug, Default)]
pub struct SendStats {
    sent: AtomicU64,
    loaned: AtomicU64,
    copies: AtomicU64,
    bytes_copied: AtomicU64,
}

/// A snapshot of [`SendStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendStatsSnapshot {
    /// Tensors sent.
    pub sent: u64,
    /// Tensors computed in a loaned buffer (no copy of their elements).
    pub loaned: u64,
    /// Tensors serialized from a producer's own buffer (one copy each).
    pub copies: u64,
    /// Bytes copied by those copies.
    pub bytes_copied: u64,
}

impl SendStats {
    /// Current values.
    pub fn snapshot(&self) -> SendStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SendStatsSnapshot {
            sent: get(&self.sent),
            loaned: get(&self.loaned),
            copies: get(&self.copies),
            bytes_copied: get(&self.bytes_copied),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Publishes [`SpikeTensor`]s on one topic.
#[derive(Debug)]
pub struct SpikePublisher {
    raw: Box<dyn RawPublisher>,
    next_seq: u64,
    stats: Arc<SendStats>,
}

impl SpikePublisher {
    pub(crate) fn new(raw: Box<dyn RawPublisher>, stats: Arc<SendStats>) -> SpikePublisher {
        SpikePublisher {
            raw,
            next_seq: 0,
            stats,
        }
    }

    /// The full key it publishes on.
    pub fn key(&self) -> &str {
        self.raw.key()
    }

    /// Sequence number the next tensor will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits until at least one subscriber matches the topic, or `timeout` passes
    /// (`Ok(false)`). Publishing before that would reach nobody.
    pub async fn wait_for_subscribers(
        &self,
        timeout: std::time::Duration,
    ) -> Result<bool, BusError> {
        super::wait_for_subscribers(self.raw.as_ref(), timeout).await
    }

    fn publish_error(&self, reason: impl ToString) -> BusError {
        BusError::Publish {
            key: self.key().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Stamps `tensor`'s header (sequence number, timestamp), serializes it straight
    /// into a transport buffer and sends it. Returns the sequence number used.
    ///
    /// Serializing copies the tensor's elements once (counted in [`SendStats`]);
    /// [`loan`](Self::loan) avoids that copy.
    pub fn publish(&mut self, tensor: &mut SpikeTensor) -> Result<u64, BusError> {
        tensor.header.seq = self.next_seq;
        tensor.header.timestamp_ns = now_ns();
        let len = tensor.serialized_len();
        let mut buf = self.raw.loan(len)?;
        tensor
            .write_into(&mut buf)
            .map_err(|err| self.publish_error(err))?;
        self.raw.put(buf)?;
        SendStats::add(&self.stats.sent, 1);
        SendStats::add(&self.stats.copies, 1);
        SendStats::add(&self.stats.bytes_copied, len as u64);
        self.next_seq += 1;
        Ok(tensor.header.seq)
    }

    /// Lends a transport buffer (shared memory when on) laid out by `layout`, for
    /// the producer to write the tensor's elements into before
    /// [`SpikeLoan::publish`]. The elements hold whatever the buffer held before:
    /// write every one of them.
    pub fn loan<'a>(&'a mut self, layout: &'a SpikeLayout) -> Result<SpikeLoan<'a>, BusError> {
        let buf = self.raw.loan(layout.len())?;
        // Shared memory and local buffers are always aligned; a plain heap buffer
        // for the network is too in practice (malloc), but not by contract: if it is
        // not, the tensor is computed in an aligned buffer and copied (counted).
        let staging = (buf.as_ptr() as usize % ALIGNMENT != 0).then(|| {
            let mut staging = AlignedVec::<ALIGNMENT>::with_capacity(layout.len());
            staging.resize(layout.len(), 0);
            staging
        });
        let mut loan = SpikeLoan {
            publisher: self,
            layout,
            buf,
            staging,
        };
        let framed = layout.write_frame(loan.target_mut());
        framed.map_err(|err| loan.publisher.publish_error(err))?;
        Ok(loan)
    }
}

/// A transport buffer lent by [`SpikePublisher::loan`]: write the elements
/// ([`bitset_mut`](Self::bitset_mut) or [`analog_mut`](Self::analog_mut)), then
/// [`publish`](Self::publish). Dropping it unpublished gives the buffer back.
#[derive(Debug)]
pub struct SpikeLoan<'a> {
    publisher: &'a mut SpikePublisher,
    layout: &'a SpikeLayout,
    buf: SendBuf,
    /// An aligned stand-in for a transport buffer that is not aligned.
    staging: Option<AlignedVec<ALIGNMENT>>,
}

impl SpikeLoan<'_> {
    /// The bytes the producer writes: the transport's buffer itself, or the stand-in.
    fn target_mut(&mut self) -> &mut [u8] {
        match &mut self.staging {
            Some(staging) => staging,
            None => &mut self.buf,
        }
    }

    /// The layout the buffer follows.
    pub fn layout(&self) -> &SpikeLayout {
        self.layout
    }

    /// Whether the buffer lives in shared memory (sent by reference on one host).
    pub fn is_shm(&self) -> bool {
        self.buf.is_shm()
    }

    /// The bitset words, in the buffer that will be sent (`None` for an analog layout).
    pub fn bitset_mut(&mut self) -> Option<&mut [u64]> {
        let layout = self.layout;
        layout.bitset_mut(self.target_mut())
    }

    /// The analog values, in the buffer that will be sent (`None` for a bitset layout).
    pub fn analog_mut(&mut self) -> Option<&mut [f32]> {
        let layout = self.layout;
        layout.analog_mut(self.target_mut())
    }

    /// Stamps the header (sequence number, `step`, timestamp) and sends the buffer.
    /// Returns the sequence number used. A bitset with bits set past its last
    /// element is refused ([`BusError::Publish`]) instead of being sent to receivers
    /// that would reject it.
    pub fn publish(mut self, step: u64) -> Result<u64, BusError> {
        let layout = self.layout;
        let seq = self.publisher.next_seq;
        let target = self.target_mut();
        layout.stamp(target, seq, step, now_ns());
        if let Err(err) = layout.check_body(target) {
            return Err(self.publisher.publish_error(err));
        }
        let copied = match &self.staging {
            Some(staging) => {
                self.buf.copy_from_slice(staging);
                Some(staging.len() as u64)
            }
            None => None,
        };
        let publisher = self.publisher;
        publisher.raw.put(self.buf)?;
        let stats = &publisher.stats;
        SendStats::add(&stats.sent, 1);
        match copied {
            Some(bytes) => {
                SendStats::add(&stats.copies, 1);
                SendStats::add(&stats.bytes_copied, bytes);
            }
            None => SendStats::add(&stats.loaned, 1),
        }
        publisher.next_seq += 1;
        Ok(seq)
    }
}
