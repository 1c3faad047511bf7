//! `router`: the bus broker. A Zenoh router that every other node and tool
//! connects to; it only routes, and waits to be stopped.
//!
//! A cluster runs one router per machine; each machine's nodes connect to their
//! own router, and the routers link to each other (`connect`: the other
//! routers). A router keeps trying to reach the routers it links to, so the
//! machines may start in any order and a restarted router is linked again.

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

/// A router listens where its bus options say (`--listen`); its parameters name
/// the other routers it links to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterParams {
    /// Endpoints of other routers to link to (one router per machine, linked), e.g. `tls/10.0.0.1:7447`.
    #[serde(default)]
    pub connect: Vec<String>,
}

impl Params for RouterParams {
    fn check(&self, check: &mut Check<'_>) {
        for (i, endpoint) in self.connect.iter().enumerate() {
            if !endpoint.contains('/') {
                check.fail(
                    format!("connect[{i}]"),
                    endpoint.as_str().into(),
                    "an endpoint is PROTOCOL/ADDRESS:PORT, e.g. tcp/10.0.0.1:7447",
                );
            }
        }
    }
}

impl NodeKind for RouterKind {
    const NAME: &'static str = "router";
    const SUMMARY: &'static str = "the bus broker (Zenoh router) that nodes and tools connect to";
    type Params = RouterParams;

    /// Router mode, connected to the routers of `params.connect` only (not to the
    /// endpoints its machine's nodes connect to), and [`DEFAULT_ROUTER`] unless
    /// told to listen elsewhere.
    fn configure_bus(params: &RouterParams, config: &mut BusConfig) {
        config.mode = Mode::Router;
        config.connect = params.connect.clone();
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
        RouterKind::configure_bus(&RouterParams::default(), &mut config);
        assert_eq!(config.mode, Mode::Router);
        assert!(config.connect.is_empty(), "a router connects to nobody");
        assert_eq!(config.listen, [DEFAULT_ROUTER]);

        let mut config = BusConfig::peer(&["tcp/127.0.0.1:9000".to_string()], &[]);
        RouterKind::configure_bus(&RouterParams::default(), &mut config);
        assert_eq!(config.listen, ["tcp/127.0.0.1:9000"]);

        let params = RouterParams {
            connect: vec!["tcp/10.0.0.1:7447".into()],
        };
        RouterKind::configure_bus(&params, &mut config);
        assert_eq!(config.connect, ["tcp/10.0.0.1:7447"]);
    }
}
