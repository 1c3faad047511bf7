//! Start order: dependencies first (topological), then priority, then registration order.
//!
//! Stopping uses the reverse of the start order, so a plugin always stops before
//! the plugins it depends on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use evospike_plugin_api::PluginMetadata;

use crate::error::DependencyError;

/// The order in which to start the enabled plugins among `plugins` (given in
/// registration order). Every dependency of an enabled plugin must be registered,
/// enabled and of a matching version, and there must be no cycle.
pub fn start_order(
    plugins: &[&PluginMetadata],
    enabled: impl Fn(&str) -> bool,
) -> Result<Vec<String>, DependencyError> {
    let index: HashMap<&str, usize> = plugins
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i))
        .collect();
    let active: Vec<usize> = (0..plugins.len())
        .filter(|&i| enabled(&plugins[i].name))
        .collect();

    // deps_of[i]: indices plugin i waits for; dependents[j]: plugins waiting for j.
    let mut deps_of: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &active {
        let m = plugins[i];
        for dep in &m.dependencies {
            let Some(&j) = index.get(dep.name.as_str()) else {
                return Err(DependencyError::Missing {
                    plugin: m.name.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.version.clone(),
                });
            };
            if !enabled(&dep.name) {
                return Err(DependencyError::Disabled {
                    plugin: m.name.clone(),
                    dependency: dep.name.clone(),
                });
            }
            if !dep.version.matches(&plugins[j].version) {
                return Err(DependencyError::Incompatible {
                    plugin: m.name.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.version.clone(),
                    found: plugins[j].version.clone(),
                });
            }
            deps_of.entry(i).or_default().push(j);
            dependents.entry(j).or_default().push(i);
        }
    }

    let mut waiting: HashMap<usize, usize> = active
        .iter()
        .map(|&i| (i, deps_of.get(&i).map_or(0, Vec::len)))
        .collect();
    let key = |i: usize| Reverse((plugins[i].effective_priority(), i));
    let mut ready: BinaryHeap<Reverse<(evospike_plugin_api::Priority, usize)>> = waiting
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&i, _)| key(i))
        .collect();
    let mut order = Vec::with_capacity(active.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        waiting.remove(&i);
        order.push(plugins[i].name.clone());
        for &d in dependents.get(&i).map_or(&[][..], Vec::as_slice) {
            if let Some(n) = waiting.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    ready.push(key(d));
                }
            }
        }
    }

    if waiting.is_empty() {
        Ok(order)
    } else {
        Err(DependencyError::Cycle {
            cycle: find_cycle(plugins, &deps_of, &waiting),
        })
    }
}

/// Every plugin left in `waiting` waits for another one left there, so walking
/// "depends on" edges inside that set must come back to a plugin already seen.
fn find_cycle(
    plugins: &[&PluginMetadata],
    deps_of: &HashMap<usize, Vec<usize>>,
    waiting: &HashMap<usize, usize>,
) -> Vec<String> {
    let Some(&start) = waiting.keys().min() else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = deps_of
            .get(&current)
            .and_then(|deps| deps.iter().copied().find(|d| waiting.contains_key(d)));
        let Some(next) = next else {
            // Unreachable by the invariant above; report the stuck set rather than panic.
            return waiting.keys().map(|&i| plugins[i].name.clone()).collect();
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .map(|&i| plugins[i].name.clone())
                .collect();
            cycle.push(plugins[next].name.clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use evospike_plugin_api::{Dependency, PluginType, Priority};
    use semver::{Version, VersionReq};

    use super::*;

    fn meta(name: &str, priority: u32, deps: &[(&str, &str)]) -> PluginMetadata {
        let mut m = PluginMetadata::new(name, Version::new(1, 2, 0), PluginType::Functional)
            .with_priority(Priority(priority));
        for (d, req) in deps {
            m = m.with_dependency(Dependency::new(*d, VersionReq::parse(req).unwrap()));
        }
        m
    }

    fn order(ms: &[PluginMetadata]) -> Result<Vec<String>, DependencyError> {
        let refs: Vec<&PluginMetadata> = ms.iter().collect();
        start_order(&refs, |_| true)
    }

    #[test]
    fn dependencies_first_then_priority_then_registration() {
        let ms = [
            meta("App", 40, &[("Auth", "^1")]),
            meta("Metrics", 30, &[]),
            meta("Auth", 20, &[("Bus", "^1.1")]),
            meta("Bus", 10, &[]),
            meta("Other", 30, &[]),
            meta("Early", 5, &[("App", "*")]),
        ];
        assert_eq!(
            order(&ms).unwrap(),
            ["Bus", "Auth", "Metrics", "Other", "App", "Early"]
        );
    }

    #[test]
    fn missing_dependency_names_both_plugins() {
        let err = order(&[meta("App", 40, &[("Auth", "^1")])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `App` depends on `Auth` (^1), which is not registered"
        );
    }

    #[test]
    fn incompatible_version_names_requirement_and_found() {
        let err = order(&[meta("App", 40, &[("Bus", "^2")]), meta("Bus", 10, &[])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `App` needs `Bus` ^2, but version 1.2.0 is registered"
        );
    }

    #[test]
    fn cycle_names_the_plugins_on_it() {
        let ms = [
            meta("Free", 10, &[]),
            meta("A", 40, &[("B", "*")]),
            meta("B", 40, &[("C", "*")]),
            meta("C", 40, &[("A", "*")]),
            meta("Tail", 40, &[("A", "*")]),
        ];
        assert_eq!(
            order(&ms).unwrap_err().to_string(),
            "dependency cycle: A -> B -> C -> A"
        );
        let err = order(&[meta("Self", 1, &[("Self", "*")])]).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: Self -> Self");
    }

    #[test]
    fn disabled_plugins_are_left_out_but_not_as_dependencies() {
        let ms = [meta("A", 40, &[]), meta("B", 10, &[])];
        let refs: Vec<&PluginMetadata> = ms.iter().collect();
        assert_eq!(start_order(&refs, |n| n != "B").unwrap(), ["A"]);
        let ms = [meta("A", 40, &[("B", "*")]), meta("B", 10, &[])];
        let refs: Vec<&PluginMetadata> = ms.iter().collect();
        let err = start_order(&refs, |n| n != "B").unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `A` depends on `B`, which is disabled by config"
        );
    }
}
