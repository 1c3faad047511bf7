//! What monitoring knows: every node's latest metrics (from its metric topic, or
//! pushed), which nodes are alive, each service's HTTP traffic, and the alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use evospike_schemas::proto::{
    Alert, DashboardReply, MetricValue, NodeStatus, ServiceMetrics, ServiceTraffic, TrainJob,
};

use crate::alerts::{Alerts, NodeView};
use crate::prometheus::{self, Sample};

/// A metric's latest value.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    at_ns: u64,
}

#[derive(Debug, Default)]
struct NodeEntry {
    alive: bool,
    ever_alive: bool,
    gone_since: Option<Instant>,
    last_metrics: Option<Instant>,
    sources: BTreeSet<&'static str>,
    /// `name{labels}` → series.
    series: BTreeMap<String, Series>,
}

/// Counters of a service's HTTP traffic at the last scrape, and the rates since
/// the one before.
#[derive(Debug, Clone)]
struct Traffic {
    instances: u32,
    /// The nodes serving it.
    nodes: Vec<String>,
    requests: f64,
    errors: f64,
    seconds: f64,
    at: Instant,
    request_rate: f64,
    error_rate: f64,
    mean_latency_ms: f64,
}

/// Where a measurement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The node's metric topic.
    Bus,
    /// `POST /metrics`.
    Push,
    /// A service's `/metrics`, scraped over the bus.
    Http,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Bus => "bus",
            Source::Push => "push",
            Source::Http => "http",
        }
    }
}

fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = name.to_owned();
    for (k, v) in labels {
        key.push('\u{1f}');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

/// Everything monitoring holds.
#[derive(Debug)]
pub(crate) struct Monitor {
    nodes: BTreeMap<String, NodeEntry>,
    traffic: BTreeMap<String, Traffic>,
    pub(crate) alerts: Alerts,
}

impl Monitor {
    pub(crate) fn new(alerts: Alerts) -> Monitor {
        Monitor {
            nodes: BTreeMap::new(),
            traffic: BTreeMap::new(),
            alerts,
        }
    }

    /// Records one measurement of `node`.
    pub(crate) fn record(
        &mut self,
        node: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        value: f64,
        at_ns: u64,
        source: Source,
    ) {
        let entry = self.nodes.entry(node.to_owned()).or_default();
        entry.last_metrics = Some(Instant::now());
        entry.sources.insert(source.name());
        entry.series.insert(
            series_key(name, &labels),
            Series {
                name: name.to_owned(),
                labels,
                value,
                at_ns,
            },
        );
    }

    /// Which nodes are alive now (from their liveliness tokens).
    pub(crate) fn set_alive(&mut self, alive: &BTreeSet<String>, now: Instant) {
        for name in alive {
            let entry = self.nodes.entry(name.clone()).or_default();
            entry.alive = true;
            entry.ever_alive = true;
            entry.gone_since = None;
        }
        for (name, entry) in &mut self.nodes {
            if entry.alive && !alive.contains(name) {
                entry.alive = false;
                entry.gone_since = Some(now);
            }
        }
    }

    /// A service's traffic from its instances' `/metrics` (the kit's
    /// `http_requests_total` and `http_request_duration_seconds`).
    /// `scraped` holds each instance node's samples; they are kept as that
    /// node's metrics too.
    pub(crate) fn set_traffic(
        &mut self,
        service: &str,
        scraped: Vec<(String, Vec<Sample>)>,
        now: Instant,
    ) {
        let (mut requests, mut errors, mut seconds) = (0.0, 0.0, 0.0);
        let instances = u32::try_from(scraped.len()).unwrap_or(u32::MAX);
        let nodes: Vec<String> = scraped.iter().map(|(n, _)| n.clone()).collect();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let samples: Vec<Sample> = scraped
            .into_iter()
            .flat_map(|(node, samples)| {
                for s in &samples {
                    self.record(
                        &node,
                        &s.name,
                        s.labels.clone(),
                        s.value,
                        now_ns,
                        Source::Http,
                    );
                }
                samples
            })
            .collect();
        for s in &samples {
            match s.name.as_str() {
                "http_requests_total" => {
                    requests += s.value;
                    if s.labels.get("status").is_some_and(|c| c.starts_with('5')) {
                        errors += s.value;
                    }
                }
                "http_request_duration_seconds_sum" => seconds += s.value,
                _ => {}
            }
        }
        let previous = self.traffic.get(service).cloned();
        let mut traffic = Traffic {
            instances,
            nodes,
            requests,
            errors,
            seconds,
            at: now,
            request_rate: 0.0,
            error_rate: 0.0,
            mean_latency_ms: 0.0,
        };
        if let Some(p) = previous {
            let dt = now.duration_since(p.at).as_secs_f64();
            // Counters restart with their instance: a drop means "no rate yet".
            if dt > 0.0 && requests >= p.requests {
                let n = requests - p.requests;
                traffic.request_rate = n / dt;
                traffic.error_rate = (errors - p.errors).max(0.0) / dt;
                traffic.mean_latency_ms = if n > 0.0 {
                    (seconds - p.seconds).max(0.0) / n * 1e3
                } else {
                    p.mean_latency_ms
                };
            }
        }
        self.traffic.insert(service.to_owned(), traffic);
    }

    /// Services no longer seen lose their traffic entry.
    pub(crate) fn keep_traffic(&mut self, services: &BTreeSet<String>) {
        self.traffic.retain(|name, _| services.contains(name));
    }

    /// Evaluates the alert rules, and the plugins' `findings`.
    pub(crate) fn evaluate(&mut self, findings: &[evospike_plugin_api::Finding], now: Instant) {
        let view = Snapshot {
            nodes: &self.nodes,
            now,
        };
        self.alerts
            .evaluate(&view, findings, now, SystemTime::now());
    }

    /// `GET /metrics/{name}`: a node's metrics, or a service's — those of all its
    /// instances, each labelled with its node.
    pub(crate) fn metrics_of(&self, name: &str) -> Option<ServiceMetrics> {
        let Some(entry) = self.nodes.get(name).filter(|e| !e.series.is_empty()) else {
            let traffic = self.traffic.get(name)?;
            let mut combined = ServiceMetrics {
                name: name.to_owned(),
                ..Default::default()
            };
            for node in &traffic.nodes {
                if let Some(part) = self.metrics_of(node) {
                    combined.sources.extend(part.sources);
                    combined
                        .metrics
                        .extend(part.metrics.into_iter().map(|mut m| {
                            m.labels.insert("node".into(), node.clone());
                            m
                        }));
                }
            }
            combined.sources.sort();
            combined.sources.dedup();
            return Some(combined);
        };
        Some(ServiceMetrics {
            name: name.to_owned(),
            sources: entry.sources.iter().map(|s| (*s).to_owned()).collect(),
            metrics: entry
                .series
                .values()
                .map(|s| MetricValue {
                    name: s.name.clone(),
                    value: s.value,
                    labels: s.labels.clone().into_iter().collect(),
                    timestamp_unix_ns: s.at_ns,
                })
                .collect(),
        })
    }

    /// Every series in the Prometheus text format, `evospike_`-prefixed and
    /// labelled with its node; plus `evospike_node_up` and the alerts.
    pub(crate) fn prometheus(&self, out: &mut String) {
        out.push_str("# HELP evospike_node_up Whether a node that was seen is alive (liveliness).\n# TYPE evospike_node_up gauge\n");
        for (name, entry) in &self.nodes {
            if entry.ever_alive {
                let labels = BTreeMap::from([("node".to_owned(), name.clone())]);
                prometheus::write_sample(
                    out,
                    "evospike_node_up",
                    &labels,
                    f64::from(u8::from(entry.alive)),
                );
            }
        }
        for (node, entry) in &self.nodes {
            for s in entry.series.values() {
                let mut labels = s.labels.clone();
                labels.insert("node".into(), node.clone());
                let name = if s.name.starts_with("evospike_") {
                    s.name.clone()
                } else {
                    format!("evospike_{}", s.name)
                };
                prometheus::write_sample(out, &name, &labels, s.value);
            }
        }
        out.push_str("# HELP evospike_alerts Alerts by rule, node and state.\n# TYPE evospike_alerts gauge\n");
        for alert in self.alerts.list(false) {
            let labels = BTreeMap::from([
                ("rule".to_owned(), alert.rule.clone()),
                ("node".to_owned(), alert.node.clone()),
                ("state".to_owned(), alert.state.clone()),
            ]);
            prometheus::write_sample(out, "evospike_alerts", &labels, 1.0);
        }
    }

    /// Pending and firing alerts (and the resolved ones when asked).
    pub(crate) fn alert_list(&self, with_resolved: bool) -> Vec<Alert> {
        self.alerts.list(with_resolved)
    }

    /// `GET /dashboard`.
    pub(crate) fn dashboard(&self, training_jobs: Vec<TrainJob>, now: Instant) -> DashboardReply {
        let value = |entry: &NodeEntry, name: &str| {
            entry
                .series
                .values()
                .find(|s| s.name == name)
                .map_or(0.0, |s| s.value)
        };
        DashboardReply {
            services: self
                .traffic
                .iter()
                .map(|(name, t)| ServiceTraffic {
                    name: name.clone(),
                    instances: t.instances,
                    request_rate: t.request_rate,
                    error_rate: t.error_rate,
                    mean_latency_ms: t.mean_latency_ms,
                    requests_total: t.requests as u64,
                })
                .collect(),
            nodes: self
                .nodes
                .iter()
                .filter(|(_, e)| e.ever_alive || !e.series.is_empty())
                .map(|(name, e)| NodeStatus {
                    name: name.clone(),
                    alive: e.alive,
                    steps_per_s: value(e, "steps_per_s"),
                    spikes_per_s: value(e, "spikes_per_s"),
                    gaps_total: value(e, "gaps_total"),
                    last_seen_s: e
                        .last_metrics
                        .map_or(-1.0, |at| now.duration_since(at).as_secs_f64()),
                })
                .collect(),
            training_jobs,
            alerts: self.alerts.list(false),
            generated_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }
}

/// The monitor as the alert rules see it.
struct Snapshot<'a> {
    nodes: &'a BTreeMap<String, NodeEntry>,
    now: Instant,
}

impl NodeView for Snapshot<'_> {
    fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn value(&self, node: &str, metric: &str) -> Option<f64> {
        let entry = self.nodes.get(node)?;
        // A node that is gone has no current values.
        if entry.ever_alive && !entry.alive {
            return None;
        }
        entry
            .series
            .values()
            .find(|s| s.name == metric)
            .map(|s| s.value)
    }

    fn gone_for(&self, node: &str) -> Option<f64> {
        let entry = self.nodes.get(node)?;
        entry
            .gone_since
            .map(|at| self.now.duration_since(at).as_secs_f64())
    }
}
