//! How the tools reach the bus, and what they ask every node.
//!
//! A tool opens a [`Bus`] session like any node ([`Connection`]: the same bus flags,
//! by default a peer connected to the local router). Who publishes and subscribes
//! what is not a bus feature: every node answers a health query with its
//! [`NodeInfo`](evospike_schemas::proto::NodeInfo), and [`gather_health`] asks them
//! all at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use evospike_bus::{Bus, BusError, Mode, TransportKind};
use evospike_node::BusArgs;
use evospike_schemas::contract;
use evospike_schemas::proto::{Empty, Health};

/// Tools only publish a few small tensors: a small shared-memory pool is plenty.
const TOOL_SHM_POOL: usize = 4 << 20;

/// Where the bus is, for the tools (`topic …`, `node …`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// Namespace of the deployment.
    #[arg(long, env = contract::env::NAMESPACE, default_value = contract::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    #[command(flatten)]
    pub(crate) bus: BusArgs,
}

impl Connection {
    /// Opens a session; an unreachable router is reported with what to do about it.
    pub(crate) async fn open(&self) -> anyhow::Result<Bus> {
        let mut config = self
            .bus
            .to_config(&self.namespace)
            .context("invalid bus options")?;
        config.shm_pool_bytes = TOOL_SHM_POOL;
        // A tool is a Zenoh client of the router unless told otherwise: it needs no
        // direct links to the nodes and opens no port of its own.
        let mode_given =
            self.bus.mode.is_some() || std::env::var_os(contract::env::BUS_MODE).is_some();
        if !mode_given && config.transport == TransportKind::Zenoh {
            config.mode = Mode::Client;
        }
        let connect = config.connect.join(", ");
        match Bus::open(config).await {
            Ok(bus) => Ok(bus),
            Err(err @ BusError::Unreachable { .. }) => Err(anyhow::Error::new(err).context(
                format!("cannot reach the bus at {connect} — is `evospike router` running?"),
            )),
            Err(err) => Err(err).context("cannot open the bus"),
        }
    }
}

/// One node's answer to the health query.
#[derive(Debug)]
pub(crate) struct NodeHealth {
    /// The responder's name.
    pub(crate) name: String,
    pub(crate) health: Result<Health, BusError>,
}

/// Asks every node of the namespace for its health; sorted by node name.
///
/// One query reaches every health queryable at once; nodes that are alive (by
/// their liveliness token) but whose answer did not come back with it are then
/// asked one by one, concurrently, so that no node is missed.
pub(crate) async fn gather_health(bus: &Bus, timeout: Duration) -> anyhow::Result<Vec<NodeHealth>> {
    let key = bus.keys().all("health");
    let (alive, replies) = tokio::join!(
        bus.nodes(timeout),
        bus.request_all::<Empty, Health>(&key, &Empty {}, timeout)
    );
    let alive = alive.context("cannot list the nodes (liveliness query)")?;
    let replies = replies.with_context(|| format!("cannot query the nodes' health on {key}"))?;
    let mut nodes: BTreeMap<String, Result<Health, BusError>> = BTreeMap::new();
    for (responder, health) in replies {
        let name = match &health {
            Ok(Health {
                node: Some(info), ..
            }) if !info.name.is_empty() => info.name.clone(),
            _ => responder,
        };
        nodes.insert(name, health);
    }
    let mut missing = tokio::task::JoinSet::new();
    for name in alive.into_iter().filter(|name| !nodes.contains_key(name)) {
        let bus = bus.clone();
        missing.spawn(async move {
            let health = match bus.keys().health(&name) {
                Ok(key) => bus.request::<Empty, Health>(&key, &Empty {}, timeout).await,
                Err(err) => Err(err),
            };
            (name, health)
        });
    }
    while let Some(joined) = missing.join_next().await {
        let (name, health) = joined.context("a health query task failed")?;
        nodes.insert(name, health);
    }
    Ok(nodes
        .into_iter()
        .map(|(name, health)| NodeHealth { name, health })
        .collect())
}

/// Who publishes and subscribes each topic, from the nodes' health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TopicGraph {
    pub(crate) topics: BTreeMap<String, Endpoints>,
}

/// The nodes at both ends of one topic.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Endpoints {
    pub(crate) publishers: BTreeSet<String>,
    pub(crate) subscribers: BTreeSet<String>,
}

impl TopicGraph {
    pub(crate) fn from_health(nodes: &[NodeHealth]) -> TopicGraph {
        let mut graph = TopicGraph::default();
        for node in nodes {
            let Ok(Health {
                node: Some(info), ..
            }) = &node.health
            else {
                continue;
            };
            for topic in &info.publishes {
                graph
                    .topics
                    .entry(topic.clone())
                    .or_default()
                    .publishers
                    .insert(node.name.clone());
            }
            for topic in &info.subscribes {
                graph
                    .topics
                    .entry(topic.clone())
                    .or_default()
                    .subscribers
                    .insert(node.name.clone());
            }
        }
        graph
    }
}

/// Seconds from the command line as a [`Duration`], refusing negative and
/// non-finite values.
pub(crate) fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        crate::exit::invalid(format!("{flag} {value}: expected a number of seconds ≥ 0"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::proto::NodeInfo;

    fn node(name: &str, publishes: &[&str], subscribes: &[&str]) -> NodeHealth {
        let info = NodeInfo {
            name: name.to_string(),
            publishes: publishes.iter().map(|s| s.to_string()).collect(),
            subscribes: subscribes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        NodeHealth {
            name: name.to_string(),
            health: Ok(Health {
                node: Some(info),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn topic_graph_joins_publishers_and_subscribers() {
        let nodes = vec![
            node("encoder", &["input/spikes"], &[]),
            node("layer1", &["layer1/spikes"], &["input/spikes"]),
            node("readout", &[], &["layer1/spikes"]),
            NodeHealth {
                name: "broken".into(),
                health: Err(BusError::Config("x".into())),
            },
        ];
        let graph = TopicGraph::from_health(&nodes);
        assert_eq!(graph.topics.len(), 2);
        let input = &graph.topics["input/spikes"];
        assert_eq!(input.publishers.iter().collect::<Vec<_>>(), ["encoder"]);
        assert_eq!(input.subscribers.iter().collect::<Vec<_>>(), ["layer1"]);
        assert_eq!(
            graph.topics["layer1/spikes"]
                .subscribers
                .iter()
                .collect::<Vec<_>>(),
            ["readout"]
        );
    }

    #[test]
    fn seconds_refuse_negative_values() {
        assert_eq!(
            seconds(1.5, "--timeout").unwrap(),
            Duration::from_millis(1500)
        );
        let err = seconds(-1.0, "--timeout").unwrap_err().to_string();
        assert!(err.contains("--timeout -1"), "{err}");
    }
}
