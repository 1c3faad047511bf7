//! The evospike node runtime and the built-in node kinds.
//!
//! A node is one OS process: a name, a namespace, a [`Bus`](evospike_bus::Bus)
//! session, parameters, a liveliness token, a health queryable, logs (stderr and
//! the node's log topic) and metrics (steps/s, spikes/s, gaps, invalid inputs,
//! bus copies on its metric topic every second).
//!
//! - **Kinds are types** ([`kind`]): each implements [`NodeKind`] — a name, a
//!   params struct and `run`. [`NodeKinds`] finds a kind by name; nothing else
//!   dispatches on a kind's name. The built-in kinds ([`kinds`]) form spiking
//!   pipelines — `encoder` → `layer` → … → `readout` — exchanging one spike
//!   tensor per time step (see [`sync`] for how steps are matched), `train`,
//!   which trains a network with a LEARNING plugin and writes the model that
//!   pipeline nodes then run (their `model` parameter), and `router`, the bus
//!   broker.
//! - **Parameters are checked before anything runs** ([`params`]): unknown keys,
//!   wrong types and out-of-range values are errors naming node, key and value,
//!   and the table of a kind's parameters is generated from the same struct.
//! - **Identity comes from the launcher** ([`NodeArgs`]): flags over the
//!   `EVOSPIKE_*` variables of [`evospike_schemas::contract`].
//! - **Repeated warnings are counted, not repeated** ([`throttle`]): a flood of
//!   invalid inputs logs a line now and then, and its metric counts every one.
//!
//! [`run`] starts a node of a built-in kind and returns when it finishes or is
//! told to stop (SIGINT/SIGTERM): plugins are deactivated in reverse order, logs
//! are flushed, and the process can exit 0.
//!
//! ```
//! use evospike_node::NodeKinds;
//! use serde_json::json;
//!
//! let kinds = NodeKinds::builtin();
//! assert_eq!(kinds.names(), ["router", "encoder", "layer", "readout", "train", "train_worker"]);
//! let params = json!({"size": 100, "inputs": [{"topic": "encoder/spikes", "p": 2.0}]});
//! let err = kinds.get("layer").unwrap().check("l1", params.as_object().unwrap()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "node `l1` (layer): parameter `inputs[0].p` = 2.0: must be a probability in [0, 1]"
//! );
//! ```
#![warn(missing_docs)]

mod args;
mod error;
pub mod kind;
pub mod kinds;
pub mod logging;
mod metrics;
pub mod node;
pub mod params;
mod plugins;
pub mod stimulus;
pub mod sync;
pub mod throttle;

pub use args::{ArgsError, BusArgs, NodeArgs};
pub use error::{NodeError, OrFail};
pub use kind::{run_kind, KindEntry, NodeKind, NodeKinds};
pub use plugins::PluginSettings;

/// Steps an input may run ahead of a pipeline node before its sender waits
/// (parameter `max_lag`).
pub const DEFAULT_MAX_LAG: usize = 1024;

/// Runs one node of built-in kind `kind` until it finishes or is stopped.
pub async fn run(kind: &str, args: NodeArgs) -> Result<(), NodeError> {
    NodeKinds::builtin().run(kind, args).await
}

/// An error and its causes on one line, `a: b: c` (for log lines); a cause
/// that its parent's message already ends with is not repeated.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut previous = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !previous.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
        source = cause.source();
    }
    text
}
