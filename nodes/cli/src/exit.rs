//! Exit codes: one policy for every command, documented in `docs/cli.md`.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for `launch`: every node ended well) |
//! | 1 | something failed while running: a node failed, a query timed out, a topic stayed silent |
//! | 2 | the input is wrong — command line, launch file, node parameters (a plugin's too), node kind, plugin name — and nothing was started |
//! | 3 | the bus could not be reached (no router at the connect endpoints) |
//!
//! Library errors are typed; [`code`] finds the first cause in an error's chain
//! that decides the class, so a message can gain context without changing its
//! exit code.

use std::fmt;

use evospike_bus::BusError;
use evospike_launch::{ArgPairError, LoadErrors};
use evospike_node::NodeError;
use evospike_plugin_api::PluginError;
use evospike_plugin_host::HostError;

/// Success.
pub(crate) const SUCCESS: u8 = 0;
/// Something failed while running.
pub(crate) const FAILURE: u8 = 1;
/// The input is wrong; nothing was started. (clap uses 2 for a bad command line too.)
pub(crate) const INVALID_INPUT: u8 = 2;
/// The bus could not be reached.
pub(crate) const UNREACHABLE: u8 = evospike_schemas::contract::EXIT_UNREACHABLE;

/// A mistake in the command's own input, found after the command line parsed
/// (a flag's value out of range, a bad list of indices).
#[derive(Debug)]
pub(crate) struct InvalidInput(pub(crate) String);

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// An [`InvalidInput`] error with message `message`.
pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InvalidInput(message.into()))
}

/// The exit code of a command that failed with `err`.
pub(crate) fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(code) = class(cause) {
            return code;
        }
    }
    FAILURE
}

fn class(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.is::<InvalidInput>() || cause.is::<LoadErrors>() || cause.is::<ArgPairError>() {
        return Some(INVALID_INPUT);
    }
    // A data set or model file that cannot be read or is not what it claims.
    if cause.is::<evospike_learning::data::DataError>()
        || cause.is::<evospike_learning::model::ModelError>()
    {
        return Some(INVALID_INPUT);
    }
    if let Some(err) = cause.downcast_ref::<NodeError>() {
        return match err {
            _ if err.is_input() => Some(INVALID_INPUT),
            NodeError::Bus(bus) => bus_class(bus),
            // A plugin's own cause decides (a rejected parameter is input).
            _ => None,
        };
    }
    if let Some(bus) = cause.downcast_ref::<BusError>() {
        return bus_class(bus);
    }
    // A plugin name that no plugin has is the user's input too.
    if let Some(HostError::NotFound { .. }) = cause.downcast_ref::<HostError>() {
        return Some(INVALID_INPUT);
    }
    match cause.downcast_ref::<PluginError>() {
        Some(PluginError::InvalidConfig { .. } | PluginError::InvalidParameter { .. }) => {
            Some(INVALID_INPUT)
        }
        _ => None,
    }
}

fn bus_class(err: &BusError) -> Option<u8> {
    match err {
        BusError::Unreachable { .. } => Some(UNREACHABLE),
        BusError::InvalidName { .. } | BusError::Config(_) | BusError::Security(_) => {
            Some(INVALID_INPUT)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_deciding_cause_gives_the_code() {
        let input = invalid("bad --rate 0").context("cannot publish");
        assert_eq!(code(&input), INVALID_INPUT);
        let name = BusError::InvalidName {
            what: "topic",
            name: "a//b".into(),
            reason: "empty path segment",
        };
        assert_eq!(code(&anyhow::Error::new(name)), INVALID_INPUT);
        let unreachable = BusError::Unreachable {
            endpoints: vec!["tcp/127.0.0.1:1".into()],
            timeout: std::time::Duration::from_secs(5),
        };
        let err = anyhow::Error::new(NodeError::Bus(unreachable)).context("cannot open");
        assert_eq!(code(&err), UNREACHABLE);
        assert_eq!(code(&anyhow::anyhow!("a node failed")), FAILURE);
    }
}
