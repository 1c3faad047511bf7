//! The built-in node kinds. Each is an async function that runs a started
//! [`Node`](crate::node::Node) until it finishes or is asked to stop.

pub(crate) mod encoder;
pub(crate) mod layer;
pub(crate) mod model;
pub(crate) mod readout;
pub(crate) mod train;

use crate::node::Node;
use crate::NodeError;

/// A router: the bus broker. It only routes; it waits to be stopped.
pub(crate) async fn router(node: Node) -> Result<(), NodeError> {
    tracing::info!(listen = ?node.bus().config().listen, "routing");
    node.stopped().await;
    Ok(())
}

/// Waits (bounded) until someone subscribes to a publisher's topic, so the first
/// steps are not sent into the void; returns false on stop or timeout.
pub(crate) async fn wait_for_downstream(
    node: &Node,
    publisher: &evospike_bus::SpikePublisher,
    timeout_s: f64,
) -> Result<bool, NodeError> {
    if timeout_s <= 0.0 {
        return Ok(true);
    }
    tokio::select! {
        found = publisher.wait_for_subscribers(std::time::Duration::from_secs_f64(timeout_s)) => {
            let found = found?;
            if !found {
                tracing::warn!(topic = %publisher.key(), "no subscriber after {timeout_s} s; publishing anyway");
            }
            Ok(true)
        }
        () = node.stopped() => Ok(false),
    }
}
