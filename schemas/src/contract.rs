//! The contract between the launcher and a node process.
//!
//! A launch file's `kind:` node becomes a process `EXE run KIND [ARGS…]` (see
//! [`run_args`]) whose identity, parameters, remaps, plugins and bus settings
//! arrive in `EVOSPIKE_*` environment variables ([`env`]). The launcher writes
//! them, the node runtime and the bus read them, and the command line offers the
//! same settings as flags; all of them use the names, list separators and
//! argument forms defined here, so the two sides cannot drift apart.
//!
//! | variable | value |
//! |---|---|
//! | `EVOSPIKE_NODE_NAME` | the node's name |
//! | `EVOSPIKE_NAMESPACE` | namespace of every key (default [`DEFAULT_NAMESPACE`]) |
//! | `EVOSPIKE_PARAMS` | parameters, a JSON object |
//! | `EVOSPIKE_REMAP` | topic remaps, a JSON object `{from: to}` |
//! | `EVOSPIKE_PLUGINS` | the node's plugin list, a JSON array as written in the launch file |
//! | `EVOSPIKE_PLUGIN_DIRS` | plugin folders, separated by [`DIR_SEPARATOR`] |
//! | `EVOSPIKE_BUS_TRANSPORT` | `zenoh` or `local` |
//! | `EVOSPIKE_BUS_MODE` | `peer`, `client` or `router` |
//! | `EVOSPIKE_BUS_LISTEN`, `EVOSPIKE_BUS_CONNECT` | endpoints, separated by [`LIST_SEPARATOR`] |
//! | `EVOSPIKE_BUS_SHM` | `0`, `false`, `off` or `no` turn shared memory off |
//! | `EVOSPIKE_BUS_TLS_CA`, `…_TLS_CERT`, `…_TLS_KEY` | PEM files: CA, this machine's certificate and key |
//! | `EVOSPIKE_BUS_TLS_MTLS` | `1`/`true`/`on`/`yes`: mutual TLS |
//! | `EVOSPIKE_BUS_USER`, `EVOSPIKE_BUS_PASSWORD` | user/password authentication |
//! | `EVOSPIKE_BUS_SECRET_FILE` | a cluster secret the password is derived from |
//! | `EVOSPIKE_BUS_USERS_FILE` | a router's `user:password` file |
//! | `EVOSPIKE_BUS_ACL` | a router's access-control file (JSON) |
//! | `EVOSPIKE_BUS_ZID` | a fixed Zenoh id (hex), for routers of a secured cluster |
//! | `EVOSPIKE_EXE` | the evospike executable that runs `kind:` nodes (the launcher's own by default) |
//!
//! ```
//! use evospike_schemas::contract::{self, env};
//!
//! assert_eq!(contract::run_args("layer"), ["run", "layer"]);
//! assert_eq!(contract::split_key_value("size=100"), Some(("size", "100")));
//! assert_eq!(contract::split_remap("in:=layer1/spikes"), Some(("in", "layer1/spikes")));
//! let dirs = contract::join_dirs(["/opt/a", "/opt/b"]);
//! assert_eq!(contract::split_dirs(&dirs), ["/opt/a", "/opt/b"]);
//! assert_eq!(env::PARAMS, "EVOSPIKE_PARAMS");
//! ```

/// Names of the environment variables of the contract.
pub mod env {
    /// The node's name.
    pub const NODE_NAME: &str = "EVOSPIKE_NODE_NAME";
    /// Namespace of every key (read by the node and by the bus).
    pub const NAMESPACE: &str = "EVOSPIKE_NAMESPACE";
    /// Parameters, a JSON object.
    pub const PARAMS: &str = "EVOSPIKE_PARAMS";
    /// Topic remaps, a JSON object from → to.
    pub const REMAP: &str = "EVOSPIKE_REMAP";
    /// Plugins of the node, a JSON array.
    pub const PLUGINS: &str = "EVOSPIKE_PLUGINS";
    /// Plugin folders, separated by [`DIR_SEPARATOR`](super::DIR_SEPARATOR).
    pub const PLUGIN_DIRS: &str = "EVOSPIKE_PLUGIN_DIRS";
    /// `zenoh` or `local`.
    pub const BUS_TRANSPORT: &str = "EVOSPIKE_BUS_TRANSPORT";
    /// `peer`, `client` or `router`.
    pub const BUS_MODE: &str = "EVOSPIKE_BUS_MODE";
    /// Listen endpoints, separated by [`LIST_SEPARATOR`](super::LIST_SEPARATOR).
    pub const BUS_LISTEN: &str = "EVOSPIKE_BUS_LISTEN";
    /// Connect endpoints, separated by [`LIST_SEPARATOR`](super::LIST_SEPARATOR).
    pub const BUS_CONNECT: &str = "EVOSPIKE_BUS_CONNECT";
    /// `0`, `false`, `off` or `no` turn shared memory off.
    pub const BUS_SHM: &str = "EVOSPIKE_BUS_SHM";
    /// PEM file of the cluster's certificate authority (turns TLS on).
    pub const BUS_TLS_CA: &str = "EVOSPIKE_BUS_TLS_CA";
    /// PEM file of this machine's certificate.
    pub const BUS_TLS_CERT: &str = "EVOSPIKE_BUS_TLS_CERT";
    /// PEM file of this machine's private key.
    pub const BUS_TLS_KEY: &str = "EVOSPIKE_BUS_TLS_KEY";
    /// `1`/`true`/`on`/`yes`: mutual TLS.
    pub const BUS_TLS_MTLS: &str = "EVOSPIKE_BUS_TLS_MTLS";
    /// The user this session authenticates as.
    pub const BUS_USER: &str = "EVOSPIKE_BUS_USER";
    /// Its password.
    pub const BUS_PASSWORD: &str = "EVOSPIKE_BUS_PASSWORD";
    /// A cluster secret file the password is derived from (instead of a password).
    pub const BUS_SECRET_FILE: &str = "EVOSPIKE_BUS_SECRET_FILE";
    /// A router's file of accepted `user:password` lines.
    pub const BUS_USERS_FILE: &str = "EVOSPIKE_BUS_USERS_FILE";
    /// A router's access-control file (JSON).
    pub const BUS_ACL: &str = "EVOSPIKE_BUS_ACL";
    /// A fixed Zenoh id (hex) for this session.
    pub const BUS_ZID: &str = "EVOSPIKE_BUS_ZID";
    /// The evospike executable that runs `kind:` nodes.
    pub const EXE: &str = "EVOSPIKE_EXE";
}

/// What a node of the launch graph publishes, subscribes and serves, as its
/// kind derives it from its parameters (topic names before remapping). The
/// launcher builds its access-control list from these. An `exec:` node of a
/// launch file declares them under `topics:` (the same keys, `watches` by the
/// names of [`Watch`] in snake case).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeTopics {
    /// Topics it publishes.
    pub publishes: Vec<String>,
    /// Topics it subscribes to.
    pub subscribes: Vec<String>,
    /// Services whose methods it serves. A serving node also answers its HTTP
    /// API over the bus, announces itself as an instance of each service and
    /// may publish events under the service's keys.
    pub serves: Vec<String>,
    /// Services whose methods it calls.
    pub calls: Vec<String>,
    /// What it reads from every node of its namespace (a gateway, monitoring,
    /// the log consumer).
    pub watches: Vec<Watch>,
}

/// A namespace-wide read right (see [`NodeTopics::watches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    /// Every node's log records.
    Logs,
    /// Every node's metrics.
    Metrics,
    /// Every topic (e.g. a dashboard's spike raster of any topic).
    Topics,
    /// Every node's HTTP API over the bus (a gateway, monitoring's scrapes).
    HttpApis,
}

/// The exit code of a node (or tool) whose bus could not reach any of its
/// connect endpoints: the launcher reports it as such.
pub const EXIT_UNREACHABLE: u8 = 3;

/// The Zenoh endpoint of the default local router (`evospike router`).
pub const DEFAULT_ROUTER: &str = "tcp/127.0.0.1:7447";

/// The namespace of nodes and tools that are not given one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The subcommand that runs one node: `EXE run KIND`.
pub const RUN: &str = "run";

/// Separates the endpoints of `EVOSPIKE_BUS_LISTEN` and `EVOSPIKE_BUS_CONNECT`.
pub const LIST_SEPARATOR: char = ',';

/// Separates the folders of `EVOSPIKE_PLUGIN_DIRS` (as in `PATH`).
pub const DIR_SEPARATOR: char = ':';

/// The arguments that start a node of `kind`: `run KIND` (its own arguments follow).
pub fn run_args(kind: &str) -> [String; 2] {
    [RUN.to_owned(), kind.to_owned()]
}

/// `KEY=VALUE` (a parameter `-p`, a launch `--arg`): the key trimmed, the value as
/// written; `None` without `=`.
pub fn split_key_value(text: &str) -> Option<(&str, &str)> {
    text.split_once('=').map(|(key, value)| (key.trim(), value))
}

/// `FROM:=TO` (a topic remap `-r`); `None` without `:=`.
pub fn split_remap(text: &str) -> Option<(&str, &str)> {
    text.split_once(":=")
}

/// Endpoints joined for `EVOSPIKE_BUS_LISTEN` / `EVOSPIKE_BUS_CONNECT`.
pub fn join_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    join(items, LIST_SEPARATOR)
}

/// The endpoints of `EVOSPIKE_BUS_LISTEN` / `EVOSPIKE_BUS_CONNECT` (trimmed, empty ones dropped).
pub fn split_list(value: &str) -> Vec<String> {
    split(value, LIST_SEPARATOR)
}

/// Folders joined for `EVOSPIKE_PLUGIN_DIRS`.
pub fn join_dirs<S: AsRef<str>>(dirs: impl IntoIterator<Item = S>) -> String {
    join(dirs, DIR_SEPARATOR)
}

/// The folders of `EVOSPIKE_PLUGIN_DIRS` (empty ones dropped).
pub fn split_dirs(value: &str) -> Vec<String> {
    split(value, DIR_SEPARATOR)
}

/// Whether an `EVOSPIKE_BUS_SHM` value turns shared memory off.
pub fn shm_disabled(value: &str) -> bool {
    matches!(value.trim(), "0" | "false" | "off" | "no")
}

/// A boolean flag variable: `Some(true)` for `1`/`true`/`on`/`yes`,
/// `Some(false)` for `0`/`false`/`off`/`no`, `None` otherwise.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

fn join<S: AsRef<str>>(items: impl IntoIterator<Item = S>, separator: char) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    items.join(&separator.to_string())
}

fn split(value: &str, separator: char) -> Vec<String> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_keep_the_value_as_written() {
        assert_eq!(split_key_value("name = a=b"), Some(("name", " a=b")));
        assert_eq!(split_key_value("rate"), None);
        assert_eq!(split_remap("a:=b"), Some(("a", "b")));
        assert_eq!(split_remap("a=b"), None);
    }

    #[test]
    fn lists_round_trip_and_drop_empty_items() {
        let endpoints = ["tcp/127.0.0.1:7447", "tcp/127.0.0.1:7448"];
        assert_eq!(split_list(&join_list(endpoints)), endpoints);
        assert_eq!(split_list(" a, ,b "), ["a", "b"]);
        assert_eq!(split_dirs("/a::/b"), ["/a", "/b"]);
        assert!(split_dirs("").is_empty());
        assert!(shm_disabled("off") && !shm_disabled("1"));
    }
}
