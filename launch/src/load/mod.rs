//! Reading launch files into a [`LaunchPlan`].
//!
//! The steps for each file are: parse the YAML with positions, read `args:`
//! (defaults, then the values the caller passed), expand `$(...)` in every
//! other scalar, check the schema (unknown keys are errors), then follow
//! `include:` recursively. Once every file is read, the whole launch is checked
//! (unique names, known and acyclic `depends_on`) and filtered to one machine;
//! only then are executables looked up, for the selected nodes, and — when the
//! caller gives a [`KindCatalog`] — the parameters of every selected `kind:` node
//! are checked, all of them, each problem at the line of its key. Nothing is
//! started by this module.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use evospike_schemas::contract::NodeTopics;
use marked_yaml::Spanned;
use serde_json::{Map, Value};

use crate::error::{LoadError, LoadErrorKind, LoadErrors};
use crate::plan::{LaunchPlan, Readiness, RespawnPolicy, ShutdownTimeouts};
use crate::schema::{RawBus, RawSecurity};
use crate::security::{remapped, router_zid, GraphNode, ROUTER_KIND};

use self::check::{check_dependencies, check_identifier, check_names, select_machine};
use self::kinds::ParamSites;
pub use self::kinds::{KindCatalog, ParamIssue};

/// Node names the launcher keeps for itself (its own log file is `launch.log`).
const RESERVED_NAMES: &[&str] = &["launch"];

/// What the caller of [`load`] decides rather than the file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The node kinds `kind:` may name, and their parameter checks (none: not checked).
    pub kinds: Option<Arc<dyn KindCatalog>>,
    /// Values for the root file's `args:` (`--arg k=v`).
    pub args: BTreeMap<String, String>,
    /// Start only the nodes labelled with this machine (`--machine M`).
    pub machine: Option<String>,
    /// The evospike executable that runs `kind:` nodes as `EXE run KIND`.
    pub evospike_exe: Option<PathBuf>,
}

/// Reads, resolves and validates the launch file at `path`.
///
/// # Errors
/// [`LoadErrors`]: the first problem with the file's structure, or every
/// problem with the parameters of its `kind:` nodes; each names file, line and key.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LaunchPlan, LoadErrors> {
    let env = |name: &str| std::env::var(name).ok();
    load_with_env(path, options, &env)
}

/// [`load`] with an explicit environment lookup (for tests).
pub(crate) fn load_with_env(
    path: &Path,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchPlan, LoadErrors> {
    let mut loader = Loader {
        env,
        kinds: options.kinds.as_deref(),
        stack: Vec::new(),
        nodes: Vec::new(),
    };
    let root = loader.read_file(path, &options.args, &Inherited::default())?;
    let name = match root.name {
        Some(name) => {
            check_identifier(&name)
                .map_err(|kind| LoadError::new(path, kind).at(line_of(name.span()), "name"))?;
            name.deref().clone()
        }
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "launch".to_owned()),
    };
    let nodes = loader.nodes;
    check_names(&nodes)?;
    check_dependencies(&nodes)?;
    let graph = nodes
        .iter()
        .map(|n| n.graph_node(options.kinds.as_deref()))
        .collect();
    let selected = select_machine(path, nodes, options.machine.as_deref())?;
    if let Some(kinds) = options.kinds.as_deref() {
        check_params(kinds, &selected)?;
    }
    let selected_names: Vec<String> = selected.iter().map(|n| n.name.clone()).collect();
    let nodes = selected
        .into_iter()
        .map(|n| n.finish(options, &selected_names, env))
        .collect::<Result<Vec<_>, LoadError>>()?;
    Ok(LaunchPlan {
        name,
        file: path.to_path_buf(),
        machine: options.machine.clone(),
        nodes,
        shutdown: root.shutdown,
        graph,
    })
}

/// Every parameter problem of the `kind:` nodes in `nodes`.
fn check_params(kinds: &dyn KindCatalog, nodes: &[Collected]) -> Result<(), LoadErrors> {
    let mut errors = Vec::new();
    for node in nodes {
        if let Command::Kind { kind, .. } = &node.command {
            if let Err(issues) = kinds.check(kind, &node.name, &node.params) {
                errors.extend(issues.into_iter().map(|i| node.param_sites.error(i)));
            }
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(LoadErrors(errors)),
    }
}

/// Settings a file (or an include entry) hands down to the nodes it contains.
#[derive(Debug, Clone, Default)]
struct Inherited {
    namespace: Option<String>,
    machine: Option<String>,
    bus: RawBus,
}

/// What the root file contributes besides nodes.
struct RootInfo {
    name: Option<Spanned<String>>,
    shutdown: ShutdownTimeouts,
}

struct Loader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    kinds: Option<&'e dyn KindCatalog>,
    /// Canonical paths of the files being read, outermost first (for cycle errors).
    stack: Vec<(PathBuf, PathBuf)>,
    nodes: Vec<Collected>,
}

/// Where something was written: file, line, key path.
#[derive(Debug, Clone)]
struct Site {
    file: PathBuf,
    line: Option<usize>,
    key: String,
}

impl Site {
    fn error(&self, kind: LoadErrorKind) -> LoadError {
        LoadError::new(&self.file, kind).at(self.line, self.key.clone())
    }

    fn display(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

/// A node read from some file, not yet filtered or bound to an executable.
#[derive(Debug)]
struct Collected {
    name: String,
    site: Site,
    namespace: String,
    machine: Option<String>,
    command: Command,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    respawn: RespawnPolicy,
    depends_on: Vec<(String, Site)>,
    readiness: Readiness,
    required: bool,
    /// Parameters (params file merged with inline `params:`), for the kind's check.
    params: Map<String, Value>,
    param_sites: ParamSites,
    /// `bus.security` as it applies to this node.
    security: Option<RawSecurity>,
    /// Topic remaps, from → to.
    remap: BTreeMap<String, String>,
    /// An `exec:` node's `topics:`.
    declared_topics: Option<NodeTopics>,
}

impl Collected {
    fn kind(&self) -> Option<&str> {
        match &self.command {
            Command::Kind { kind, .. } => Some(kind),
            Command::Exec { .. } => None,
        }
    }

    /// This node as the access-control list sees it.
    fn graph_node(&self, kinds: Option<&dyn KindCatalog>) -> GraphNode {
        let topics = match (self.kind(), kinds) {
            (Some(kind), Some(kinds)) => kinds.topics(kind, &self.name, &self.params),
            (Some(_), None) => None,
            (None, _) => self.declared_topics.clone(),
        }
        .map(|t| remapped(t, &self.remap));
        let security = self.security.as_ref();
        GraphNode {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            machine: self.machine.clone(),
            kind: self.kind().map(str::to_owned),
            topics,
            authenticated: security.is_some_and(|s| s.secret.is_some()),
            enforces_acl: security.is_some_and(|s| s.acl) && self.kind() == Some(ROUTER_KIND),
            zid: (self.kind() == Some(ROUTER_KIND) && security.is_some())
                .then(|| router_zid(&self.namespace, &self.name)),
        }
    }
}

#[derive(Debug)]
enum Command {
    Kind {
        kind: String,
        site: Site,
    },
    Exec {
        program: String,
        dir: PathBuf,
        site: Site,
    },
}

fn line_of(span: &marked_yaml::Span) -> Option<usize> {
    span.start().map(|m| m.line())
}

mod check;
mod file;
mod kinds;
mod node;
mod yaml;

#[cfg(test)]
mod tests;
