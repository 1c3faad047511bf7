//! Wire types of evospike: everything that crosses a process boundary.
//!
//! evospike has two planes, and this crate holds the types of both:
//!
//! - **Control plane** ([`proto`]): protobuf messages compiled from
//!   `schemas/proto/evospike/v1/*.proto` by prost (driven by protox, so no `protoc`
//!   is needed). Node identity and health, log records, metric samples, the error
//!   reply and the request/reply envelopes of the bus's query/reply. They also derive
//!   serde, so JSON views (HTTP, `--json`) come from the same definitions.
//! - **Data plane** ([`spike`]): [`SpikeTensor`], an rkyv archive that receivers read
//!   in place without deserializing. [`SpikeTensor::view`] validates untrusted bytes
//!   (structure with bytecheck, then evospike's own invariants) and never panics.
//!
//! Besides the wire types, [`contract`] holds the contract between the launcher
//! and a node process: the `EVOSPIKE_*` environment, the argument forms and the
//! default router endpoint.
//!
//! ```
//! use evospike_schemas::{SpikeTensor, SpikeBody};
//!
//! // A 2×64 layer where neurons 3 and 100 fired at step 7.
//! let tensor = SpikeTensor::builder("layer1")
//!     .shape([2, 64])
//!     .step(7)
//!     .sparse(vec![3, 100])
//!     .unwrap();
//! let bytes = tensor.to_aligned_bytes();
//!
//! let view = SpikeTensor::view(&bytes).unwrap();
//! assert_eq!(view.header.step.to_native(), 7);
//! assert_eq!(view.active_count(), 2);
//! assert_eq!(view.active_indices().collect::<Vec<_>>(), vec![3, 100]);
//!
//! // Garbage is an error, never a panic.
//! assert!(SpikeTensor::view(&[0xff; 5]).is_err());
//! # let _ = SpikeBody::Sparse(vec![]);
//! ```
#![warn(missing_docs)]

pub mod contract;
mod error;
pub mod json;
pub mod proto;
pub mod spike;

pub use error::SchemaError;
pub use spike::{
    ArchivedSpikeBody, ArchivedSpikeHeader, ArchivedSpikeTensor, Encoding, SpikeBody, SpikeHeader,
    SpikeLayout, SpikeTensor, SpikeTensorBuilder, ALIGNMENT,
};

/// Version of the wire format of both planes. A receiver rejects a data-plane
/// payload whose version differs ([`SchemaError::WireVersion`]); control-plane
/// envelopes carry it too.
pub const WIRE_VERSION: u16 = 1;
