//! `gateway`: the API gateway as a node — `evospike run gateway` — serving HTTP
//! on `SERVICE_PORT` (default [`DEFAULT_PORT`]).

use evospike_schemas::contract::{NodeTopics, Watch};
use std::sync::Arc;
use std::time::Duration;

use evospike_http::ServiceConfig;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::NodeError;
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::App;
use crate::directory::Directory;
use crate::middleware::{ApiKeys, Guard, Guards, RateLimit, Validation};

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
    /// API keys callers must present (`Authorization: Bearer KEY` or
    /// `x-api-key: KEY`). With none here and no `api_keys_file`, authentication is off.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// A file of API keys, one per line (`#` comments and blank lines skipped).
    #[serde(default)]
    pub api_keys_file: Option<String>,
    /// Requests per second each caller (API key, or client address) may make;
    /// 0 turns rate limiting off.
    #[serde(default)]
    pub rate_limit: f64,
    /// Requests a caller may make at once before the rate applies.
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
    /// Check the JSON body of each known endpoint against its message before
    /// forwarding it.
    #[serde(default = "default_true")]
    pub validate: bool,
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

fn default_burst() -> u32 {
    20
}
fn default_true() -> bool {
    true
}
fn default_call_timeout() -> f64 {
    10.0
}
fn default_probe_ms() -> u64 {
    1000
}

impl Params for GatewayParams {
    fn check(&self, check: &mut Check<'_>) {
        if !self.rate_limit.is_finite() || self.rate_limit < 0.0 {
            check.fail(
                "rate_limit",
                self.rate_limit.into(),
                "must be 0 (off) or a positive rate",
            );
        }
        check.at_least("rate_burst", u64::from(self.rate_burst), 1);
        if !self.call_timeout_s.is_finite() || self.call_timeout_s <= 0.0 {
            check.fail(
                "call_timeout_s",
                self.call_timeout_s.into(),
                "must be a positive number of seconds",
            );
        }
        check.at_least("probe_ms", self.probe_ms, 10);
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.trim().is_empty() {
                check.fail(format!("api_keys[{i}]"), "".into(), "must not be empty");
            }
        }
    }
}

fn failed(action: String, source: impl std::error::Error + Send + Sync + 'static) -> NodeError {
    NodeError::Service {
        service: "gateway",
        action,
        source: Box::new(source),
    }
}

fn read_keys(params: &GatewayParams) -> Result<Vec<String>, NodeError> {
    let mut keys = params.api_keys.clone();
    if let Some(file) = &params.api_keys_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| failed(format!("read its API keys from {file}"), e))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(keys)
}

impl NodeKind for GatewayKind {
    const NAME: &'static str = "gateway";
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
        let config = ServiceConfig::from_env(DEFAULT_PORT)
            .map_err(|e| failed("read its settings".into(), e))?;
        let keys = read_keys(&params)?;
        let mut guards: Vec<Box<dyn Guard>> = Vec::new();
        if !keys.is_empty() {
            guards.push(Box::new(ApiKeys::new(keys)));
        }
        if params.rate_limit > 0.0 {
            guards.push(Box::new(RateLimit::new(
                params.rate_limit,
                params.rate_burst,
            )));
        }
        if params.validate {
            guards.push(Box::new(Validation));
        }
        let guards = Guards::new(guards);
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
        let service = crate::api::service(app, config.clone(), guards);
        let listener = evospike_http::bind(&config)
            .await
            .map_err(|e| failed(format!("listen on {}", config.addr()), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| failed("read its address".into(), e))?;
        tracing::info!("node {} (gateway) serving http://{addr}", node.name());
        node.set_state(HealthState::Active);
        let node = Arc::new(node);
        let stop = {
            let node = node.clone();
            async move { node.stopped().await }
        };
        let result = evospike_http::serve(listener, service.into_router(), stop).await;
        prober.abort();
        result.map_err(|e| failed("serve HTTP".into(), e))
    }
}
