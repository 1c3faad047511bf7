//! A secured launch: what `bus.security` gives each node, and the graph the
//! access-control list is derived from.
//!
//! ```yaml
//! bus:
//!   mode: client
//!   connect: ["tls/10.0.0.1:7447"]
//!   security:
//!     certs: certs          # ca.pem, <machine>.pem, <machine>.key (`evospike certs`)
//!     mtls: true            # routers accept only sessions with a certificate of ca.pem
//!     secret: certs/cluster.secret   # every node's password derives from it
//!     acl: true             # routers enforce the graph's least-privilege ACL
//! ```
//!
//! Each selected node then gets, in its environment: the CA, its machine's
//! certificate and key ([`NodeSecurity`] needs a `machine:` label to pick them),
//! its user (its own name) and the secret file its password derives from. A
//! `router` node also gets a fixed Zenoh id ([`router_zid`]) by which the other
//! routers' ACLs let it through. The users file and the ACL of a router are
//! written by the program that runs the plan (it knows the bus), from
//! [`LaunchPlan::graph`](crate::LaunchPlan::graph).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use evospike_schemas::contract::{env, NodeTopics};
use sha2::{Digest, Sha256};

use crate::schema::RawSecurity;

/// The node kind whose sessions route for the others.
pub const ROUTER_KIND: &str = "router";

/// One node of the whole launch (every machine), as the ACL sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// Its name (and user name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its machine label.
    pub machine: Option<String>,
    /// Its kind, for `kind:` nodes.
    pub kind: Option<String>,
    /// What it publishes, subscribes and serves, remaps applied (`None`: its kind
    /// could not say, e.g. an `exec:` node without `topics:` — it gets no
    /// topic rights).
    pub topics: Option<NodeTopics>,
    /// It authenticates with a user (the launch gives it a cluster secret).
    pub authenticated: bool,
    /// It enforces the ACL (a router under `acl: true`).
    pub enforces_acl: bool,
    /// A router's fixed Zenoh id.
    pub zid: Option<String>,
}

/// The fixed Zenoh id of router `name` in `namespace`: 32 hex digits of a
/// SHA-256, the same on every machine that reads the launch file.
pub fn router_zid(namespace: &str, name: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"evospike-router\0");
    hash.update(namespace.as_bytes());
    hash.update([0u8]);
    hash.update(name.as_bytes());
    let digest = hash.finalize();
    // A Zenoh id must not be zero and its first digit non-zero keeps the hex
    // form unambiguous.
    let mut hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    hex.replace_range(0..1, "e");
    hex
}

/// `topics` with `remap` (from → to) applied.
pub(crate) fn remapped(mut topics: NodeTopics, remap: &BTreeMap<String, String>) -> NodeTopics {
    for name in topics.publishes.iter_mut().chain(&mut topics.subscribes) {
        if let Some(to) = remap.get(name) {
            name.clone_from(to);
        }
    }
    topics
}

/// What `bus.security` means for one node of one machine.
#[derive(Debug)]
pub(crate) struct NodeSecurity<'a> {
    pub(crate) security: &'a RawSecurity,
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) machine: Option<&'a str>,
    pub(crate) kind: Option<&'a str>,
}

impl NodeSecurity<'_> {
    /// The node's `EVOSPIKE_BUS_*` security variables, after checking that the
    /// files it needs are there. `Err` says what is missing and what to do.
    pub(crate) fn env(&self) -> Result<BTreeMap<String, String>, String> {
        let mut vars = BTreeMap::new();
        let mut put = |key: &str, value: String| vars.insert(key.to_owned(), value);
        if let Some(certs) = &self.security.certs {
            let machine = self.machine.ok_or_else(|| {
                format!(
                    "bus.security.certs: node `{}` has no `machine:` label to pick its \
                     certificate (<certs>/<machine>.pem) by",
                    self.name
                )
            })?;
            let dir = Path::new(certs);
            let files = [
                (env::BUS_TLS_CA, dir.join("ca.pem")),
                (env::BUS_TLS_CERT, dir.join(format!("{machine}.pem"))),
                (env::BUS_TLS_KEY, dir.join(format!("{machine}.key"))),
            ];
            for (var, file) in files {
                put(var, existing(&file, "bus.security.certs")?);
            }
            put(env::BUS_TLS_MTLS, (self.security.mtls as u8).to_string());
        } else if self.security.mtls {
            return Err("bus.security.mtls needs bus.security.certs".to_owned());
        }
        if let Some(secret) = &self.security.secret {
            put(env::BUS_USER, self.name.to_owned());
            put(
                env::BUS_SECRET_FILE,
                existing(Path::new(secret), "bus.security.secret")?,
            );
        } else if self.security.acl {
            return Err(
                "bus.security.acl needs bus.security.secret: the routers tell nodes apart by \
                 their users"
                    .to_owned(),
            );
        }
        if self.kind == Some(ROUTER_KIND) {
            put(env::BUS_ZID, router_zid(self.namespace, self.name));
        }
        Ok(vars)
    }
}

fn existing(path: &Path, setting: &str) -> Result<String, String> {
    if path.is_file() {
        Ok(absolute(path).display().to_string())
    } else {
        Err(format!(
            "{setting}: {} not found (`evospike certs` makes a cluster's files)",
            path.display()
        ))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_ids_are_stable_and_distinct() {
        let a = router_zid("default", "router-head");
        assert_eq!(a, router_zid("default", "router-head"));
        assert_ne!(a, router_zid("default", "router-worker"));
        assert_eq!(a.len(), 32);
        assert!(a.starts_with('e'));
    }

    #[test]
    fn remaps_rename_topics() {
        let topics = NodeTopics {
            publishes: vec!["a/spikes".into()],
            subscribes: vec!["in".into()],
            ..NodeTopics::default()
        };
        let remap = BTreeMap::from([("in".to_string(), "encoder/spikes".to_string())]);
        let out = remapped(topics, &remap);
        assert_eq!(out.subscribes, ["encoder/spikes"]);
        assert_eq!(out.publishes, ["a/spikes"]);
    }

    #[test]
    fn a_node_without_a_machine_cannot_pick_its_certificate() {
        let security = RawSecurity {
            certs: Some("/nowhere".into()),
            ..RawSecurity::default()
        };
        let node = NodeSecurity {
            security: &security,
            name: "layer1",
            namespace: "default",
            machine: None,
            kind: Some("layer"),
        };
        assert!(node.env().unwrap_err().contains("machine:"));
        let node = NodeSecurity {
            machine: Some("head"),
            ..node
        };
        assert!(node.env().unwrap_err().contains("/nowhere/ca.pem"));
    }
}
