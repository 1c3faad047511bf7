//! Checking `kind:` nodes against the node kinds that exist, before anything starts.
//!
//! The launcher does not know the node kinds: the program that runs them does
//! (the `evospike` binary, through its node runtime). It hands the loader a
//! [`KindCatalog`]; the loader asks it whether each `kind:` exists and whether
//! each selected node's parameters are valid, and turns every problem into a
//! [`LoadError`] at the line of the offending key.

use std::fmt;
use std::path::PathBuf;

use evospike_schemas::contract::NodeTopics;
use marked_yaml::Node;
use serde_json::{Map, Value};

use super::line_of;
use crate::error::{LoadError, LoadErrorKind};

/// The node kinds a launch may use, and their parameter checks.
pub trait KindCatalog: fmt::Debug + Send + Sync {
    /// The names of the kinds.
    fn kinds(&self) -> Vec<String>;

    /// Checks the parameters of node `node` of kind `kind`; every problem found.
    fn check(
        &self,
        kind: &str,
        node: &str,
        params: &Map<String, Value>,
    ) -> Result<(), Vec<ParamIssue>>;

    /// What node `node` of kind `kind` publishes, subscribes and serves with
    /// `params` (topic names before remapping), for the access-control list;
    /// `None` when the catalog cannot say (its nodes then get no topic rights).
    fn topics(&self, _kind: &str, _node: &str, _params: &Map<String, Value>) -> Option<NodeTopics> {
        None
    }
}

/// One problem with one parameter of a node.
#[derive(Debug)]
pub struct ParamIssue {
    /// Path of the parameter inside `params`, e.g. `size` or `inputs[0].p`.
    pub key: String,
    /// What is wrong (its message names node, key and value).
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

/// Where a node's parameters were written, to point at the line of a key.
#[derive(Debug, Clone)]
pub(super) struct ParamSites {
    pub(super) file: PathBuf,
    /// The inline `params:` mapping, with positions.
    pub(super) tree: Option<Node>,
    /// The line of `params_file:`, for keys that came from that file.
    pub(super) params_file_line: Option<usize>,
    /// The line of the node's name, when nothing closer is known.
    pub(super) node_line: Option<usize>,
}

impl ParamSites {
    /// The error for `issue`, at the line of its key (or of the closest thing written).
    pub(super) fn error(&self, issue: ParamIssue) -> LoadError {
        let line = self
            .tree
            .as_ref()
            .and_then(|tree| line_of_path(tree, &issue.key))
            .or(self.params_file_line)
            .or(self.node_line);
        let mut error = LoadError::new(&self.file, LoadErrorKind::NodeParams(issue.error));
        error.line = line;
        error
    }
}

/// The line of `path` (`inputs[0].p`) in a params tree, or of its deepest part
/// that is written there.
fn line_of_path(tree: &Node, path: &str) -> Option<usize> {
    let mut node = tree;
    let mut line = line_of(tree.span());
    for part in path.split('.') {
        let (key, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            let Some(next) = node.as_mapping().and_then(|m| m.get_node(key)) else {
                return line;
            };
            node = next;
            line = line_of(node.span()).or(line);
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let next = index
                .parse::<usize>()
                .ok()
                .and_then(|i| node.as_sequence()?.get_node(i));
            let Some(next) = next else {
                return line;
            };
            node = next;
            line = line_of(node.span()).or(line);
        }
    }
    line
}
