use evospike_bus::BusError;

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Bad parameters, flags or environment.
    #[error("configuration error: {0}")]
    Config(String),
    /// A parameter is missing or has the wrong type.
    #[error("parameter {name:?}: {reason}")]
    Param {
        /// Parameter name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The kind asked for does not exist.
    #[error("unknown node kind {0:?} (built-in kinds: {kinds})", kinds = crate::KINDS.join(", "))]
    UnknownKind(String),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A tensor could not be built (bad shape or size).
    #[error(transparent)]
    Schema(#[from] evospike_schemas::SchemaError),
    /// A plugin failed.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// Reading a stimulus or other file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The pipeline's step stream broke (gap, duplicate, lag beyond the bound).
    #[error("{node}: {reason}")]
    Pipeline {
        /// The node that noticed.
        node: String,
        /// What happened.
        reason: String,
    },
}
