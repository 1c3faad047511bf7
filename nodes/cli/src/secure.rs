//! The files a secured launch's routers need, written before they start: the
//! users file (every authenticated node of the launch graph, on every machine,
//! with its password derived from the cluster secret, plus the operator) and the
//! least-privilege access-control list of the graph ([`evospike_bus::acl`]).
//!
//! The launcher hands a router the files through `EVOSPIKE_BUS_USERS_FILE` and
//! `EVOSPIKE_BUS_ACL`; they live in a private temporary folder for as long as
//! the launch runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use evospike_bus::acl::{Acl, AclNode};
use evospike_bus::security::{derive_password, read_secret};
use evospike_launch::security::ROUTER_KIND;
use evospike_launch::{GraphNode, LaunchPlan};
use evospike_schemas::contract::env;

use crate::exit;

/// The user that may watch a secured cluster (`topic echo`, `node list`) and
/// publish nothing: `--user operator --secret-file SECRET`.
pub(crate) const OPERATOR: &str = "operator";

/// The access-control list of `graph`.
pub(crate) fn acl(graph: &[GraphNode]) -> Acl {
    Acl {
        nodes: graph
            .iter()
            .filter(|g| g.authenticated && g.kind.as_deref() != Some(ROUTER_KIND))
            .map(|g| AclNode {
                user: g.name.clone(),
                namespace: g.namespace.clone(),
                node: g.name.clone(),
                topics: g.topics.clone().unwrap_or_default(),
            })
            .collect(),
        routers: graph.iter().filter_map(|g| g.zid.clone()).collect(),
        operator: Some(OPERATOR.to_owned()),
    }
}

/// Writes the routers' files into `dir` and points this machine's routers at
/// them. `force_acl` (`evospike launch --acl`) turns the ACL on even if the file
/// does not ask for it.
pub(crate) fn prepare_routers(
    plan: &mut LaunchPlan,
    dir: &Path,
    force_acl: bool,
) -> anyhow::Result<()> {
    let with_acl = force_acl || plan.enforces_acl();
    let routers: Vec<usize> = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            plan.graph
                .iter()
                .any(|g| g.name == n.name && g.kind.as_deref() == Some(ROUTER_KIND))
        })
        .map(|(i, _)| i)
        .collect();
    if force_acl && !plan.graph.iter().any(|g| g.authenticated) {
        return Err(exit::invalid(
            "--acl needs bus.security.secret in the launch file: the routers tell the nodes \
             apart by their users (see docs/cluster.md)",
        ));
    }
    let acl_file = if with_acl && !routers.is_empty() {
        let json = acl(&plan.graph)
            .to_json()
            .context("cannot derive the access-control list from the launch graph")?;
        Some(write_private(
            dir,
            "acl.json",
            &serde_json::to_string_pretty(&json)?,
        )?)
    } else {
        None
    };
    for i in routers {
        let node = &mut plan.nodes[i];
        if let Some(secret) = node.env.get(env::BUS_SECRET_FILE).cloned() {
            let secret = read_secret(Path::new(&secret))?;
            let users = users_file(&plan.graph, &secret);
            let path = write_private(dir, &format!("{}.users", node.name), &users)?;
            node.env
                .insert(env::BUS_USERS_FILE.into(), path.display().to_string());
        }
        if let Some(acl) = &acl_file {
            node.env
                .insert(env::BUS_ACL.into(), acl.display().to_string());
        }
    }
    Ok(())
}

/// `user:password` lines for every authenticated node and the operator.
fn users_file(graph: &[GraphNode], secret: &[u8]) -> String {
    graph
        .iter()
        .filter(|g| g.authenticated)
        .map(|g| g.name.as_str())
        .chain([OPERATOR])
        .map(|user| format!("{user}:{}\n", derive_password(secret, user)))
        .collect()
}

/// Writes `text` to `dir/name`, readable by its owner only.
fn write_private(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::contract::NodeTopics;

    fn node(name: &str, kind: &str, topics: Option<NodeTopics>) -> GraphNode {
        GraphNode {
            name: name.into(),
            namespace: "default".into(),
            machine: Some("head".into()),
            kind: Some(kind.into()),
            topics,
            authenticated: true,
            enforces_acl: kind == ROUTER_KIND,
            zid: (kind == ROUTER_KIND).then(|| "e1".to_string()),
        }
    }

    #[test]
    fn the_acl_has_every_node_but_the_routers_which_go_by_id() {
        let graph = vec![
            node("router", ROUTER_KIND, None),
            node(
                "layer1",
                "layer",
                Some(NodeTopics {
                    publishes: vec!["layer1/spikes".into()],
                    subscribes: vec!["encoder/spikes".into()],
                    ..NodeTopics::default()
                }),
            ),
        ];
        let acl = acl(&graph);
        assert_eq!(acl.nodes.len(), 1);
        assert_eq!(acl.nodes[0].topics.subscribes, ["encoder/spikes"]);
        assert_eq!(acl.routers, ["e1"]);
        let users = users_file(&graph, b"0123456789abcdef");
        assert_eq!(users.lines().count(), 3, "{users}");
        assert!(users.starts_with("router:"));
        assert!(users.contains("\noperator:"));
    }
}
