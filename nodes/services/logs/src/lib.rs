//! The log consumer: a node (`evospike run logs`) that subscribes to the log
//! topic of every node (`evospike/<ns>/log/**`) and stores each LogRecord in an
//! embedded store, written durably in small batches — so the last words of a
//! node that crashed are still there after it is gone. `evospike log` reads them
//! back through the `evospike/<ns>/svc/logs/query` queryable
//! (`schemas/proto/evospike/v1/svc/logs.proto`).

mod kind;
pub mod store;

pub use kind::{LogsKind, LogsParams};
pub use store::{LogError, LogStore};
