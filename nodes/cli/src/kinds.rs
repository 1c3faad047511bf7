//! The node kinds this binary runs, and what the rest of the command does with
//! them: `evospike run KIND --list-params` prints a kind's parameter table, and
//! `evospike launch` hands the catalog to the launcher so that it checks `kind:`
//! names and every node's parameters before it starts anything.

use std::process::ExitCode;

use evospike_launch::{KindCatalog, ParamIssue};
use evospike_node::NodeKinds;
use evospike_schemas::contract::NodeTopics;
use serde_json::{Map, Value};

use crate::out::Out;
use crate::table;

/// Every kind `evospike run` and `kind:` in a launch file can name: the
/// runtime's built-in kinds and the services.
pub(crate) fn catalog() -> NodeKinds {
    NodeKinds::builtin()
        .with::<evospike_registry::RegistryKind>()
        .with::<evospike_gateway::GatewayKind>()
        .with::<evospike_logs::LogsKind>()
        .with::<evospike_monitoring::MonitoringKind>()
        .with::<evospike_inference::InferenceKind>()
        .with::<evospike_training::TrainingKind>()
}

/// `evospike run KIND --list-params`: the kind's summary and parameter table.
pub(crate) fn list_params(kind: &str) -> anyhow::Result<ExitCode> {
    let kinds = catalog();
    let kind = kinds.get(kind)?;
    let mut out = Out::new();
    for line in params_text(kind.name(), kind.summary(), &kind.docs()) {
        out.line(line)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn params_text(name: &str, summary: &str, docs: &[evospike_node::params::ParamDoc]) -> Vec<String> {
    let mut lines = vec![format!("{name}: {summary}"), String::new()];
    if docs.is_empty() {
        lines.push(format!("A {name} node takes no parameters."));
        return lines;
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            vec![
                d.key.clone(),
                d.ty.clone(),
                d.default.clone(),
                d.about.clone(),
            ]
        })
        .collect();
    lines.extend(table::render(
        &["PARAMETER", "TYPE", "DEFAULT", "MEANING"],
        &rows,
    ));
    lines
}

/// The catalog as the launcher sees it.
#[derive(Debug)]
pub(crate) struct LaunchKinds(NodeKinds);

impl LaunchKinds {
    pub(crate) fn new() -> LaunchKinds {
        LaunchKinds(catalog())
    }
}

impl KindCatalog for LaunchKinds {
    fn kinds(&self) -> Vec<String> {
        self.0.names().into_iter().map(str::to_owned).collect()
    }

    fn check(
        &self,
        kind: &str,
        node: &str,
        params: &Map<String, Value>,
    ) -> Result<(), Vec<ParamIssue>> {
        let Ok(entry) = self.0.get(kind) else {
            // The loader checks the kind's name before it asks for its parameters.
            return Ok(());
        };
        entry.check(node, params).map_err(|errors| {
            errors
                .0
                .into_iter()
                .map(|error| ParamIssue {
                    key: error.key.clone(),
                    error: Box::new(error),
                })
                .collect()
        })
    }

    fn topics(&self, kind: &str, node: &str, params: &Map<String, Value>) -> Option<NodeTopics> {
        self.0.get(kind).ok()?.topics(node, params).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_parameter_table() {
        let kinds = catalog();
        for name in kinds.names() {
            let kind = kinds.get(name).unwrap();
            let text = params_text(kind.name(), kind.summary(), &kind.docs()).join("\n");
            insta::assert_snapshot!(format!("list_params_{name}"), text);
        }
    }
}
