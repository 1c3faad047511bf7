//! The counters a node's work updates, and their publication on the node's
//! metric topic every second.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evospike_bus::{Bus, MessagePublisher};
use evospike_schemas::proto::{MetricBatch, MetricSample};
use tokio::sync::watch;

use crate::node::{lock, now_ns};

/// Counters a node's work updates; published every second on its metric topic.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Time steps computed (or published, for encoders).
    pub steps: AtomicU64,
    /// Spikes emitted.
    pub spikes: AtomicU64,
    /// Steps that arrived out of order or twice.
    pub duplicates: AtomicU64,
    /// Steps that never arrived (gaps).
    pub gaps: AtomicU64,
    /// Input messages dropped because they were not valid tensors.
    pub invalid_inputs: AtomicU64,
    /// Input tensors dropped because their size differed from the input's.
    pub wrong_size_inputs: AtomicU64,
    /// Kind-specific values (e.g. a readout's accuracy), published with the rest.
    pub gauges: std::sync::Mutex<BTreeMap<&'static str, f64>>,
}

impl NodeMetrics {
    /// Sets a kind-specific gauge.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        lock(&self.gauges).insert(name, value);
    }
}

pub(crate) async fn publish_metrics(
    bus: Bus,
    node: String,
    metrics: Arc<NodeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ok(key) = bus.keys().metric(&node) else {
        return;
    };
    let publisher: MessagePublisher<MetricBatch> = match bus.message_publisher(&key) {
        Ok(publisher) => publisher,
        Err(err) => {
            tracing::warn!(%err, "metrics are not published");
            return;
        }
    };
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let (steps, spikes) = (
            metrics.steps.load(Ordering::Relaxed),
            metrics.spikes.load(Ordering::Relaxed),
        );
        let elapsed = last.0.elapsed().as_secs_f64().max(1e-9);
        let rates = (
            (steps - last.1) as f64 / elapsed,
            (spikes - last.2) as f64 / elapsed,
        );
        last = (Instant::now(), steps, spikes);
        let copies = bus.receive_stats();
        let sent = bus.send_stats();
        let timestamp_unix_ns = now_ns();
        let sample = |name: &str, value: f64| MetricSample {
            timestamp_unix_ns,
            node: node.clone(),
            name: name.to_string(),
            value,
            labels: Default::default(),
        };
        let mut batch = MetricBatch {
            samples: vec![
                sample("steps_per_s", rates.0),
                sample("spikes_per_s", rates.1),
                sample("steps_total", steps as f64),
                sample("gaps_total", metrics.gaps.load(Ordering::Relaxed) as f64),
                sample(
                    "duplicates_total",
                    metrics.duplicates.load(Ordering::Relaxed) as f64,
                ),
                sample(
                    "invalid_inputs_total",
                    metrics.invalid_inputs.load(Ordering::Relaxed) as f64,
                ),
                sample(
                    "wrong_size_inputs_total",
                    metrics.wrong_size_inputs.load(Ordering::Relaxed) as f64,
                ),
                sample("bus_received_total", copies.received as f64),
                sample("bus_copies_total", copies.copies as f64),
                sample("bus_bytes_copied_total", copies.bytes_copied as f64),
                sample("bus_shm_total", copies.shm as f64),
                sample("bus_sent_total", sent.sent as f64),
                sample("bus_sent_loaned_total", sent.loaned as f64),
                sample("bus_send_copies_total", sent.copies as f64),
                sample("bus_send_bytes_copied_total", sent.bytes_copied as f64),
                sample("bus_shm_pool_bytes", bus.shm_pool_bytes() as f64),
            ],
        };
        batch.samples.extend(
            lock(&metrics.gauges)
                .iter()
                .map(|(name, value)| sample(name, *value)),
        );
        if let Err(err) = publisher.publish(&batch) {
            tracing::debug!(%err, "metric batch not published");
        }
    }
}
