use std::sync::Arc;
use std::time::Duration;

use crate::message::{MessagePublisher, MessageSubscriber};
use crate::spike::{
    ReceiveStats, ReceiveStatsSnapshot, SendStats, SendStatsSnapshot, SpikePublisher,
    SpikeSubscriber,
};
use crate::transport::local::LocalTransport;
use crate::transport::zenoh::ZenohTransport;
use crate::transport::{Declaration, RawPublisher, Received, Transport};
use crate::{BusConfig, BusError, KeySpace, TransportKind};

/// A node's connection to the evospike bus. Cheap to clone (all clones share one
/// session).
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Box<dyn Transport>,
    keys: KeySpace,
    config: BusConfig,
    stats: Arc<ReceiveStats>,
    send_stats: Arc<SendStats>,
}

/// Raw samples of a key expression, queued until received.
#[derive(Debug)]
pub struct Subscription {
    key_expr: String,
    rx: flume::Receiver<Received>,
    _declaration: Box<dyn Declaration>,
}

impl Subscription {
    /// The key expression it listens to.
    pub fn key_expr(&self) -> &str {
        &self.key_expr
    }

    fn closed(&self) -> BusError {
        BusError::Closed {
            key: self.key_expr.clone(),
        }
    }

    /// Waits for the next sample.
    pub async fn recv(&self) -> Result<Received, BusError> {
        self.rx.recv_async().await.map_err(|_| self.closed())
    }

    /// Blocking form of [`recv`](Self::recv).
    pub fn recv_blocking(&self) -> Result<Received, BusError> {
        self.rx.recv().map_err(|_| self.closed())
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Received>, BusError> {
        match self.rx.recv_timeout(timeout) {
            Ok(sample) => Ok(Some(sample)),
            Err(flume::RecvTimeoutError::Timeout) => Ok(None),
            Err(flume::RecvTimeoutError::Disconnected) => Err(self.closed()),
        }
    }

    /// A sample if one is queued.
    pub fn try_recv(&self) -> Option<Received> {
        self.rx.try_recv().ok()
    }
}

/// Queues `sample` once its subscription's queue has room.
///
/// A local sample is sent by the publishing node itself, often from a task of a
/// multi-thread tokio runtime whose other tasks are the very consumers that would
/// empty the queue. Blocking that worker outright let every worker block at once
/// (an encoder and a layer each waiting on the next one's full queue, nothing
/// left to run the consumers: a 10,000-step in-process pipeline hung for good), so
/// the wait runs in [`tokio::task::block_in_place`], which hands the worker's
/// other tasks to another thread. Zenoh calls from its own receive threads, which
/// block as before.
fn wait_to_queue(tx: &flume::Sender<Received>, sample: Received) {
    let on_runtime_worker = matches!(sample, Received::Local { .. })
        && tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
    if on_runtime_worker {
        tokio::task::block_in_place(|| {
            let _ = tx.send(sample);
        });
    } else {
        let _ = tx.send(sample);
    }
}

/// Keeps a declaration (queryable, liveliness token) alive; dropping it undeclares.
#[derive(Debug)]
pub struct Declared {
    key: String,
    _declaration: Box<dyn Declaration>,
}

impl Declared {
    pub(crate) fn new(key: String, declaration: Box<dyn Declaration>) -> Declared {
        Declared {
            key,
            _declaration: declaration,
        }
    }

    /// The declared key expression.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Bus {
    /// Opens a session on the configured transport.
    ///
    /// With Zenoh, opening fails (naming the endpoints) when a connect endpoint
    /// cannot be reached within `connect_timeout`.
    pub async fn open(config: BusConfig) -> Result<Bus, BusError> {
        let keys = KeySpace::new(&config.namespace)?;
        let transport: Box<dyn Transport> = match config.transport {
            TransportKind::Zenoh => Box::new(ZenohTransport::open(&config).await?),
            TransportKind::Local => Box::new(LocalTransport::open(&config.local_domain)),
        };
        Ok(Bus {
            inner: Arc::new(Inner {
                transport,
                keys,
                config,
                stats: Arc::default(),
                send_stats: Arc::default(),
            }),
        })
    }

    /// The key layout of this bus's namespace.
    pub fn keys(&self) -> &KeySpace {
        &self.inner.keys
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Name of the transport (`"zenoh"` or `"local"`).
    pub fn transport_name(&self) -> &'static str {
        self.inner.transport.name()
    }

    /// Receive counters of every spike subscription of this bus.
    pub fn receive_stats(&self) -> ReceiveStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Send counters of every spike publisher of this bus: how many tensors were
    /// computed in loaned buffers and how many were copied by serializing.
    pub fn send_stats(&self) -> SendStatsSnapshot {
        self.inner.send_stats.snapshot()
    }

    /// Bytes of shared memory this bus holds for its send buffers now: none until a
    /// spike buffer is lent, then pools sized to what it sends (see
    /// [`BusConfig::shm_pool_bytes`]).
    pub fn shm_pool_bytes(&self) -> usize {
        self.inner.transport.shm_pool_bytes()
    }

    /// A raw publisher on a full key.
    pub fn raw_publisher(&self, key: &str) -> Result<Box<dyn RawPublisher>, BusError> {
        self.inner.transport.declare_publisher(key)
    }

    /// Raw samples of a full key expression.
    pub fn subscribe_raw(&self, key_expr: &str) -> Result<Subscription, BusError> {
        let (tx, rx) = flume::bounded(self.inner.config.queue_capacity.max(1));
        let handler = Arc::new(move |sample: Received| match tx.try_send(sample) {
            // A dropped subscription just discards.
            Ok(()) | Err(flume::TrySendError::Disconnected(_)) => {}
            // A full queue holds the sender back (back-pressure).
            Err(flume::TrySendError::Full(sample)) => wait_to_queue(&tx, sample),
        });
        let declaration = self.inner.transport.declare_subscriber(key_expr, handler)?;
        Ok(Subscription {
            key_expr: key_expr.to_string(),
            rx,
            _declaration: declaration,
        })
    }

    /// A spike tensor publisher on topic `name`.
    pub fn spike_publisher(&self, topic: &str) -> Result<SpikePublisher, BusError> {
        let key = self.keys().topic(topic)?;
        Ok(SpikePublisher::new(
            self.raw_publisher(&key)?,
            self.inner.send_stats.clone(),
        ))
    }

    /// A spike tensor subscriber on topic `name` (may contain `*`/`**` wildcards
    /// after the topic prefix, e.g. `layer*/spikes`).
    pub fn spike_subscriber(&self, topic: &str) -> Result<SpikeSubscriber, BusError> {
        let key = format!("{}/topic/{topic}", self.key_prefix());
        Ok(SpikeSubscriber::new(
            self.subscribe_raw(&key)?,
            self.inner.stats.clone(),
        ))
    }

    /// A publisher of protobuf messages on a full key (see [`KeySpace`]).
    pub fn message_publisher<M: prost::Message + prost::Name>(
        &self,
        key: &str,
    ) -> Result<MessagePublisher<M>, BusError> {
        Ok(MessagePublisher::new(self.raw_publisher(key)?))
    }

    /// A subscriber of protobuf messages on a full key expression.
    pub fn message_subscriber<M: prost::Message + prost::Name + Default>(
        &self,
        key_expr: &str,
    ) -> Result<MessageSubscriber<M>, BusError> {
        Ok(MessageSubscriber::new(self.subscribe_raw(key_expr)?))
    }

    /// Announces node `name` as alive until the returned token is dropped.
    pub fn announce_node(&self, name: &str) -> Result<Declared, BusError> {
        let key = self.keys().node_token(name)?;
        let token = self.inner.transport.declare_token(&key)?;
        Ok(Declared::new(key, token))
    }

    /// Names of the nodes alive in this namespace, sorted.
    pub async fn nodes(&self, timeout: Duration) -> Result<Vec<String>, BusError> {
        let keys = self
            .inner
            .transport
            .live_tokens(&self.keys().all_nodes(), timeout)
            .await?;
        Ok(keys
            .iter()
            .filter_map(|key| match self.keys().parse(key) {
                Some(crate::KeyKind::Node(name)) => Some(name.to_string()),
                _ => None,
            })
            .collect())
    }

    /// Announces node `node` as an instance of `service` until the returned token
    /// is dropped (the gateway routes to the instances it sees).
    pub fn announce_service(&self, service: &str, node: &str) -> Result<Declared, BusError> {
        let key = self.keys().service_token(service, node)?;
        let token = self.inner.transport.declare_token(&key)?;
        Ok(Declared::new(key, token))
    }

    /// The live service instances of this namespace as `(service, node)` pairs,
    /// sorted; `service` is a name or `*` for all.
    pub async fn service_instances(
        &self,
        service: &str,
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, BusError> {
        let keys = self
            .inner
            .transport
            .live_tokens(&self.keys().service_tokens(service), timeout)
            .await?;
        let mut found: Vec<(String, String)> = keys
            .iter()
            .filter_map(|key| match self.keys().parse(key) {
                Some(crate::KeyKind::ServiceInstance { service, node }) => {
                    Some((service.to_string(), node.to_string()))
                }
                _ => None,
            })
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// Waits until receivers have released every buffer this session sent, or
    /// `timeout` passes (`Ok(false)`). Call it before the process exits: shared
    /// memory dies with its process, and with it messages not yet read.
    pub async fn flush(&self, timeout: Duration) -> Result<bool, BusError> {
        self.inner.transport.flush(timeout).await
    }

    pub(crate) fn transport(&self) -> &dyn Transport {
        self.inner.transport.as_ref()
    }

    fn key_prefix(&self) -> String {
        format!("evospike/{}", self.keys().namespace())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use evospike_schemas::SpikeTensor;

    use super::*;

    /// Regression: publishers blocked on full local queues took every worker of a
    /// two-thread runtime, and the consumers never ran again (the pipeline bench's
    /// 10,000-step in-process run hung).
    #[test]
    fn full_local_queues_never_take_every_runtime_worker() {
        const STEPS: u64 = 2_000;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let received = runtime.block_on(async {
                let mut config = BusConfig::local("deadlock");
                config.queue_capacity = 4;
                let bus = Bus::open(config).await.unwrap();
                let first = bus.spike_subscriber("a").unwrap();
                let second = bus.spike_subscriber("b").unwrap();
                let last = bus.spike_subscriber("c").unwrap();
                // a → b: the producer runs ahead and fills `first`.
                let mut a = bus.spike_publisher("a").unwrap();
                tokio::spawn(async move {
                    let mut tensor = SpikeTensor::zeros("a", &[64]).unwrap();
                    for step in 0..STEPS {
                        tensor.header.step = step;
                        a.publish(&mut tensor).unwrap();
                    }
                });
                // b → c: forwards and fills `second`, whose consumer starts late.
                let mut b = bus.spike_publisher("b").unwrap();
                tokio::spawn(async move {
                    let mut tensor = SpikeTensor::zeros("b", &[64]).unwrap();
                    for _ in 0..STEPS {
                        let msg = first.recv().await.unwrap();
                        tensor.header.step = msg.view().header.step.to_native();
                        b.publish(&mut tensor).unwrap();
                    }
                });
                let mut c = bus.spike_publisher("c").unwrap();
                let consumer = tokio::spawn(async move {
                    let mut tensor = SpikeTensor::zeros("c", &[64]).unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    for _ in 0..STEPS {
                        let msg = second.recv().await.unwrap();
                        tensor.header.step = msg.view().header.step.to_native();
                        c.publish(&mut tensor).unwrap();
                    }
                });
                let mut received = 0;
                for _ in 0..STEPS {
                    last.recv().await.unwrap();
                    received += 1;
                }
                consumer.await.unwrap();
                received
            });
            let _ = done_tx.send(received);
        });
        let received = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the in-process pipeline hung: every worker blocked on a full queue");
        assert_eq!(received, STEPS);
    }
}
