//! The evospike bus: how nodes talk.
//!
//! Every node, service and tool opens one [`Bus`] ([`Bus::open`] with a
//! [`BusConfig`]) and uses it for
//!
//! - **spike tensors** (data plane): [`Bus::spike_publisher`] lends shared-memory
//!   buffers that a producer computes its spikes into ([`SpikePublisher::loan`], no
//!   copy at all) or serializes an owned tensor straight into one
//!   ([`SpikePublisher::publish`], one copy, counted in [`SendStats`]); [`Bus::spike_subscriber`] hands out validated views that
//!   borrow what arrived. Copies that must happen are counted ([`ReceiveStats`]).
//! - **protobuf messages** (control plane): [`Bus::message_publisher`] /
//!   [`Bus::message_subscriber`] for logs, metrics and events, and
//!   [`Bus::serve`] / [`Bus::request`] for services, with timeouts and typed errors.
//! - **discovery**: [`Bus::announce_node`] declares a liveliness token;
//!   [`Bus::nodes`] lists the nodes alive.
//!
//! - **security** ([`security`]): TLS and mutual TLS, user/password
//!   authentication and an access-control list, all in [`BusConfig`].
//!
//! Keys follow one layout, owned by [`KeySpace`]. The bytes move over a
//! [`Transport`](transport::Transport) — the COMMUNICATION plugin contract — either
//! Zenoh (default; multicast scouting off unless asked for) or the in-process
//! `local` transport.
//!
//! ```
//! use evospike_bus::{Bus, BusConfig};
//! use evospike_schemas::SpikeTensor;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let bus = Bus::open(BusConfig::local("doc-example")).await?;
//! let subscriber = bus.spike_subscriber("layer1/spikes")?;
//! let mut publisher = bus.spike_publisher("layer1/spikes")?;
//!
//! let mut tensor = SpikeTensor::builder("layer1").shape([100]).step(0).sparse(vec![4, 42])?;
//! publisher.publish(&mut tensor)?;
//!
//! let msg = subscriber.recv().await?;
//! assert_eq!(msg.view().active_indices().collect::<Vec<_>>(), vec![4, 42]);
//! assert!(!msg.was_copied());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

pub mod acl;
mod bus;
mod config;
mod error;
mod keys;
mod message;
mod rpc;
pub mod security;
mod spike;
pub mod transport;

pub use bus::{Bus, Declared, Subscription};
pub use config::{BusConfig, Mode, TransportKind};
pub use error::BusError;
pub use keys::{KeyKind, KeySpace};
pub use message::{Keyed, MessagePublisher, MessageSubscriber};
pub use rpc::Call;
pub use security::{AuthConfig, SecurityError, TlsConfig};
pub use spike::{
    ReceiveStats, ReceiveStatsSnapshot, SendStats, SendStatsSnapshot, SpikeLoan, SpikeMsg,
    SpikePublisher, SpikeSubscriber,
};

pub use evospike_schemas as schemas;
