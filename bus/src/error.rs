use std::time::Duration;

use evospike_schemas::{proto::ErrorCode, SchemaError};

/// Everything that can go wrong on the bus. Each variant names the key, endpoint or
/// topic it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The configuration is invalid (bad mode, endpoint, namespace, …).
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// A security setting (TLS file, password, ACL) cannot be used.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// The session could not be opened, e.g. nobody listens on a connect endpoint.
    #[error("cannot open the bus ({transport} transport, connect {connect:?}, listen {listen:?}): {reason}")]
    Open {
        /// Transport name.
        transport: &'static str,
        /// Endpoints the session had to connect to.
        connect: Vec<String>,
        /// Endpoints the session had to listen on.
        listen: Vec<String>,
        /// What the transport reported.
        reason: String,
    },
    /// None of the endpoints to connect to answered (no router there, wrong
    /// address or port, or a firewall).
    #[error(
        "none of the connect endpoints {} answered within {timeout:?}: check that a router \
         listens there (`evospike router --listen ENDPOINT`), the address and port, and firewalls",
        endpoints.join(", ")
    )]
    Unreachable {
        /// The endpoints tried.
        endpoints: Vec<String>,
        /// How long the session waited for them.
        timeout: Duration,
    },
    /// A name cannot be used in a key expression.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// "topic", "node", "service", "namespace", …
        what: &'static str,
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A declaration (publisher, subscriber, queryable, token) failed.
    #[error("cannot declare {what} on {key}: {reason}")]
    Declare {
        /// What was declared.
        what: &'static str,
        /// Its key expression.
        key: String,
        /// What the transport reported.
        reason: String,
    },
    /// Sending failed.
    #[error("cannot publish on {key}: {reason}")]
    Publish {
        /// Key of the publisher.
        key: String,
        /// What the transport reported.
        reason: String,
    },
    /// Nobody answered a query in time.
    #[error("no reply from {key} within {timeout:?} (is a service serving it?)")]
    Timeout {
        /// The queried key.
        key: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The query could not be sent or its replies could not be read.
    #[error("query to {key} failed: {reason}")]
    Query {
        /// The queried key.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The service answered with an error reply.
    #[error("{key} replied with error {code:?}: {message}")]
    Remote {
        /// The queried key.
        key: String,
        /// The error code of the reply.
        code: ErrorCode,
        /// The error message of the reply.
        message: String,
    },
    /// A received payload is not a valid message of the expected type.
    #[error("invalid payload on {key}: {source}")]
    Payload {
        /// Key the payload arrived on.
        key: String,
        /// What is wrong with it.
        #[source]
        source: SchemaError,
    },
    /// The subscription or session has been closed.
    #[error("{key}: the bus was closed")]
    Closed {
        /// Key of the closed subscription.
        key: String,
    },
}
