//! A least-privilege access-control list for a graph of nodes, in Zenoh's
//! `access_control` format, for the routers to enforce.
//!
//! Every node authenticates as a user of its own name ([`AclNode::user`]); the
//! routers deny by default and allow each node exactly:
//!
//! - to **publish** its outputs, its log and its metrics, to declare its
//!   liveliness token, to serve its health (and its services' methods);
//! - to **subscribe** to its inputs (and only those are delivered to it);
//! - to see who is there: declarations, liveliness and health queries of its
//!   namespace, which the runtime needs to wait for subscribers and to drain,
//!   and to be asked (queries reach it on wildcard keys such as `health/**`;
//!   it answers only for itself).
//!
//! Routers link to each other unrestricted (their sessions are told apart by
//! their Zenoh ids, [`Acl::routers`]), so a node is checked once, by the router
//! it connects to. An operator user ([`Acl::operator`]) may watch everything
//! (`topic echo`, `node list`) but publishes nothing.
//!
//! ```
//! use evospike_bus::acl::{Acl, AclNode};
//! use evospike_schemas::contract::NodeTopics;
//! let acl = Acl {
//!     nodes: vec![AclNode {
//!         user: "layer1".into(),
//!         namespace: "default".into(),
//!         node: "layer1".into(),
//!         topics: NodeTopics {
//!             publishes: vec!["layer1/spikes".into()],
//!             subscribes: vec!["encoder/spikes".into()],
//!             ..NodeTopics::default()
//!         },
//!     }],
//!     routers: vec!["aa01".into()],
//!     operator: Some("operator".into()),
//! };
//! let json = acl.to_json().unwrap();
//! assert_eq!(json["default_permission"], "deny");
//! assert!(json.to_string().contains("evospike/default/topic/layer1/spikes"));
//! ```

use evospike_schemas::contract::{NodeTopics, Watch};
use serde_json::{json, Value};

use crate::{BusError, KeySpace};

/// One node's identity and the rights its launch graph gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclNode {
    /// The user it authenticates as.
    pub user: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub node: String,
    /// What it publishes, subscribes, serves, calls and watches (topics after
    /// remapping).
    pub topics: NodeTopics,
}

/// The access-control list of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// The nodes.
    pub nodes: Vec<AclNode>,
    /// Zenoh ids (hex) of the cluster's routers.
    pub routers: Vec<String>,
    /// A user that may watch everything and publish nothing.
    pub operator: Option<String>,
}

/// One Zenoh ACL rule.
struct Rule {
    id: String,
    messages: &'static [&'static str],
    flows: &'static [&'static str],
    keys: Vec<String>,
}

impl Rule {
    fn new(
        id: String,
        messages: &'static [&'static str],
        flows: &'static [&'static str],
        keys: Vec<String>,
    ) -> Rule {
        Rule {
            id,
            messages,
            flows,
            keys,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "messages": self.messages,
            "flows": self.flows,
            "permission": "allow",
            "key_exprs": self.keys,
        })
    }
}

const INGRESS: &[&str] = &["ingress"];
const EGRESS: &[&str] = &["egress"];
const BOTH: &[&str] = &["ingress", "egress"];

impl AclNode {
    /// This node's rules.
    fn rules(&self) -> Result<Vec<Rule>, BusError> {
        let keys = KeySpace::new(&self.namespace)?;
        let t = &self.topics;
        let topics = |names: &[String]| -> Result<Vec<String>, BusError> {
            names.iter().map(|t| keys.topic(t)).collect()
        };
        let mut own = topics(&t.publishes)?;
        own.push(keys.log(&self.node)?);
        own.push(keys.metric(&self.node)?);
        let mut served = vec![keys.health(&self.node)?];
        let mut tokens = vec![keys.node_token(&self.node)?];
        if !t.serves.is_empty() {
            served.push(keys.http(&self.node)?);
        }
        for service in &t.serves {
            // A service's own events (e.g. training progress) live under its keys.
            own.push(keys.service_methods(service)?);
            served.push(keys.service_methods(service)?);
            tokens.push(keys.service_token(service, &self.node)?);
        }
        let mut inputs = topics(&t.subscribes)?;
        let mut asked = t
            .calls
            .iter()
            .map(|s| keys.service_methods(s))
            .collect::<Result<Vec<_>, _>>()?;
        for watch in &t.watches {
            match watch {
                Watch::Logs => inputs.push(keys.all("log")),
                Watch::Metrics => inputs.push(keys.all("metric")),
                Watch::Topics => inputs.push(keys.all_topics()),
                Watch::HttpApis => asked.push(keys.all("http")),
            }
        }
        let id = |what: &str| format!("{what}:{}", self.user);
        let mut rules = vec![
            Rule::new(id("publish"), &["put", "delete"], INGRESS, own),
            Rule::new(id("token"), &["liveliness_token"], INGRESS, tokens),
            Rule::new(
                id("serve"),
                &["declare_queryable", "reply"],
                INGRESS,
                served,
            ),
            Rule::new(
                id("observe"),
                // Requests reach the node on wildcard keys (`health/**`,
                // `@node/*`): a rule must include the key asked, so these
                // cover the namespace; the node answers only for itself.
                &[
                    "declare_subscriber",
                    "declare_queryable",
                    "liveliness_token",
                    "reply",
                    "query",
                    "liveliness_query",
                    "declare_liveliness_subscriber",
                ],
                EGRESS,
                // `@node` and `@svc` are verbatim chunks: `**` does not match them.
                vec![
                    keys.everything(),
                    keys.all_nodes(),
                    keys.service_tokens("*"),
                ],
            ),
            Rule::new(
                id("discover"),
                &["query", "liveliness_query", "declare_liveliness_subscriber"],
                INGRESS,
                vec![
                    keys.all("health"),
                    keys.all_nodes(),
                    keys.service_tokens("*"),
                ],
            ),
        ];
        if !inputs.is_empty() {
            rules.push(Rule::new(
                id("subscribe"),
                &["declare_subscriber"],
                INGRESS,
                inputs.clone(),
            ));
            rules.push(Rule::new(id("receive"), &["put", "delete"], EGRESS, inputs));
        }
        if !asked.is_empty() {
            rules.push(Rule::new(id("call"), &["query"], INGRESS, asked));
        }
        Ok(rules)
    }
}

/// Every key of every namespace, liveliness tokens included (`@node` is a
/// verbatim chunk that `**` does not match).
fn operator_keys() -> Vec<String> {
    vec![
        "evospike/**".into(),
        "evospike/*/@node/*".into(),
        "evospike/*/@svc/*/*".into(),
    ]
}

const ALL_MESSAGES: &[&str] = &[
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "declare_queryable",
    "reply",
    "liveliness_token",
    "declare_liveliness_subscriber",
    "liveliness_query",
];

impl Acl {
    /// The `access_control` section: enabled, deny by default, one subject and
    /// one policy per node.
    pub fn to_json(&self) -> Result<Value, BusError> {
        let mut rules = Vec::new();
        let mut subjects = Vec::new();
        let mut policies = Vec::new();
        for node in &self.nodes {
            let node_rules = node.rules()?;
            let subject = format!("user:{}", node.user);
            subjects.push(json!({"id": subject, "usernames": [node.user]}));
            policies.push(json!({
                "id": format!("policy:{}", node.user),
                "rules": node_rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                "subjects": [subject],
            }));
            rules.extend(node_rules.iter().map(Rule::to_json));
        }
        if !self.routers.is_empty() {
            let mut everything = operator_keys();
            everything.push("**".into());
            rules.push(Rule::new("routers".into(), ALL_MESSAGES, BOTH, everything).to_json());
            subjects.push(json!({"id": "routers", "zids": self.routers}));
            policies.push(
                json!({"id": "policy:routers", "rules": ["routers"], "subjects": ["routers"]}),
            );
        }
        if let Some(operator) = &self.operator {
            rules.push(
                Rule::new(
                    "operator-ask".into(),
                    &[
                        "declare_subscriber",
                        "query",
                        "liveliness_query",
                        "declare_liveliness_subscriber",
                    ],
                    INGRESS,
                    operator_keys(),
                )
                .to_json(),
            );
            rules.push(
                Rule::new(
                    "operator-see".into(),
                    &[
                        "put",
                        "delete",
                        "reply",
                        "declare_subscriber",
                        "declare_queryable",
                        "liveliness_token",
                    ],
                    EGRESS,
                    operator_keys(),
                )
                .to_json(),
            );
            subjects.push(json!({"id": "operator", "usernames": [operator]}));
            policies.push(json!({
                "id": "policy:operator",
                "rules": ["operator-ask", "operator-see"],
                "subjects": ["operator"],
            }));
        }
        Ok(json!({
            "enabled": true,
            "default_permission": "deny",
            "rules": rules,
            "subjects": subjects,
            "policies": policies,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> AclNode {
        AclNode {
            user: "layer1".into(),
            namespace: "lab".into(),
            node: "layer1".into(),
            topics: NodeTopics {
                publishes: vec!["layer1/spikes".into()],
                subscribes: vec!["encoder/spikes".into()],
                ..NodeTopics::default()
            },
        }
    }

    fn keys_of(json: &Value, id: &str) -> Vec<String> {
        let rule = json["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id}"));
        serde_json::from_value(rule["key_exprs"].clone()).unwrap()
    }

    #[test]
    fn a_node_publishes_its_outputs_and_receives_its_inputs_only() {
        let acl = Acl {
            nodes: vec![layer()],
            ..Acl::default()
        };
        let json = acl.to_json().unwrap();
        assert_eq!(
            keys_of(&json, "publish:layer1"),
            [
                "evospike/lab/topic/layer1/spikes",
                "evospike/lab/log/layer1",
                "evospike/lab/metric/layer1"
            ]
        );
        assert_eq!(
            keys_of(&json, "subscribe:layer1"),
            ["evospike/lab/topic/encoder/spikes"]
        );
        assert_eq!(
            keys_of(&json, "receive:layer1"),
            ["evospike/lab/topic/encoder/spikes"]
        );
        assert_eq!(
            keys_of(&json, "token:layer1"),
            ["evospike/lab/@node/layer1"]
        );
        assert_eq!(json["subjects"][0]["usernames"][0], "layer1");
        assert!(json.to_string().find("routers").is_none());
    }

    #[test]
    fn the_section_is_valid_zenoh_configuration() {
        let acl = Acl {
            nodes: vec![layer()],
            routers: vec!["1a2b".into()],
            operator: Some("operator".into()),
        };
        let text = acl.to_json().unwrap().to_string();
        let mut config = zenoh::Config::default();
        config.insert_json5("access_control", &text).unwrap();
    }

    #[test]
    fn a_service_serves_its_api_and_calls_and_watches_only_what_it_names() {
        let gateway = AclNode {
            user: "gw".into(),
            namespace: "lab".into(),
            node: "gw".into(),
            topics: NodeTopics {
                serves: vec!["gateway".into()],
                calls: vec!["registry".into()],
                watches: vec![Watch::HttpApis, Watch::Logs],
                ..NodeTopics::default()
            },
        };
        let json = Acl {
            nodes: vec![gateway],
            ..Acl::default()
        }
        .to_json()
        .unwrap();
        assert_eq!(
            keys_of(&json, "serve:gw"),
            [
                "evospike/lab/health/gw",
                "evospike/lab/http/gw",
                "evospike/lab/svc/gateway/**"
            ]
        );
        assert_eq!(
            keys_of(&json, "token:gw"),
            ["evospike/lab/@node/gw", "evospike/lab/@svc/gateway/gw"]
        );
        assert_eq!(
            keys_of(&json, "call:gw"),
            ["evospike/lab/svc/registry/**", "evospike/lab/http/**"]
        );
        assert_eq!(keys_of(&json, "subscribe:gw"), ["evospike/lab/log/**"]);
        // A plain layer calls nothing.
        let json = Acl {
            nodes: vec![layer()],
            ..Acl::default()
        }
        .to_json()
        .unwrap();
        assert!(!json.to_string().contains("call:layer1"));
    }

    #[test]
    fn names_outside_the_key_layout_are_refused() {
        let mut node = layer();
        node.topics.publishes = vec!["a//b".into()];
        assert!(Acl {
            nodes: vec![node],
            ..Acl::default()
        }
        .to_json()
        .is_err());
    }
}
