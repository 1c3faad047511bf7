//! `gateway`: the API gateway as a node — `evospike run gateway` — serving HTTP
//! on `SERVICE_PORT` (default [`DEFAULT_PORT`]).

use evospike_schemas::contract::{NodeTopics, Watch};
use std::sync::Arc;
use std::time::Duration;

use evospike_http::ServiceConfig;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::{NodeError, OrFail};
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::App;
use crate::directory::Directory;
use crate::middleware::Chain;

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "gateway";

/// The gateway's documented port.
pub const DEFAULT_PORT: u16 = 8000;

/// The `gateway` kind.
#[derive(Debug)]
pub struct GatewayKind;

/// Parameters of a `gateway` node. Host and port come from `SERVICE_HOST` and
/// `SERVICE_PORT` (default 0.0.0.0:8000), as for every service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayParams {
    /// The HTTP middleware plugins, by name: `enabled` plus the plugin's own
    /// settings. Built in: `ApiKeyAuth` (`keys`, `keys_file`; 401), `RateLimit`
    /// (`per_second`, `burst`; 429), `RequestValidation` (400). A plugin not
    /// named here keeps its default: validation on, the others off; a section
    /// turns its plugin on unless it says `enabled: false`. They run in
    /// priority order (security 20, then middleware 30).
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub plugins: serde_json::Map<String, serde_json::Value>,
    /// Seconds one call to a service instance may take (keep it below
    /// `SERVICE_REQUEST_TIMEOUT_S`, so that an idempotent request can still be
    /// sent to another instance).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_s: f64,
    /// Milliseconds between health probes of every instance (and rediscovery);
    /// an instance that fails one is skipped until it passes one.
    #[serde(default = "default_probe_ms")]
    pub probe_ms: u64,
}

fn default_call_timeout() -> f64 {
    10.0
}
fn default_probe_ms() -> u64 {
    1000
}

impl Params for GatewayParams {
    fn check(&self, check: &mut Check<'_>) {
        if !self.call_timeout_s.is_finite() || self.call_timeout_s <= 0.0 {
            check.fail(
                "call_timeout_s",
                self.call_timeout_s.into(),
                "must be a positive number of seconds",
            );
        }
        check.at_least("probe_ms", self.probe_ms, 10);
    }
}

impl NodeKind for GatewayKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the API gateway: routes /{service}/{path} over the bus to healthy service instances (port 8000)";
    type Params = GatewayParams;

    /// It answers on its own port and over the bus, reaches every service's HTTP API over the bus and streams any topic to the dashboard.
    fn topics(_params: &GatewayParams, _node: &str) -> NodeTopics {
        NodeTopics {
            serves: vec!["gateway".into()],
            watches: vec![Watch::HttpApis, Watch::Topics],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: GatewayParams) -> Result<(), NodeError> {
        let config = ServiceConfig::from_env(DEFAULT_PORT).or_fail(SERVICE, "read its settings")?;
        let chain =
            Chain::start(&params.plugins).or_fail(SERVICE, "set up its middleware plugins")?;
        tracing::info!(middleware = ?chain.names(), "middleware chain");
        let directory = Arc::new(Directory::new(
            node.bus().clone(),
            Duration::from_millis(params.probe_ms.saturating_mul(3)),
        ));
        let app = App {
            bus: node.bus().clone(),
            directory,
            call_timeout: Duration::from_secs_f64(params.call_timeout_s),
        };
        let prober = tokio::spawn(crate::api::probe_forever(
            app.clone(),
            Duration::from_millis(params.probe_ms),
        ));
        let service = crate::api::service(app, config.clone(), chain);
        let (listener, addr) = evospike_http::listen(&config)
            .await
            .or_fail(SERVICE, "open its HTTP port")?;
        tracing::info!("node {} (gateway) serving http://{addr}", node.name());
        node.set_state(HealthState::Active);
        let node = Arc::new(node);
        let stop = {
            let node = node.clone();
            async move { node.stopped().await }
        };
        let result = evospike_http::serve(listener, service.into_router(), stop).await;
        prober.abort();
        result.or_fail(SERVICE, "serve HTTP")
    }
}
