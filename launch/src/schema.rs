//! The launch-file schema as written, before substitution results are resolved
//! into a [`LaunchPlan`](crate::LaunchPlan). Unknown keys are errors everywhere.

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// One launch file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    /// Name of the launch (root file only); defaults to the file stem.
    #[serde(default)]
    pub(crate) name: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)] // Free text for humans; accepted so that it is not an unknown key.
    pub(crate) description: Option<String>,
    /// Default namespace of this file's nodes.
    #[serde(default)]
    pub(crate) namespace: Option<Spanned<String>>,
    /// Read from the YAML tree before deserialising (see `load::read_args`).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) args: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) bus: Option<RawBus>,
    #[serde(default)]
    pub(crate) shutdown: Option<RawShutdown>,
    #[serde(default)]
    pub(crate) include: Vec<RawInclude>,
    #[serde(default)]
    pub(crate) nodes: Vec<RawNode>,
}

/// One entry of `args:` written as a mapping (a bare scalar is the default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArg {
    #[serde(default)]
    pub(crate) default: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // Shown to humans reading the file.
    pub(crate) description: Option<String>,
}

/// Bus settings handed to nodes as `EVOSPIKE_BUS_*`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBus {
    #[serde(default)]
    pub(crate) mode: Option<String>,
    #[serde(default)]
    pub(crate) listen: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) connect: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) security: Option<RawSecurity>,
}

/// `bus.security`: TLS from a folder of certificates, authentication from a
/// cluster secret, and the access-control list derived from the graph.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    /// Folder with `ca.pem` and each machine's `<machine>.pem` / `<machine>.key`
    /// (what `evospike certs` writes).
    #[serde(default, deserialize_with = "optional_path")]
    pub(crate) certs: Option<String>,
    /// Mutual TLS: routers accept only sessions with a certificate of the CA.
    #[serde(default)]
    pub(crate) mtls: bool,
    /// The cluster secret file every node's password is derived from.
    #[serde(default, deserialize_with = "optional_path")]
    pub(crate) secret: Option<String>,
    /// Routers enforce the least-privilege access-control list of the graph.
    #[serde(default)]
    pub(crate) acl: bool,
}

/// A path that an arg may leave unset: `$(arg secret)` of an arg whose default
/// is `~` (or empty) means no path.
fn optional_path<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let path = Option::<String>::deserialize(de)?;
    Ok(path.filter(|p| !matches!(p.as_str(), "" | "~" | "null")))
}

impl RawBus {
    /// `self` with every unset key taken from `base`.
    pub(crate) fn over(&self, base: &RawBus) -> RawBus {
        RawBus {
            mode: self.mode.clone().or_else(|| base.mode.clone()),
            listen: self.listen.clone().or_else(|| base.listen.clone()),
            connect: self.connect.clone().or_else(|| base.connect.clone()),
            security: self.security.clone().or_else(|| base.security.clone()),
        }
    }

    /// `self` with the security files resolved against `dir` (the folder of the
    /// file that wrote them).
    pub(crate) fn resolved(&self, dir: &std::path::Path) -> RawBus {
        let resolve = |p: &Option<String>| p.as_ref().map(|p| dir.join(p).display().to_string());
        RawBus {
            security: self.security.as_ref().map(|s| RawSecurity {
                certs: resolve(&s.certs),
                secret: resolve(&s.secret),
                ..s.clone()
            }),
            ..self.clone()
        }
    }
}

/// Shutdown timeouts in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShutdown {
    #[serde(default)]
    pub(crate) sigint_timeout: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) sigterm_timeout: Option<Spanned<f64>>,
}

/// `include: [{file, args, namespace, machine}]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInclude {
    pub(crate) file: Spanned<String>,
    #[serde(default)]
    pub(crate) args: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) machine: Option<Spanned<String>>,
}

/// When a node that ended is started again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RespawnMode {
    /// Never restart.
    #[default]
    Never,
    /// Restart when the node exits non-zero or is killed by a signal.
    OnFailure,
    /// Restart whenever the node ends.
    Always,
}

/// One entry of `nodes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) kind: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) exec: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) machine: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// Read from the YAML tree (types kept) in `load`.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) params: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) params_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) remap: BTreeMap<String, String>,
    /// What an `exec:` node publishes, subscribes, serves, calls and watches,
    /// for the access-control list (a `kind:` node's kind says it).
    #[serde(default)]
    pub(crate) topics: Option<Spanned<evospike_schemas::contract::NodeTopics>>,
    /// Read from the YAML tree (types kept) in `load`.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) plugins: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub(crate) plugin_dirs: Vec<String>,
    #[serde(default)]
    pub(crate) bus: Option<RawBus>,
    #[serde(default)]
    pub(crate) respawn: RespawnMode,
    #[serde(default)]
    pub(crate) max_restarts: Option<u32>,
    #[serde(default)]
    pub(crate) respawn_delay: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) respawn_delay_max: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) depends_on: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) ready_when: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) ready_delay: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) ready_timeout: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) required: bool,
}
