//! `router`: the bus broker. A Zenoh router that every other node and tool
//! connects to; it only routes, and waits to be stopped.

use evospike_bus::{BusConfig, Mode};
use evospike_schemas::contract::DEFAULT_ROUTER;
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::NodeKind;
use crate::node::Node;
use crate::params::{Check, Params};
use crate::NodeError;

/// The `router` kind.
#[derive(Debug)]
pub struct RouterKind;

/// A router takes no parameters; it is set up by its bus options (`--listen`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterParams {}

impl Params for RouterParams {
    fn check(&self, _check: &mut Check<'_>) {}
}

impl NodeKind for RouterKind {
    const NAME: &'static str = "router";
    const SUMMARY: &'static str = "the bus broker (Zenoh router) that nodes and tools connect to";
    type Params = RouterParams;

    /// Router mode, no connect endpoint, and [`DEFAULT_ROUTER`] unless told to
    /// listen elsewhere.
    fn configure_bus(_params: &RouterParams, config: &mut BusConfig) {
        config.mode = Mode::Router;
        config.connect.clear();
        if config.listen.is_empty() {
            config.listen = vec![DEFAULT_ROUTER.to_string()];
        }
    }

    async fn run(node: Node, _params: RouterParams) -> Result<(), NodeError> {
        tracing::info!(listen = ?node.bus().config().listen, "node {} (router) ready", node.name());
        node.set_state(HealthState::Active);
        node.stopped().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_listens_on_the_default_endpoint_in_router_mode() {
        let mut config = BusConfig::peer(&[], &["tcp/127.0.0.1:9".to_string()]);
        RouterKind::configure_bus(&RouterParams {}, &mut config);
        assert_eq!(config.mode, Mode::Router);
        assert!(config.connect.is_empty(), "a router connects to nobody");
        assert_eq!(config.listen, [DEFAULT_ROUTER]);

        let mut config = BusConfig::peer(&["tcp/127.0.0.1:9000".to_string()], &[]);
        RouterKind::configure_bus(&RouterParams {}, &mut config);
        assert_eq!(config.listen, ["tcp/127.0.0.1:9000"]);
    }
}
