//! One node: identity, bus session, liveliness, health, metrics and shutdown.
//!
//! [`Node::start`] announces the node (liveliness token), serves its health
//! queryable, starts publishing its metrics ([`NodeMetrics`]) and listens for
//! SIGINT/SIGTERM; a kind's `run` then uses it to open its topics (remapped, and
//! recorded in the node's info so `evospike topic list` can show who talks to
//! whom) and to drain its subscribers before it exits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evospike_bus::{Bus, Declared, SpikePublisher, SpikeSubscriber};
use evospike_schemas::proto::{Empty, Health, HealthState, NodeInfo, PluginHealth};
use serde_json::Value;
use tokio::sync::watch;

use crate::metrics::publish_metrics;
pub use crate::metrics::NodeMetrics;
use crate::{NodeArgs, NodeError};

/// Per input topic, the next step a node waits for; shared with its health reply.
type Progress = Arc<std::sync::Mutex<Vec<(String, Arc<AtomicU64>)>>>;

/// A running node. Dropping it withdraws its liveliness token and health queryable.
#[derive(Debug)]
pub struct Node {
    name: String,
    kind: String,
    bus: Bus,
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

pub(crate) fn now_ns() -> u64 {
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

    /// A handle on the counters that outlives the node.
    pub(crate) fn metrics_handle(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
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

pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
