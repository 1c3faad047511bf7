//! The built-in node kinds. Each is a type implementing
//! [`NodeKind`](crate::NodeKind) with its own params struct; a program finds them
//! by name through [`NodeKinds::builtin`](crate::NodeKinds::builtin).

mod encoder;
mod layer;
mod model;
mod readout;
mod router;
mod train;
mod train_worker;

pub use encoder::{EncoderKind, EncoderParams};
pub use layer::{InputParams, LayerKind, LayerParams, Publish, RuleParams, TargetParam};
pub use readout::{ReadoutKind, ReadoutParams};
pub use router::{RouterKind, RouterParams};
pub use train::{TrainKind, TrainParams};
pub use train_worker::{TrainWorkerKind, TrainWorkerParams};

use crate::node::Node;
use crate::NodeError;

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
