//! The monitoring service (port 8004).
//!
//! It collects by itself — nodes do not have to send anything: every node's
//! metric topic (`evospike/<ns>/metric/**`), which nodes are alive (liveliness),
//! and each service's HTTP traffic (its `/metrics`, read over the bus). Anything
//! outside the bus can `POST /metrics`. It serves `GET /metrics` (Prometheus text
//! for every node and service), `GET /metrics/{service_name}`, `GET /alerts`
//! (rules from its parameters plus built-in ones, pending → firing → resolved)
//! and `GET /dashboard` (service traffic, nodes, training jobs, active alerts).

mod alerts;
mod api;
mod kind;
mod prometheus;
mod state;

pub use alerts::{Op, RuleParams};
pub use kind::{MonitoringKind, MonitoringParams, DEFAULT_PORT};
