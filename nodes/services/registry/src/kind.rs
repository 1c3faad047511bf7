//! `registry`: the model registry as a node — `evospike run registry` — with the
//! name, health and liveliness of every node, serving HTTP on `SERVICE_PORT`
//! (default [`DEFAULT_PORT`]).

use std::path::PathBuf;
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

use crate::api::Limits;
use crate::Registry;

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "registry";

/// The registry's documented port.
pub const DEFAULT_PORT: u16 = 8003;

/// The `registry` kind.
#[derive(Debug)]
pub struct RegistryKind;

/// Parameters of a `registry` node. Host and port come from `SERVICE_HOST` and
/// `SERVICE_PORT` (default 0.0.0.0:8003), as for every service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryParams {
    /// Directory of the registry's state (`state.redb`) and files (`blobs/`).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Largest file an upload may carry, in MiB.
    #[serde(default = "default_max_upload_mib")]
    pub max_upload_mib: u64,
}

fn default_data_dir() -> String {
    "registry-data".to_owned()
}

fn default_max_upload_mib() -> u64 {
    4096
}

impl Params for RegistryParams {
    fn check(&self, check: &mut Check<'_>) {
        if self.data_dir.is_empty() {
            check.fail("data_dir", "".into(), "must name a directory");
        }
        check.at_least("max_upload_mib", self.max_upload_mib, 1);
    }
}

impl NodeKind for RegistryKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the model registry service: versioned models and their files over HTTP (port 8003)";
    type Params = RegistryParams;

    fn topics(_params: &RegistryParams, _node: &str) -> evospike_schemas::contract::NodeTopics {
        evospike_schemas::contract::NodeTopics {
            serves: vec!["registry".into()],
            ..Default::default()
        }
    }

    async fn run(node: Node, params: RegistryParams) -> Result<(), NodeError> {
        let config = ServiceConfig::from_env(DEFAULT_PORT).or_fail(SERVICE, "read its settings")?;
        let data_dir = PathBuf::from(&params.data_dir);
        let registry = {
            let dir = data_dir.clone();
            tokio::task::spawn_blocking(move || Registry::open(&dir))
                .await
                .or_fail(SERVICE, "open its data directory")?
                .or_fail(
                    SERVICE,
                    format!("open its data directory {}", data_dir.display()),
                )?
        };
        let registry = Arc::new(registry);
        let limits = Limits::new(params.max_upload_mib.saturating_mul(1 << 20));
        let service = crate::api::service(registry.clone(), config.clone(), limits);
        let metrics = service.metrics();
        let (listener, addr) = evospike_http::listen(&config)
            .await
            .or_fail(SERVICE, "open its HTTP port")?;
        let _queryables = crate::bus::serve(node.bus(), node.name(), registry.clone())?;
        tracing::info!(data_dir = %data_dir.display(), "node {} (registry) serving http://{addr}", node.name());
        node.set_state(HealthState::Active);

        // Counts for /metrics, refreshed in the background.
        let gauges = {
            let registry = registry.clone();
            tokio::spawn(async move {
                loop {
                    let r = registry.clone();
                    if let Ok(Ok((models, versions))) =
                        tokio::task::spawn_blocking(move || r.counts()).await
                    {
                        metrics.set_gauge(
                            "registry_models",
                            "Models with a ready version.",
                            models as f64,
                        );
                        metrics.set_gauge(
                            "registry_ready_versions",
                            "Ready model versions.",
                            versions as f64,
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            })
        };
        let node = Arc::new(node);
        let stop = {
            let node = node.clone();
            async move { node.stopped().await }
        };
        let result =
            evospike_http::serve_service(node.bus(), node.name(), service, listener, stop).await;
        gauges.abort();
        result.or_fail(SERVICE, "serve HTTP")
    }
}
