//! `monitoring`: the monitoring service as a node — `evospike run monitoring` —
//! serving HTTP on `SERVICE_PORT` (default [`DEFAULT_PORT`]).

use evospike_schemas::contract::{NodeTopics, Watch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evospike_bus::{Bus, MessagePublisher, MessageSubscriber, SpikeSubscriber};
use evospike_http::ServiceConfig;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::{NodeError, OrFail};
use evospike_schemas::proto::{HealthState, HttpRequest, MetricBatch, MetricSample};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::alerts::{Alerts, Rule, RuleParams};
use crate::plugins::MonitorPlugins;
use crate::state::{Monitor, Source};

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "monitoring";

/// The monitoring service's documented port.
pub const DEFAULT_PORT: u16 = 8004;

/// The `monitoring` kind.
#[derive(Debug)]
pub struct MonitoringKind;

/// Parameters of a `monitoring` node. Host and port come from `SERVICE_HOST`
/// and `SERVICE_PORT` (default 0.0.0.0:8004), as for every service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringParams {
    /// Alert rules: `{name, metric, node ("*" patterns), op (> >= < <= == !=),
    /// threshold, for_s}`.
    #[serde(default)]
    pub rules: Vec<RuleParams>,
    /// Also the built-in rules: node_down, pipeline_gaps, layer_silent,
    /// layer_saturated.
    #[serde(default = "default_true")]
    pub builtin_rules: bool,
    /// Milliseconds between looks at the nodes (liveliness), the services'
    /// traffic and the alert rules.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// MONITORING plugins, by name: `enabled` plus the plugin's settings.
    /// Built in: `DataMonitor` (`dt_ms`, `bin_steps`: per-layer rate, ISI CV,
    /// Fano factor, synchrony from `spike_topics`, published as the layers'
    /// metrics) and `InsightEngine` (`silent_hz`, `runaway_hz`, `drift`,
    /// `baseline_windows`, `for_s`, `stale_reports`: alerts on silent,
    /// runaway and drifting layers). None runs unless named here.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub plugins: serde_json::Map<String, serde_json::Value>,
    /// Spike topics (`layer1/spikes`, …) whose tensors go to the plugins.
    #[serde(default)]
    pub spike_topics: Vec<String>,
}

fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    1000
}

impl Params for MonitoringParams {
    fn check(&self, check: &mut Check<'_>) {
        check.at_least("interval_ms", self.interval_ms, 50);
        for (i, topic) in self.spike_topics.iter().enumerate() {
            if let Err(e) = evospike_bus::KeySpace::check_topic(topic) {
                check.fail(
                    format!("spike_topics[{i}]"),
                    topic.as_str().into(),
                    e.to_string(),
                );
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.name.trim().is_empty() {
                check.fail(format!("rules[{i}].name"), "".into(), "must not be empty");
            }
            if rule.metric.trim().is_empty() {
                check.fail(format!("rules[{i}].metric"), "".into(), "must not be empty");
            }
            if !rule.threshold.is_finite() {
                check.fail(
                    format!("rules[{i}].threshold"),
                    rule.threshold.into(),
                    "must be a finite number",
                );
            }
            if !rule.for_s.is_finite() || rule.for_s < 0.0 {
                check.fail(
                    format!("rules[{i}].for_s"),
                    rule.for_s.into(),
                    "must be 0 or more seconds",
                );
            }
        }
    }
}

/// Collects every node's metric batches from the bus.
async fn collect(
    subscriber: MessageSubscriber<MetricBatch>,
    monitor: Arc<Mutex<Monitor>>,
    plugins: Arc<MonitorPlugins>,
) {
    loop {
        match subscriber.recv().await {
            Ok(batch) => {
                for s in &batch.message.samples {
                    plugins.observe_metric(&s.node, &s.name, s.value);
                }
                let mut m = monitor.lock().unwrap_or_else(|e| e.into_inner());
                for s in batch.message.samples {
                    let labels: BTreeMap<String, String> = s.labels.into_iter().collect();
                    m.record(
                        &s.node,
                        &s.name,
                        labels,
                        s.value,
                        s.timestamp_unix_ns,
                        Source::Bus,
                    );
                }
            }
            Err(evospike_bus::BusError::Closed { .. }) => return,
            Err(err) => tracing::debug!(%err, "a metric batch could not be read"),
        }
    }
}

/// Hands every spike tensor of `topic` to the plugins.
async fn watch_spikes(subscriber: SpikeSubscriber, plugins: Arc<MonitorPlugins>) {
    loop {
        match subscriber.recv().await {
            Ok(message) => plugins.observe_tensor(message.view()),
            Err(evospike_bus::BusError::Closed { .. }) => return,
            Err(err) => tracing::debug!(%err, "a spike message could not be read"),
        }
    }
}

/// The plugins' measurements of the interval, published as their layers'
/// metrics (monitoring collects them back from the bus like any node's).
fn publish_measurements(
    publisher: &MessagePublisher<MetricBatch>,
    measurements: Vec<evospike_plugin_api::Measurement>,
) {
    if measurements.is_empty() {
        return;
    }
    let timestamp_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let batch = MetricBatch {
        samples: measurements
            .into_iter()
            .map(|m| MetricSample {
                timestamp_unix_ns,
                node: m.node,
                name: m.name,
                value: m.value,
                labels: Default::default(),
            })
            .collect(),
    };
    if let Err(err) = publisher.publish(&batch) {
        tracing::debug!(%err, "the plugins' measurements were not published");
    }
}

/// What [`watch`] looks at.
struct Watched {
    bus: Bus,
    monitor: Arc<Mutex<Monitor>>,
    training: Arc<AtomicBool>,
    plugins: Arc<MonitorPlugins>,
    publisher: MessagePublisher<MetricBatch>,
}

/// Every interval: who is alive, each service's traffic, the plugins' reports,
/// the alert rules.
async fn watch(watched: Watched, every: Duration) {
    let Watched {
        bus,
        monitor,
        training,
        plugins,
        publisher,
    } = watched;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if let Ok(alive) = bus.nodes(every).await {
            let alive: BTreeSet<String> = alive.into_iter().collect();
            monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_alive(&alive, now);
        }
        let instances = bus.service_instances("*", every).await.unwrap_or_default();
        let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (service, node) in instances {
            by_service.entry(service).or_default().push(node);
        }
        training.store(by_service.contains_key("training"), Ordering::Relaxed);
        for (service, nodes) in &by_service {
            let mut scraped = Vec::new();
            for node in nodes {
                let request = HttpRequest {
                    method: "GET".into(),
                    uri: "/metrics".into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                };
                if let Ok(response) =
                    evospike_http::bridge::call(&bus, node, request, "", every).await
                {
                    if let Ok(body) = axum::body::to_bytes(response.into_body(), 16 << 20).await {
                        let samples = crate::prometheus::parse(&String::from_utf8_lossy(&body));
                        scraped.push((node.clone(), samples));
                    }
                }
            }
            monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_traffic(service, scraped, Instant::now());
        }
        let report = plugins.report();
        publish_measurements(&publisher, report.measurements);
        let mut m = monitor.lock().unwrap_or_else(|e| e.into_inner());
        m.keep_traffic(&by_service.keys().cloned().collect());
        m.evaluate(&report.findings, Instant::now());
    }
}

impl NodeKind for MonitoringKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the monitoring service: every node's metrics from the bus, alerts, Prometheus /metrics, dashboard data (port 8004)";
    type Params = MonitoringParams;

    /// It reads every node's metrics, scrapes the services' `/metrics` over the bus and lists training jobs.
    fn topics(_params: &MonitoringParams, _node: &str) -> NodeTopics {
        NodeTopics {
            serves: vec!["monitoring".into()],
            calls: vec!["training".into()],
            watches: vec![Watch::Metrics, Watch::HttpApis],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: MonitoringParams) -> Result<(), NodeError> {
        let config = ServiceConfig::from_env(DEFAULT_PORT).or_fail(SERVICE, "read its settings")?;
        let mut rules: Vec<Rule> = params.rules.into_iter().map(Rule::Metric).collect();
        if params.builtin_rules {
            rules.extend(Rule::builtin());
        }
        let monitor = Arc::new(Mutex::new(Monitor::new(Alerts::new(rules))));
        let bus = node.bus().clone();
        let subscriber: MessageSubscriber<MetricBatch> =
            bus.message_subscriber(&bus.keys().all("metric"))?;
        let plugins = Arc::new(
            MonitorPlugins::start(&params.plugins)
                .or_fail(SERVICE, "start its monitoring plugins")?,
        );
        if !plugins.names().is_empty() {
            tracing::info!(plugins = ?plugins.names(), topics = ?params.spike_topics, "monitoring plugins");
        }
        let mut spike_watchers = Vec::new();
        for topic in &params.spike_topics {
            let subscriber = bus.spike_subscriber(topic)?;
            spike_watchers.push(tokio::spawn(watch_spikes(subscriber, plugins.clone())));
        }
        let training = Arc::new(AtomicBool::new(false));
        let collector = tokio::spawn(collect(subscriber, monitor.clone(), plugins.clone()));
        let watched = Watched {
            bus: bus.clone(),
            monitor: monitor.clone(),
            training: training.clone(),
            plugins,
            publisher: bus.message_publisher(&bus.keys().metric(node.name())?)?,
        };
        let watcher = tokio::spawn(watch(watched, Duration::from_millis(params.interval_ms)));
        let service = crate::api::service(monitor, bus.clone(), training, config.clone());
        let (listener, addr) = evospike_http::listen(&config)
            .await
            .or_fail(SERVICE, "open its HTTP port")?;
        tracing::info!("node {} (monitoring) serving http://{addr}", node.name());
        node.set_state(HealthState::Active);
        let node = Arc::new(node);
        let stop = {
            let node = node.clone();
            async move { node.stopped().await }
        };
        let result = evospike_http::serve_service(&bus, node.name(), service, listener, stop).await;
        collector.abort();
        watcher.abort();
        for task in spike_watchers {
            task.abort();
        }
        result.or_fail(SERVICE, "serve HTTP")
    }
}
