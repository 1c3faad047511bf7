//! The model registry service (port 8003).
//!
//! A model is identified by a `model_id` and has versions. A version is
//! registered (`POST /models/register`), its files are uploaded
//! (`POST /models/{model_id}/upload`), and finalizing it checks them and makes it
//! ready — immutable from then on, listed (`GET /models`, `GET /models/{id}`) and
//! served (`GET /models/{model_id}/download/{filename}`, with its sha256, an ETag
//! and `Range` support). Aliases such as `production` point at ready versions.
//!
//! The pieces, bottom up: the state, in an embedded redb file behind the
//! [`evospike_store::Store`] trait, [`blobs`] (files by content hash, written
//! crash-safely), [`registry`] (the rules), the records as the protobuf messages of its API
//! (which are also the HTTP JSON), [`api`] (HTTP on the
//! [`evospike_http`] kit), [`bus`] (queryables on the bus) and [`RegistryKind`] (the node kind:
//! `evospike run registry`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use evospike_registry::{api, Registry};
//!
//! let registry = Arc::new(Registry::open(std::path::Path::new("registry-data"))?);
//! let config = evospike_http::ServiceConfig::from_env(8003)?;
//! let router = api::service(registry, config.clone(), api::Limits::new(1 << 30))
//!     .into_router();
//! evospike_http::serve(evospike_http::bind(&config).await?, router, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod blobs;
pub mod bus;
mod kind;
mod messages;
pub mod registry;

pub use kind::{RegistryKind, RegistryParams, DEFAULT_PORT};
pub use registry::{Registry, RegistryError};
