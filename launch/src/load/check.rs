//! Whole-launch checks: names, dependencies, machine selection, executables.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use marked_yaml::Spanned;

use super::{Collected, Site};
use crate::error::{LoadError, LoadErrorKind};
use crate::subst::is_executable;

/// Node, namespace and kind names end up in file names and key expressions.
pub(super) fn check_identifier(text: &str) -> Result<(), LoadErrorKind> {
    let ok = !text.is_empty()
        && !text.starts_with('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(LoadErrorKind::Schema(format!(
            "`{text}` is not a valid name (use letters, digits, `_`, `-`, `.`; not starting with `.`)"
        )))
    }
}

pub(super) fn checked_identifier(text: &Spanned<String>, site: Site) -> Result<String, LoadError> {
    check_identifier(text.deref()).map_err(|kind| site.error(kind))?;
    Ok(text.deref().clone())
}

pub(super) fn resolve_exec(
    program: &str,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, LoadErrorKind> {
    let written = Path::new(program);
    // `components()` drops the `.` of `./node.sh`, for tidy messages and ps output.
    let local: PathBuf = dir.join(written).components().collect();
    let mut searched = vec![local.display().to_string()];
    if is_executable(&local) {
        return Ok(local);
    }
    // A bare name may also come from PATH; a path with a `/` is file-relative only.
    if !program.contains('/') {
        if let Some(path) = env("PATH") {
            for candidate in std::env::split_paths(&path).map(|d| d.join(program)) {
                if is_executable(&candidate) {
                    return Ok(candidate);
                }
            }
            searched.push("PATH".to_owned());
        }
    }
    Err(LoadErrorKind::ExecutableNotFound {
        program: program.to_owned(),
        searched: searched.join(", "),
    })
}

pub(super) fn check_names(nodes: &[Collected]) -> Result<(), LoadError> {
    let mut seen: HashMap<&str, &Site> = HashMap::new();
    for node in nodes {
        if let Some(first) = seen.insert(&node.name, &node.site) {
            return Err(node.site.error(LoadErrorKind::DuplicateNode {
                name: node.name.clone(),
                first: first.display(),
            }));
        }
    }
    Ok(())
}

pub(super) fn check_dependencies(nodes: &[Collected]) -> Result<(), LoadError> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    for node in nodes {
        for (dep, site) in &node.depends_on {
            if !index.contains_key(dep.as_str()) {
                let mut known: Vec<&str> = index.keys().copied().collect();
                known.sort_unstable();
                return Err(site.error(LoadErrorKind::UnknownDependency {
                    name: dep.clone(),
                    known: known.join(", "),
                }));
            }
        }
    }
    // Depth-first search; 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; nodes.len()];
    let mut path = Vec::new();
    fn visit(
        i: usize,
        nodes: &[Collected],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Result<(), LoadError> {
        state[i] = 1;
        path.push(i);
        for (dep, site) in &nodes[i].depends_on {
            let j = index[dep.as_str()];
            if state[j] == 1 {
                let start = path.iter().position(|&p| p == j).unwrap_or(0);
                let chain: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| nodes[p].name.as_str())
                    .chain([dep.as_str()])
                    .collect();
                return Err(site.error(LoadErrorKind::DependencyCycle {
                    chain: chain.join(" -> "),
                }));
            }
            if state[j] == 0 {
                visit(j, nodes, index, state, path)?;
            }
        }
        path.pop();
        state[i] = 2;
        Ok(())
    }
    for i in 0..nodes.len() {
        if state[i] == 0 {
            visit(i, nodes, &index, &mut state, &mut path)?;
        }
    }
    Ok(())
}

pub(super) fn select_machine(
    root: &Path,
    nodes: Vec<Collected>,
    machine: Option<&str>,
) -> Result<Vec<Collected>, LoadError> {
    let Some(machine) = machine else {
        return Ok(nodes);
    };
    let mut labels: Vec<String> = nodes.iter().filter_map(|n| n.machine.clone()).collect();
    labels.sort_unstable();
    labels.dedup();
    let selected: Vec<Collected> = nodes
        .into_iter()
        .filter(|n| n.machine.as_deref() == Some(machine))
        .collect();
    if selected.is_empty() {
        return Err(LoadError::new(
            root,
            LoadErrorKind::UnknownMachine {
                machine: machine.to_owned(),
                known: if labels.is_empty() {
                    "none".to_owned()
                } else {
                    labels.join(", ")
                },
            },
        ));
    }
    Ok(selected)
}
