//! A [`LaunchPlan`]: a launch file with every include, arg and substitution
//! resolved, validated, and filtered to one machine. Nothing in it can fail to
//! parse any more; the supervisor only has to start what it says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use evospike_schemas::contract;
use regex::Regex;

pub use crate::schema::RespawnMode;
use crate::security::GraphNode;

/// Default time between SIGINT and SIGTERM during shutdown.
pub const DEFAULT_SIGINT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time between SIGTERM and SIGKILL during shutdown.
pub const DEFAULT_SIGTERM_TIMEOUT: Duration = Duration::from_secs(3);
/// Default first respawn delay (doubled after each restart).
pub const DEFAULT_RESPAWN_DELAY: Duration = Duration::from_millis(500);
/// Default cap of the respawn delay.
pub const DEFAULT_RESPAWN_DELAY_MAX: Duration = Duration::from_secs(30);
/// Default time a dependency must stay alive before its dependents start.
pub const DEFAULT_READY_DELAY: Duration = Duration::from_millis(200);
/// Default time a node has to print its `ready_when` line.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A launch, ready to run.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    /// Name of the launch (root file's `name:` or its file stem); names the log folder.
    pub name: String,
    /// The root launch file.
    pub file: PathBuf,
    /// The machine the plan was filtered for, if any.
    pub machine: Option<String>,
    /// The nodes to start on this machine, in file order (includes first).
    pub nodes: Vec<NodeSpec>,
    /// Shutdown timeouts from the root file's `shutdown:` section (or defaults).
    pub shutdown: ShutdownTimeouts,
    /// Every node of the launch, on every machine: what the access-control list
    /// of a secured launch is derived from.
    pub graph: Vec<GraphNode>,
}

impl LaunchPlan {
    /// Whether a router of this machine enforces the access-control list.
    pub fn enforces_acl(&self) -> bool {
        self.graph
            .iter()
            .any(|g| g.enforces_acl && self.nodes.iter().any(|n| n.name == g.name))
    }
}

/// How long each shutdown stage waits before escalating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownTimeouts {
    /// Wait after SIGINT before SIGTERM.
    pub sigint: Duration,
    /// Wait after SIGTERM before SIGKILL.
    pub sigterm: Duration,
}

impl Default for ShutdownTimeouts {
    fn default() -> Self {
        ShutdownTimeouts {
            sigint: DEFAULT_SIGINT_TIMEOUT,
            sigterm: DEFAULT_SIGTERM_TIMEOUT,
        }
    }
}

/// One node process to supervise.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Unique name in the launch.
    pub name: String,
    /// Namespace (`EVOSPIKE_NAMESPACE`).
    pub namespace: String,
    /// Machine label, if any.
    pub machine: Option<String>,
    /// Program to execute (the evospike executable for `kind:` nodes).
    pub program: PathBuf,
    /// Its arguments (`run KIND` first for `kind:` nodes).
    pub args: Vec<String>,
    /// Variables added to the launcher's environment: `EVOSPIKE_*` and the node's `env:`.
    pub env: BTreeMap<String, String>,
    /// Restart policy.
    pub respawn: RespawnPolicy,
    /// Names of nodes (on this machine) that must be ready before this one starts.
    pub depends_on: Vec<String>,
    /// When this node counts as ready for its dependents.
    pub readiness: Readiness,
    /// When this node ends for good, the whole launch shuts down.
    pub required: bool,
    /// `file:line` where the node is defined, for messages.
    pub defined_at: String,
}

/// One line per node, as `--check` prints it: `name [namespace] program args…`.
impl std::fmt::Display for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] {} {}",
            self.name,
            self.namespace,
            self.program.display(),
            self.args.join(" ")
        )
    }
}

/// A `--arg` value that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--arg {0:?} is not KEY=VALUE")]
pub struct ArgPairError(pub String);

/// Parses `--arg KEY=VALUE` pairs into the args of [`LoadOptions`](crate::LoadOptions)
/// (keys trimmed, values kept as written).
pub fn parse_arg_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, ArgPairError> {
    pairs
        .iter()
        .map(|pair| match contract::split_key_value(pair) {
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
            None => Err(ArgPairError(pair.clone())),
        })
        .collect()
}

/// Restart policy of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct RespawnPolicy {
    /// When to restart.
    pub mode: RespawnMode,
    /// At most this many restarts (`None`: no limit).
    pub max_restarts: Option<u32>,
    /// Delay before the first restart; doubled after each one.
    pub delay: Duration,
    /// Cap of the doubled delay.
    pub delay_max: Duration,
}

impl RespawnPolicy {
    /// Delay before restart number `restart` (0-based): `delay * 2^restart`, capped.
    pub fn backoff(&self, restart: u32) -> Duration {
        let factor = 2u32.saturating_pow(restart.min(30));
        self.delay.saturating_mul(factor).min(self.delay_max)
    }
}

/// When a started node counts as ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Still alive this long after it was spawned.
    Delay(Duration),
    /// Printed (stdout or stderr) a line matching `pattern` within `timeout`.
    Line {
        /// The pattern.
        pattern: Regex,
        /// How long to wait for it.
        timeout: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_args_are_key_value_pairs() {
        let args = parse_arg_pairs(&["rate=100".into(), "name = a=b".into()]).unwrap();
        assert_eq!(args["rate"], "100");
        assert_eq!(args["name"], " a=b");
        let err = parse_arg_pairs(&["rate".into()]).unwrap_err().to_string();
        assert_eq!(err, "--arg \"rate\" is not KEY=VALUE");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RespawnPolicy {
            mode: RespawnMode::OnFailure,
            max_restarts: None,
            delay: Duration::from_millis(100),
            delay_max: Duration::from_millis(500),
        };
        assert_eq!(policy.backoff(0), Duration::from_millis(100));
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(3), Duration::from_millis(500));
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(500));
    }
}
