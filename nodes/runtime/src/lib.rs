//! The evospike node runtime and the built-in node kinds.
//!
//! A node is one OS process: a name, a namespace, a [`Bus`](evospike_bus::Bus)
//! session, parameters, a liveliness token, a health queryable, logs (stderr and
//! the node's log topic) and metrics (steps/s, spikes/s, gaps, bus copies on its
//! metric topic every second). [`run`] starts a node of a built-in kind and returns
//! when it finishes or is told to stop (SIGINT/SIGTERM): plugins are deactivated in
//! reverse order, logs are flushed, and the process can exit 0.
//!
//! The built-in kinds ([`KINDS`]) form spiking pipelines — `encoder` → `layer` →
//! … → `readout` — exchanging one spike tensor per time step (see [`sync`] for how
//! steps are matched), plus `router`, the bus broker.
//!
//! ```no_run
//! # async fn demo() -> Result<(), evospike_node::NodeError> {
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli { #[command(flatten)] node: evospike_node::NodeArgs }
//! let cli = Cli::parse_from(["x", "--name", "enc", "-p", "source=generator:bars", "--local"]);
//! evospike_node::run("encoder", cli.node).await
//! # }
//! ```
#![warn(missing_docs)]

mod args;
mod error;
mod kinds;
pub mod logging;
pub mod node;
mod plugins;
pub mod stimulus;
pub mod sync;

pub use args::{env, BusArgs, NodeArgs, DEFAULT_ROUTER};
pub use error::NodeError;

use evospike_bus::{Bus, Mode};
use evospike_schemas::proto::HealthState;

/// Steps an input may run ahead of a pipeline node before its sender waits
/// (parameter `max_lag`).
pub const DEFAULT_MAX_LAG: usize = 1024;

/// The built-in node kinds.
pub const KINDS: &[&str] = &["router", "encoder", "layer", "readout", "train"];

/// Runs one node of built-in kind `kind` until it finishes or is stopped.
pub async fn run(kind: &str, args: NodeArgs) -> Result<(), NodeError> {
    if !KINDS.contains(&kind) {
        return Err(NodeError::UnknownKind(kind.to_string()));
    }
    let logs = logging::init_logging();
    let mut config = args.bus.to_config(&args.namespace)?;
    if kind == "router" {
        config.mode = Mode::Router;
        config.connect.clear();
        if config.listen.is_empty() {
            config.listen = vec![DEFAULT_ROUTER.to_string()];
        }
    } else if config.listen.is_empty() && config.mode == Mode::Peer {
        // Peers listen on an ephemeral loopback port so the others can reach them
        // directly (shared memory) once the router has introduced them.
        config.listen = vec!["tcp/127.0.0.1:0".to_string()];
    }
    if let Some(lag) = args
        .params()?
        .get("max_lag")
        .and_then(serde_json::Value::as_u64)
    {
        config.queue_capacity = usize::try_from(lag.max(1)).unwrap_or(usize::MAX);
    } else {
        // Deep enough that a node's bus thread rarely waits on a full queue (it
        // would delay the node's health replies too), bounded so a slow consumer
        // still pushes back on its producers.
        config.queue_capacity = DEFAULT_MAX_LAG;
    }
    let bus = Bus::open(config).await?;
    let node = node::Node::start(kind, &args, bus.clone()).await?;
    if let Some(records) = logs {
        tokio::spawn(logging::forward_logs(
            bus.clone(),
            node.name().to_string(),
            records,
        ));
    }
    let name = node.name().to_string();
    if kind == "router" {
        tracing::info!("node {name} (router) ready");
        node.set_state(HealthState::Active);
    }
    let result = match kind {
        "router" => kinds::router(node).await,
        "encoder" => kinds::encoder::run(node).await,
        "layer" => kinds::layer::run(node).await,
        "readout" => kinds::readout::run(node).await,
        "train" => kinds::train::run(node).await,
        other => Err(NodeError::UnknownKind(other.to_string())),
    };
    if let Err(err) = &result {
        tracing::error!(%err, "node {name} failed");
    }
    logging::flush().await;
    // Our last steps live in our shared memory: let the receivers read them first.
    if !bus
        .flush(std::time::Duration::from_secs(2))
        .await
        .unwrap_or(true)
    {
        tracing::warn!("receivers did not release every sent buffer within 2 s");
    }
    result
}
