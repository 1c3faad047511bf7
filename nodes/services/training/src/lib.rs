//! The training service (port 8001).
//!
//! `POST /train` submits a job: it is checked at once (model type, data files,
//! learner and its parameters — a bad request never becomes a job) and waits
//! PENDING for a slot (`max_running` at a time). A job runs `evospike train` in
//! its own worker process, which checkpoints after every epoch and reports each
//! epoch (loss, accuracy, samples/s) — visible in `GET /jobs/{job_id}` and
//! published on the bus. When it finishes, the model goes to the model registry
//! with its metrics and provenance, and the job is SUCCEEDED (or FAILED, saying
//! why). `POST /jobs/{job_id}/cancel` cancels a job in any state but a final
//! one. A job that was running when the service stopped or was killed resumes
//! from its checkpoint when it starts again.
//!
//! The pieces, bottom up: [`jobs`] (the records, in the shared redb
//! [`evospike_store`]), [`plan`] (checking a request; the worker's command
//! line), [`worker`] (the worker process), [`publish`] (registering a model),
//! [`trainer`] (the lifecycle), [`api`] (HTTP on the [`evospike_http`] kit),
//! [`bus`] (queryables and progress on the bus; the registry client) and
//! [`TrainingKind`] (the node kind: `evospike run training`).
//!
//! ```no_run
//! # async fn demo(bus: evospike_bus::Bus) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use evospike_training::trainer::{Trainer, TrainerConfig};
//! use evospike_training::{api, bus::BusRegistrar};
//!
//! let config = TrainerConfig {
//!     data_dir: "training-data".into(),
//!     exe: "evospike".into(),
//!     plugin_dirs: Vec::new(),
//!     max_running: 1,
//!     cancel_grace: Duration::from_secs(10),
//! };
//! let registrar = BusRegistrar::new(bus.clone(), Duration::from_secs(30));
//! let trainer = Arc::new(Trainer::open(config, Box::new(registrar), Box::new(|_| {}))?);
//! tokio::spawn(trainer.clone().run());
//! let http = evospike_http::ServiceConfig::from_env(8001)?;
//! let router = api::service(trainer, http.clone()).into_router();
//! evospike_http::serve(evospike_http::bind(&http).await?, router, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod bus;
pub mod jobs;
mod kind;
pub mod plan;
pub mod publish;
pub mod trainer;
pub mod worker;

pub use kind::{TrainingKind, TrainingParams, DEFAULT_PORT, EXE_ENV};
pub use trainer::{Trainer, TrainingError};
