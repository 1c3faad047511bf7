//! `training`: the training service as a node — `evospike run training` — with
//! the name, health and liveliness of every node, serving HTTP on `SERVICE_PORT`
//! (default [`DEFAULT_PORT`]).

use evospike_schemas::contract::NodeTopics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evospike_http::ServiceConfig;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::{NodeError, OrFail};
use evospike_schemas::proto::{HealthState, JobState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bus::BusRegistrar;
use crate::trainer::{Trainer, TrainerConfig};

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "training";

/// The training service's documented port.
pub const DEFAULT_PORT: u16 = 8001;

/// The environment variable naming the `evospike` executable the workers run
/// (default: this process's own executable).
pub const EXE_ENV: &str = "EVOSPIKE_EXE";

/// The `training` kind.
#[derive(Debug)]
pub struct TrainingKind;

/// Parameters of a `training` node. Host and port come from `SERVICE_HOST` and
/// `SERVICE_PORT` (default 0.0.0.0:8001), as for every service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingParams {
    /// Directory of the jobs' state (`state.redb`) and files (`jobs/<job_id>/`:
    /// the model, its checkpoint, the worker's log).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Jobs trained at a time, each in its own worker process; more wait PENDING.
    #[serde(default = "default_max_running")]
    pub max_running: u32,
    /// Seconds a cancelled (or stopped) worker has to checkpoint and end after
    /// SIGINT before it is killed.
    #[serde(default = "default_cancel_grace_s")]
    pub cancel_grace_s: f64,
    /// Seconds to wait for the model registry when registering a trained model;
    /// a job whose registry does not answer in time fails saying so.
    #[serde(default = "default_registry_timeout_s")]
    pub registry_timeout_s: f64,
}

fn default_data_dir() -> String {
    "training-data".to_owned()
}

fn default_max_running() -> u32 {
    1
}

fn default_cancel_grace_s() -> f64 {
    10.0
}

fn default_registry_timeout_s() -> f64 {
    30.0
}

impl Params for TrainingParams {
    fn check(&self, check: &mut Check<'_>) {
        if self.data_dir.is_empty() {
            check.fail("data_dir", "".into(), "must name a directory");
        }
        check.at_least("max_running", u64::from(self.max_running), 1);
        for (key, value) in [
            ("cancel_grace_s", self.cancel_grace_s),
            ("registry_timeout_s", self.registry_timeout_s),
        ] {
            if !(value > 0.0 && value.is_finite() && value < 1e6) {
                check.fail(key, value.into(), "must be a number of seconds > 0");
            }
        }
    }
}

impl NodeKind for TrainingKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the training service: training jobs in worker processes, registered in the model registry (port 8001)";
    type Params = TrainingParams;

    /// It publishes trained models to the registry (its workers do not use the bus).
    fn topics(_params: &TrainingParams, _node: &str) -> NodeTopics {
        NodeTopics {
            serves: vec!["training".into()],
            calls: vec!["registry".into()],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: TrainingParams) -> Result<(), NodeError> {
        let config = ServiceConfig::from_env(DEFAULT_PORT).or_fail(SERVICE, "read its settings")?;
        let exe = match std::env::var_os(EXE_ENV) {
            Some(exe) => PathBuf::from(exe),
            None => std::env::current_exe()
                .or_fail(SERVICE, "find its own executable for the workers")?,
        };
        let data_dir = PathBuf::from(&params.data_dir);
        let trainer_config = TrainerConfig {
            data_dir: data_dir.clone(),
            exe,
            plugin_dirs: node.plugin_dirs().to_vec(),
            max_running: params.max_running as usize,
            cancel_grace: Duration::from_secs_f64(params.cancel_grace_s),
        };
        let registrar = BusRegistrar::new(
            node.bus().clone(),
            Duration::from_secs_f64(params.registry_timeout_s),
        );
        let on_change = crate::bus::progress_publisher(node.bus())?;
        let trainer = tokio::task::spawn_blocking(move || {
            Trainer::open(trainer_config, Box::new(registrar), on_change)
        })
        .await
        .or_fail(SERVICE, "open its data directory")?
        .or_fail(
            SERVICE,
            format!("open its data directory {}", data_dir.display()),
        )?;
        let trainer = Arc::new(trainer);
        let service = crate::api::service(trainer.clone(), config.clone());
        let metrics = service.metrics();
        let (listener, addr) = evospike_http::listen(&config)
            .await
            .or_fail(SERVICE, "open its HTTP port")?;
        let _queryables = crate::bus::serve(node.bus(), node.name(), trainer.clone())?;
        let scheduler = tokio::spawn(trainer.clone().run());
        tracing::info!(data_dir = %data_dir.display(), "node {} (training) serving http://{addr}", node.name());
        node.set_state(HealthState::Active);

        // Job counts for /metrics, refreshed in the background.
        let gauges = {
            let trainer = trainer.clone();
            tokio::spawn(async move {
                loop {
                    let t = trainer.clone();
                    if let Ok(Ok(jobs)) =
                        tokio::task::spawn_blocking(move || t.list(JobState::Unspecified)).await
                    {
                        for (state, gauge) in [
                            (JobState::Pending, "training_jobs_pending"),
                            (JobState::Running, "training_jobs_running"),
                        ] {
                            let n = jobs.iter().filter(|j| j.state() == state).count();
                            metrics.set_gauge(gauge, "Training jobs in this state.", n as f64);
                        }
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
        trainer.stop().await;
        scheduler.abort();
        result.or_fail(SERVICE, "serve HTTP")
    }
}
