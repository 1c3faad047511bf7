//! Zero-copy spike tensors on the bus.
//!
//! A producer computes its spikes straight into a buffer lent by the transport
//! (Zenoh shared memory when on) with [`SpikePublisher::loan`], or has an owned
//! tensor serialized into one with [`SpikePublisher::publish`]; either
//! way the publisher stamps the header (sequence number, timestamp) and sends the
//! buffer itself, with no intermediate buffer. [`SpikeSubscriber::recv`] validates what arrives and hands
//! out a [`SpikeMsg`] whose [`view`](SpikeMsg::view) borrows the received buffer when
//! it is one contiguous, aligned slice, and copies into an aligned buffer only
//! otherwise. Every copy is counted in [`ReceiveStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use evospike_schemas::{ArchivedSpikeTensor, SchemaError, SpikeTensor, ALIGNMENT};
use rkyv::util::AlignedVec;
use serde::Serialize;

use crate::transport::{RawPublisher, Received};
use crate::{BusError, Subscription};

mod send;
pub use send::{SendStats, SendStatsSnapshot, SpikeLoan, SpikePublisher};

/// Counters of one or more spike subscriptions (the bus keeps one for all).
#[derive(Debug, Default)]
pub struct ReceiveStats {
    received: AtomicU64,
    in_place: AtomicU64,
    shm: AtomicU64,
    copies: AtomicU64,
    bytes_copied: AtomicU64,
    invalid: AtomicU64,
}

/// A snapshot of [`ReceiveStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReceiveStatsSnapshot {
    /// Payloads received.
    pub received: u64,
    /// Payloads read in place (no copy).
    pub in_place: u64,
    /// Payloads that arrived in shared memory.
    pub shm: u64,
    /// Payloads copied into an aligned buffer before reading.
    pub copies: u64,
    /// Bytes copied by those copies.
    pub bytes_copied: u64,
    /// Payloads rejected by validation.
    pub invalid: u64,
}

impl ReceiveStats {
    /// Current values.
    pub fn snapshot(&self) -> ReceiveStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ReceiveStatsSnapshot {
            received: get(&self.received),
            in_place: get(&self.in_place),
            shm: get(&self.shm),
            copies: get(&self.copies),
            bytes_copied: get(&self.bytes_copied),
            invalid: get(&self.invalid),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Updates a subscription's own counters and the bus-wide ones together.
#[derive(Debug, Clone)]
struct StatsPair {
    own: Arc<ReceiveStats>,
    bus: Arc<ReceiveStats>,
}

impl StatsPair {
    fn add(&self, field: fn(&ReceiveStats) -> &AtomicU64, n: u64) {
        ReceiveStats::add(field(&self.own), n);
        ReceiveStats::add(field(&self.bus), n);
    }
}

pub(crate) async fn wait_for_subscribers(
    raw: &dyn RawPublisher,
    timeout: std::time::Duration,
) -> Result<bool, BusError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if raw.has_subscribers()? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A received spike tensor, validated; [`view`](Self::view) reads it in place.
#[derive(Debug)]
pub struct SpikeMsg {
    sample: Received,
    /// `Some` when the payload had to be copied to be readable.
    copy: Option<AlignedVec<ALIGNMENT>>,
}

impl SpikeMsg {
    /// Validates a received sample, copying it first only when it is not one
    /// contiguous, aligned slice.
    fn accept(sample: Received, stats: &StatsPair) -> Result<SpikeMsg, BusError> {
        stats.add(|s| &s.received, 1);
        if sample.is_shm() {
            stats.add(|s| &s.shm, 1);
        }
        let invalid = |source: SchemaError, sample: &Received| {
            stats.add(|s| &s.invalid, 1);
            BusError::Payload {
                key: sample.key().to_string(),
                source,
            }
        };
        match sample.contiguous().map(SpikeTensor::view) {
            Some(Ok(_)) => {
                stats.add(|s| &s.in_place, 1);
                return Ok(SpikeMsg { sample, copy: None });
            }
            // Only alignment (or fragmentation) is fixed by copying; anything else is
            // a bad payload wherever it sits.
            Some(Err(SchemaError::Misaligned { .. })) | None => {}
            Some(Err(err)) => return Err(invalid(err, &sample)),
        }
        let mut copy = AlignedVec::<ALIGNMENT>::with_capacity(sample.len());
        sample.copy_into(&mut copy);
        stats.add(|s| &s.copies, 1);
        stats.add(|s| &s.bytes_copied, copy.len() as u64);
        match SpikeTensor::view(&copy) {
            Ok(_) => Ok(SpikeMsg {
                sample,
                copy: Some(copy),
            }),
            Err(err) => Err(invalid(err, &sample)),
        }
    }

    /// The bytes the view reads: the received buffer itself, or its aligned copy.
    pub fn bytes(&self) -> &[u8] {
        match &self.copy {
            Some(copy) => copy,
            None => self.sample.contiguous().unwrap_or_default(),
        }
    }

    /// The tensor, read in place.
    pub fn view(&self) -> &ArchivedSpikeTensor {
        // SAFETY: `accept` validated exactly these bytes with `SpikeTensor::view`, and
        // neither the received sample nor the copy can change while `self` lives.
        unsafe { SpikeTensor::view_unchecked(self.bytes()) }
    }

    /// Whether the payload had to be copied to be read.
    pub fn was_copied(&self) -> bool {
        self.copy.is_some()
    }

    /// Whether the payload arrived in shared memory.
    pub fn is_shm(&self) -> bool {
        self.sample.is_shm()
    }

    /// The key it arrived on.
    pub fn key(&self) -> &str {
        self.sample.key()
    }
}

/// Receives [`SpikeTensor`]s from one topic (or a key expression of topics).
#[derive(Debug)]
pub struct SpikeSubscriber {
    inner: Subscription,
    stats: StatsPair,
}

impl SpikeSubscriber {
    pub(crate) fn new(inner: Subscription, bus_stats: Arc<ReceiveStats>) -> SpikeSubscriber {
        SpikeSubscriber {
            inner,
            stats: StatsPair {
                own: Arc::default(),
                bus: bus_stats,
            },
        }
    }

    /// The key expression it listens to.
    pub fn key_expr(&self) -> &str {
        self.inner.key_expr()
    }

    /// Waits for the next tensor. A payload that fails validation is returned as
    /// [`BusError::Payload`]; the subscription goes on.
    pub async fn recv(&self) -> Result<SpikeMsg, BusError> {
        let sample = self.inner.recv().await?;
        SpikeMsg::accept(sample, &self.stats)
    }

    /// Blocking form of [`recv`](Self::recv), for threads outside an async runtime.
    pub fn recv_blocking(&self) -> Result<SpikeMsg, BusError> {
        let sample = self.inner.recv_blocking()?;
        SpikeMsg::accept(sample, &self.stats)
    }

    /// Like [`recv_blocking`](Self::recv_blocking) but gives up after `timeout`
    /// (`Ok(None)`).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Option<SpikeMsg>, BusError> {
        match self.inner.recv_timeout(timeout)? {
            Some(sample) => SpikeMsg::accept(sample, &self.stats).map(Some),
            None => Ok(None),
        }
    }

    /// This subscription's counters.
    pub fn stats(&self) -> ReceiveStatsSnapshot {
        self.stats.own.snapshot()
    }
}
