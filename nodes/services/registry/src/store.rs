//! The registry's state: three tables of the shared [`evospike_http::store`]
//! (one redb file, every batch committed durably and atomically).

pub use evospike_http::store::{RedbStore, Store, StoreError, Table, Write};

/// `model_id` → model record.
pub const MODELS: Table = Table::new("models");
/// `model_id/version` → version record.
pub const VERSIONS: Table = Table::new("versions");
/// `model_id/alias` → version.
pub const ALIASES: Table = Table::new("aliases");

/// Every table of the registry.
pub const TABLES: [Table; 3] = [MODELS, VERSIONS, ALIASES];
