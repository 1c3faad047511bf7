//! The monitoring service (port 8004).
//!
//! It collects by itself — nodes do not have to send anything: every node's
//! metric topic (`evospike/<ns>/metric/**`), which nodes are alive (liveliness),
//! and each service's HTTP traffic (its `/metrics`, read over the bus). Anything
//! outside the bus can `POST /metrics`. It serves `GET /metrics` (Prometheus text
//! for every node and service), `GET /metrics/{service_name}`, `GET /alerts`
//! (rules from its parameters plus built-in ones, pending → firing → resolved)
//! and `GET /dashboard` (service traffic, nodes, training jobs, active alerts).
//!
//! It also hosts MONITORING plugins from its `plugins:` parameter
//! (`DataMonitor`, `InsightEngine`): fed with the spike tensors of its
//! `spike_topics` and every metric it collects, they add per-layer statistics
//! (published on the bus as the layers' metrics) and alerts.

mod alerts;
mod api;
mod kind;
mod plugins;
mod prometheus;
mod state;

pub use alerts::{Op, RuleParams};
pub use kind::{MonitoringKind, MonitoringParams, DEFAULT_PORT};
