//! The inference service (port 8002).
//!
//! Clients send samples (`POST /infer`, `POST /batch_infer`, or the bus methods
//! `infer` / `batch_infer`) naming a model of the registry; the service answers
//! with the predicted class, the top classes and the class scores.
//!
//! The pieces, from the request inwards:
//!
//! - [`api`] (HTTP on the [`evospike_http`] kit) and [`bus`] (queryables under
//!   `evospike/<ns>/svc/inference/<method>`) hand requests to [`Inference`];
//! - [`input`] turns a request's `inputs` — a base64 PNG or raw pixels, plain
//!   values, or a spike train — into a [`Sample`](input::Sample) for the model;
//! - [`cache`] keeps `MODEL_CACHE_SIZE` models, least recently used out first,
//!   never one in use or loading, each loaded once however many ask for it;
//!   models come from the registry over the bus, checked by sha256
//!   ([`service`]);
//! - [`batch`] queues a model's samples and steps them together (dynamic
//!   batching: max batch size, max delay from the oldest, max queue length);
//! - [`net`] is the batched forward pass, bit-identical to
//!   [`InferenceNet`](evospike_learning::infer::InferenceNet) per sample, so the
//!   service predicts what `evospike eval` predicts;
//! - [`distributed`] serves a model as layer nodes instead (`distributed: true`):
//!   the service encodes each sample onto the bus and reads the readout's scores;
//! - [`InferenceKind`] is the node kind: `evospike run inference`.
//!
//! ```no_run
//! # async fn demo(bus: evospike_bus::Bus) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use evospike_inference::{api, batch::BatchSettings, neurons::Neurons, Inference, Settings};
//!
//! let settings = Settings {
//!     cache_size: 5,
//!     batch: BatchSettings {
//!         max_batch: 32,
//!         max_delay: std::time::Duration::from_millis(2),
//!         max_queue: 1024,
//!         workers: 2,
//!     },
//!     registry_timeout: std::time::Duration::from_secs(30),
//!     distributed: None,
//! };
//! let backend: Arc<dyn evospike_compute::Backend> = evospike_compute::backend_from_env()?.into();
//! let neurons = Arc::new(Neurons::new::<&str>(&[])?);
//! let config = evospike_http::ServiceConfig::from_env(8002)?;
//! let (service, _inference) = api::service_with(config.clone(), |metrics| {
//!     Arc::new(Inference::new(bus, backend, neurons, settings, Some(metrics)))
//! });
//! let listener = evospike_http::bind(&config).await?;
//! evospike_http::serve(listener, service.into_router(), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod batch;
pub mod bus;
pub mod cache;
pub mod distributed;
pub mod input;
mod kind;
pub mod net;
pub mod neurons;
pub mod service;

pub use kind::{cache_size, InferenceKind, InferenceParams, DEFAULT_CACHE_SIZE, DEFAULT_PORT};
pub use service::{Engine, Inference, Served, Settings};
