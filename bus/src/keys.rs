//! The key-expression layout of evospike. This module is the only place that knows it:
//!
//! ```text
//! evospike/<ns>/topic/<name>            data topics (spikes, decoded outputs)
//! evospike/<ns>/svc/<service>/<method>  queryables of services
//! evospike/<ns>/log/<node>              LogRecord stream
//! evospike/<ns>/metric/<node>           MetricSample stream
//! evospike/<ns>/health/<node>           health queryable
//! evospike/<ns>/@node/<node>            liveliness token (discovery: node list)
//! evospike/<ns>/@svc/<service>/<node>   liveliness token of a service instance
//! evospike/<ns>/http/<node>             a service instance's HTTP API over the bus
//! ```
//!
//! Topic names may be hierarchical (`layer1/spikes`); node, service and namespace
//! names are single segments. Remapping happens before names reach this module.

use crate::BusError;

const ROOT: &str = "evospike";

/// Builds the keys of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

/// Which kind of key a full key expression is, as parsed by [`KeySpace::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// A data topic.
    Topic(&'a str),
    /// A service method.
    Service {
        /// Service name.
        service: &'a str,
        /// Method name.
        method: &'a str,
    },
    /// A node's log stream.
    Log(&'a str),
    /// A node's metric stream.
    Metric(&'a str),
    /// A node's health queryable.
    Health(&'a str),
    /// A node's liveliness token.
    Node(&'a str),
    /// The liveliness token of an instance of a service.
    ServiceInstance {
        /// Service name.
        service: &'a str,
        /// The node serving it.
        node: &'a str,
    },
    /// A node's HTTP-over-bus queryable.
    Http(&'a str),
}

fn check_segment(what: &'static str, name: &str, allow_slash: bool) -> Result<(), BusError> {
    let invalid = |reason| BusError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(invalid("empty path segment"));
    }
    if !allow_slash && name.contains('/') {
        return Err(invalid("must be a single segment (no '/')"));
    }
    if name.contains(['*', '$', '#', '?', ' ']) {
        return Err(invalid("contains one of * $ # ? or a space"));
    }
    if name.split('/').any(|segment| segment.starts_with('@')) {
        return Err(invalid("segments starting with '@' are reserved"));
    }
    Ok(())
}

impl KeySpace {
    /// The key space of namespace `namespace` (a single segment such as `default`).
    pub fn new(namespace: &str) -> Result<KeySpace, BusError> {
        check_segment("namespace", namespace, false)?;
        Ok(KeySpace {
            prefix: format!("{ROOT}/{namespace}"),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.prefix[ROOT.len() + 1..]
    }

    /// `evospike/<ns>/topic/<name>`.
    pub fn topic(&self, name: &str) -> Result<String, BusError> {
        check_segment("topic", name, true)?;
        Ok(format!("{}/topic/{name}", self.prefix))
    }

    /// Checks that `name` is a valid topic name, as [`topic`](Self::topic) would.
    pub fn check_topic(name: &str) -> Result<(), BusError> {
        check_segment("topic", name, true)
    }

    /// Matches every topic of the namespace.
    pub fn all_topics(&self) -> String {
        format!("{}/topic/**", self.prefix)
    }

    /// `evospike/<ns>/svc/<service>/<method>`.
    pub fn service(&self, service: &str, method: &str) -> Result<String, BusError> {
        check_segment("service", service, false)?;
        check_segment("method", method, false)?;
        Ok(format!("{}/svc/{service}/{method}", self.prefix))
    }

    /// `evospike/<ns>/svc/<service>/**`: every method of a service.
    pub fn service_methods(&self, service: &str) -> Result<String, BusError> {
        check_segment("service", service, false)?;
        Ok(format!("{}/svc/{service}/**", self.prefix))
    }

    /// `evospike/<ns>/log/<node>`.
    pub fn log(&self, node: &str) -> Result<String, BusError> {
        self.node_key("log", node)
    }

    /// `evospike/<ns>/metric/<node>`.
    pub fn metric(&self, node: &str) -> Result<String, BusError> {
        self.node_key("metric", node)
    }

    /// `evospike/<ns>/health/<node>`.
    pub fn health(&self, node: &str) -> Result<String, BusError> {
        self.node_key("health", node)
    }

    /// `evospike/<ns>/@node/<node>`: the liveliness token of a running node.
    pub fn node_token(&self, node: &str) -> Result<String, BusError> {
        self.node_key("@node", node)
    }

    /// Matches the liveliness tokens of every node of the namespace.
    pub fn all_nodes(&self) -> String {
        format!("{}/@node/*", self.prefix)
    }

    /// `evospike/<ns>/@svc/<service>/<node>`: the liveliness token of node
    /// `node` serving `service`.
    pub fn service_token(&self, service: &str, node: &str) -> Result<String, BusError> {
        check_segment("service", service, false)?;
        check_segment("node", node, false)?;
        Ok(format!("{}/@svc/{service}/{node}", self.prefix))
    }

    /// Matches the instance tokens of `service`, or of every service with `*`.
    pub fn service_tokens(&self, service: &str) -> String {
        format!("{}/@svc/{service}/*", self.prefix)
    }

    /// `evospike/<ns>/http/<node>`: node `node`'s HTTP API over the bus.
    pub fn http(&self, node: &str) -> Result<String, BusError> {
        self.node_key("http", node)
    }

    /// Matches every key of the namespace.
    pub fn everything(&self) -> String {
        format!("{}/**", self.prefix)
    }

    /// Matches every key of one kind for all nodes, e.g. `all("log")`.
    pub fn all(&self, kind: &str) -> String {
        format!("{}/{kind}/**", self.prefix)
    }

    fn node_key(&self, kind: &str, node: &str) -> Result<String, BusError> {
        check_segment("node", node, false)?;
        Ok(format!("{}/{kind}/{node}", self.prefix))
    }

    /// Splits a full key of this namespace into its kind and names.
    pub fn parse<'k>(&self, key: &'k str) -> Option<KeyKind<'k>> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        let (kind, name) = rest.split_once('/')?;
        match kind {
            "topic" => Some(KeyKind::Topic(name)),
            "svc" => {
                let (service, method) = name.split_once('/')?;
                Some(KeyKind::Service { service, method })
            }
            "log" => Some(KeyKind::Log(name)),
            "metric" => Some(KeyKind::Metric(name)),
            "health" => Some(KeyKind::Health(name)),
            "@node" => Some(KeyKind::Node(name)),
            "@svc" => {
                let (service, node) = name.split_once('/')?;
                Some(KeyKind::ServiceInstance { service, node })
            }
            "http" => Some(KeyKind::Http(name)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_architecture() {
        let keys = KeySpace::new("lab").unwrap();
        assert_eq!(
            keys.topic("layer1/spikes").unwrap(),
            "evospike/lab/topic/layer1/spikes"
        );
        assert_eq!(
            keys.service("registry", "get").unwrap(),
            "evospike/lab/svc/registry/get"
        );
        assert_eq!(keys.log("enc").unwrap(), "evospike/lab/log/enc");
        assert_eq!(keys.metric("enc").unwrap(), "evospike/lab/metric/enc");
        assert_eq!(keys.health("enc").unwrap(), "evospike/lab/health/enc");
        assert_eq!(keys.node_token("enc").unwrap(), "evospike/lab/@node/enc");
        assert_eq!(keys.namespace(), "lab");
    }

    #[test]
    fn parse_inverts_the_builders() {
        let keys = KeySpace::new("lab").unwrap();
        let topic = keys.topic("a/b").unwrap();
        assert_eq!(keys.parse(&topic), Some(KeyKind::Topic("a/b")));
        let svc = keys.service("s", "m").unwrap();
        assert_eq!(
            keys.parse(&svc),
            Some(KeyKind::Service {
                service: "s",
                method: "m"
            })
        );
        assert_eq!(keys.parse("evospike/other/topic/x"), None);
        let instance = keys.service_token("inference", "inf1").unwrap();
        assert_eq!(instance, "evospike/lab/@svc/inference/inf1");
        assert_eq!(
            keys.parse(&instance),
            Some(KeyKind::ServiceInstance {
                service: "inference",
                node: "inf1"
            })
        );
        let http = keys.http("inf1").unwrap();
        assert_eq!(http, "evospike/lab/http/inf1");
        assert_eq!(keys.parse(&http), Some(KeyKind::Http("inf1")));
    }

    #[test]
    fn rejects_names_that_would_change_the_layout() {
        let keys = KeySpace::new("lab").unwrap();
        for bad in ["", "a//b", "/a", "a/", "a*", "**", "x y", "@node"] {
            assert!(keys.topic(bad).is_err(), "topic {bad:?} must be rejected");
        }
        assert!(keys.log("a/b").is_err());
        assert!(KeySpace::new("a/b").is_err());
    }
}
