//! Multi-process tests of evospike live in `tests/tests/*.rs`; the programs they
//! spawn live in `src/bin/`. This library holds what both share: the summary a
//! peer prints when it is done.

use serde::{Deserialize, Serialize};

/// What `spike-peer sub` prints as its last line (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubSummary {
    /// Tensors received and validated.
    pub received: u64,
    /// Whether sequence numbers and steps arrived as 0, 1, 2, … with none missing.
    pub in_order: bool,
    /// Payloads that arrived in shared memory.
    pub shm: u64,
    /// Payloads copied before they could be read.
    pub copies: u64,
    /// Bytes those copies moved.
    pub bytes_copied: u64,
    /// Payloads rejected by validation.
    pub invalid: u64,
    /// Steps that never arrived (gaps, and the tail when the stream ended early).
    pub missing: u64,
    /// Sum of active counts (checks the content survived).
    pub active_total: u64,
}
