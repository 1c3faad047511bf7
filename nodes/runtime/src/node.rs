//! One node: identity, bus session, liveliness, health, metrics and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evospike_bus::{Bus, Declared, MessagePublisher, SpikePublisher, SpikeSubscriber};
use evospike_schemas::proto::{
    Empty, Health, HealthState, MetricBatch, MetricSample, NodeInfo, PluginHealth,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::{NodeArgs, NodeError};

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
    /// Kind-specific values (e.g. a readout's accuracy), published with the rest.
    pub gauges: std::sync::Mutex<BTreeMap<&'static str, f64>>,
}

impl NodeMetrics {
    /// Sets a kind-specific gauge.
    pub fn set_gauge(&self, name: &'static str, value: f64) {
        lock(&self.gauges).insert(name, value);
    }
}

/// Per input topic, the next step a node waits for; shared with its health reply.
type Progress = Arc<std::sync::Mutex<Vec<(String, Arc<AtomicU64>)>>>;

/// A running node. Dropping it withdraws its liveliness token and health queryable.
#[derive(Debug)]
pub struct Node {
    name: String,
    kind: String,
    bus: Bus,
    params: Map<String, Value>,
    remaps: BTreeMap<String, String>,
    plugin_dirs: Vec<std::path::PathBuf>,
    plugin_entries: Vec<Value>,
    info: Arc<std::sync::Mutex<NodeInfo>>,
    state: Arc<AtomicI32>,
    metrics: Arc<NodeMetrics>,
    plugin_health: Arc<std::sync::Mutex<Vec<PluginHealth>>>,
    /// Per input topic: the next step the node waits for.
    progress: Progress,
    shutdown: watch::Receiver<bool>,
    _token: Declared,
    _health: Declared,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl Node {
    /// Opens the bus, announces the node, serves its health and starts publishing
    /// its metrics. `default_bus` adjusts the bus configuration before the flags and
    /// environment are applied on top (e.g. a router listens by default).
    pub async fn start(kind: &str, args: &NodeArgs, bus: Bus) -> Result<Node, NodeError> {
        let name = args.name.clone().unwrap_or_else(|| kind.to_string());
        let keys = bus.keys().clone();
        let info = NodeInfo {
            name: name.clone(),
            namespace: keys.namespace().to_string(),
            kind: kind.to_string(),
            pid: std::process::id(),
            hostname: hostname(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix_ns: now_ns(),
            ..Default::default()
        };
        let info = Arc::new(std::sync::Mutex::new(info));
        let state = Arc::new(AtomicI32::new(HealthState::Starting as i32));
        let plugin_health = Arc::new(std::sync::Mutex::new(Vec::new()));
        let progress = Progress::default();
        let started = Instant::now();
        let health = {
            let (info, state, plugin_health, progress) = (
                info.clone(),
                state.clone(),
                plugin_health.clone(),
                progress.clone(),
            );
            bus.serve::<Empty, Health, _>(&keys.health(&name)?, &name, move |_| {
                Ok(Health {
                    node: Some(lock(&info).clone()),
                    state: state.load(Ordering::Relaxed),
                    uptime_s: started.elapsed().as_secs_f64(),
                    detail: String::new(),
                    plugins: lock(&plugin_health).clone(),
                    input_next_steps: lock(&progress)
                        .iter()
                        .map(|(topic, next)| (topic.clone(), next.load(Ordering::Relaxed)))
                        .collect(),
                })
            })?
        };
        let token = bus.announce_node(&name)?;
        let metrics = Arc::new(NodeMetrics::default());
        let (stop_tx, shutdown) = watch::channel(false);
        tokio::spawn(wait_for_signal(stop_tx));
        tokio::spawn(publish_metrics(
            bus.clone(),
            name.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        Ok(Node {
            name,
            kind: kind.to_string(),
            bus,
            params: args.params()?,
            remaps: args.remaps()?,
            plugin_dirs: args.plugin_dirs(),
            plugin_entries: args.plugins()?,
            info,
            state,
            metrics,
            plugin_health,
            progress,
            shutdown,
            _token: token,
            _health: health,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The bus session.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Counters the node's work updates.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Plugin folders given to the node.
    pub fn plugin_dirs(&self) -> &[std::path::PathBuf] {
        &self.plugin_dirs
    }

    /// The node's plugin list, as written in its launch file.
    pub fn plugin_entries(&self) -> &[Value] {
        &self.plugin_entries
    }

    /// Marks the node active (or degraded, failed, stopping) in its health.
    pub fn set_state(&self, state: HealthState) {
        self.state.store(state as i32, Ordering::Relaxed);
    }

    /// Replaces the plugin part of the node's health.
    pub fn set_plugin_health(&self, plugins: Vec<PluginHealth>) {
        let names = plugins.iter().map(|p| p.name.clone()).collect();
        *lock(&self.plugin_health) = plugins;
        lock(&self.info).plugins = names;
    }

    /// A parameter, or `default` when it is not set.
    pub fn param<T: DeserializeOwned>(&self, name: &str, default: T) -> Result<T, NodeError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => serde_json::from_value(value.clone()).map_err(|err| NodeError::Param {
                name: name.to_string(),
                reason: err.to_string(),
            }),
        }
    }

    /// A parameter that must be set.
    pub fn required_param<T: DeserializeOwned>(&self, name: &str) -> Result<T, NodeError> {
        let value = self.params.get(name).ok_or_else(|| NodeError::Param {
            name: name.to_string(),
            reason: "is required".into(),
        })?;
        serde_json::from_value(value.clone()).map_err(|err| NodeError::Param {
            name: name.to_string(),
            reason: err.to_string(),
        })
    }

    /// All parameters.
    pub fn params(&self) -> &Map<String, Value> {
        &self.params
    }

    /// A topic name after remapping.
    pub fn topic(&self, name: &str) -> String {
        self.remaps
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// A spike publisher on (remapped) topic `name`, recorded in the node's info.
    pub fn spike_publisher(&self, name: &str) -> Result<SpikePublisher, NodeError> {
        let topic = self.topic(name);
        lock(&self.info).publishes.push(topic.clone());
        Ok(self.bus.spike_publisher(&topic)?)
    }

    /// A spike subscriber on (remapped) topic `name`, recorded in the node's info.
    pub fn spike_subscriber(&self, name: &str) -> Result<SpikeSubscriber, NodeError> {
        let topic = self.topic(name);
        lock(&self.info).subscribes.push(topic.clone());
        Ok(self.bus.spike_subscriber(&topic)?)
    }

    /// A counter of the next step the node waits for on (remapped) input `topic`,
    /// reported in its health so upstream nodes can drain before they exit.
    pub fn track_input(&self, topic: &str) -> Arc<AtomicU64> {
        let next = Arc::new(AtomicU64::new(0));
        lock(&self.progress).push((topic.to_string(), next.clone()));
        next
    }

    /// Before exiting: waits until every node that subscribes to one of `outputs`
    /// (topic, last step published) has consumed that step, or `timeout` passes.
    /// Messages still queued on the way would otherwise die with this process.
    ///
    /// A live node that does not answer its health query is counted as behind: a
    /// subscriber busy with a full input queue answers late, and exiting then
    /// would lose exactly the steps it has not read yet.
    pub async fn drain(&self, outputs: &[(String, u64)], timeout: Duration) {
        let key = format!(
            "{}/*",
            self.bus.keys().all("health").trim_end_matches("/**")
        );
        let deadline = Instant::now() + timeout;
        loop {
            let behind = self.behind(&key, outputs).await;
            if behind.is_empty() {
                return;
            }
            if Instant::now() > deadline || self.stop_requested() {
                tracing::warn!(?behind, "exiting before these nodes consumed our last step");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Live nodes that have not consumed the last step of one of `outputs`, or did
    /// not say.
    async fn behind(&self, health_key: &str, outputs: &[(String, u64)]) -> Vec<String> {
        let alive = self
            .bus
            .nodes(Duration::from_secs(1))
            .await
            .unwrap_or_default();
        let replies = self
            .bus
            .request_all::<Empty, Health>(health_key, &Empty {}, Duration::from_secs(1))
            .await
            .unwrap_or_default();
        let answered: BTreeMap<String, Health> = replies
            .into_iter()
            .filter_map(|(_, health)| health.ok())
            .filter_map(|health| Some((health.node.as_ref()?.name.clone(), health)))
            .collect();
        alive
            .into_iter()
            .filter(|name| *name != self.name)
            .filter(|name| match answered.get(name) {
                None => true,
                Some(health) => outputs.iter().any(|(topic, last)| {
                    let subscribes = health
                        .node
                        .as_ref()
                        .is_some_and(|info| info.subscribes.contains(topic));
                    subscribes
                        && health
                            .input_next_steps
                            .get(topic)
                            .is_some_and(|next| next <= last)
                }),
            })
            .collect()
    }

    /// Resolves when the node is asked to stop (SIGINT or SIGTERM).
    pub async fn stopped(&self) {
        let mut shutdown = self.shutdown.clone();
        let _ = shutdown.wait_for(|stop| *stop).await;
    }

    /// Whether the node has been asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.shutdown.borrow()
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn wait_for_signal(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; the node can only be killed");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
    }
    let _ = stop.send(true);
}

async fn publish_metrics(
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
                sample("bus_received_total", copies.received as f64),
                sample("bus_copies_total", copies.copies as f64),
                sample("bus_bytes_copied_total", copies.bytes_copied as f64),
                sample("bus_shm_total", copies.shm as f64),
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
