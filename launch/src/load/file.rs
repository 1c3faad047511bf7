//! Reading one launch file: args, substitutions, schema, includes.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use marked_yaml::Node;

use super::check::checked_identifier;
use super::node::duration;
use super::yaml::{parse, schema_error, walk_substitute};
use super::{line_of, Inherited, Loader, RootInfo, Site};
use crate::error::{LoadError, LoadErrorKind};
use crate::plan::ShutdownTimeouts;
use crate::schema::{RawArg, RawFile};
use crate::subst::{substitute, SubstContext};

impl Loader<'_> {
    pub(super) fn read_file(
        &mut self,
        path: &Path,
        given_args: &BTreeMap<String, String>,
        inherited: &Inherited,
    ) -> Result<RootInfo, LoadError> {
        let io_err = |e| LoadError::new(path, LoadErrorKind::Io(e));
        let canonical = path.canonicalize().map_err(io_err)?;
        let text = std::fs::read_to_string(path).map_err(io_err)?;
        let dir = canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut tree = parse(path, &text)?;
        let args = self.read_args(path, &tree, given_args, &dir)?;
        self.substitute_tree(path, &mut tree, &args, &dir)?;
        let raw: RawFile = marked_yaml::from_node(&tree).map_err(|e| schema_error(path, e, ""))?;

        let site = |line, key: &str| Site {
            file: path.to_path_buf(),
            line,
            key: key.to_owned(),
        };
        let shutdown = shutdown_timeouts(&raw, &site)?;
        let here = Inherited {
            namespace: match &raw.namespace {
                Some(ns) => Some(checked_identifier(
                    ns,
                    site(line_of(ns.span()), "namespace"),
                )?),
                None => inherited.namespace.clone(),
            },
            machine: inherited.machine.clone(),
            bus: raw
                .bus
                .as_ref()
                .map(|b| b.resolved(&dir).over(&inherited.bus))
                .unwrap_or_else(|| inherited.bus.clone()),
        };

        self.stack.push((canonical, path.to_path_buf()));
        for (i, include) in raw.include.iter().enumerate() {
            let key = format!("include[{i}]");
            let target = dir.join(include.file.deref());
            let shown = relative_to_cwd(path, include.file.deref());
            if !target.is_file() {
                return Err(
                    site(line_of(include.file.span()), &format!("{key}.file")).error(
                        LoadErrorKind::Schema(format!(
                            "included file `{}` not found (resolved to {})",
                            include.file.deref(),
                            target.display()
                        )),
                    ),
                );
            }
            if let Some(chain) = self.cycle(&target, &shown) {
                return Err(site(line_of(include.file.span()), &format!("{key}.file"))
                    .error(LoadErrorKind::IncludeCycle { chain }));
            }
            let child = Inherited {
                namespace: match &include.namespace {
                    Some(ns) => Some(checked_identifier(
                        ns,
                        site(line_of(ns.span()), &format!("{key}.namespace")),
                    )?),
                    None => here.namespace.clone(),
                },
                machine: include
                    .machine
                    .as_ref()
                    .map(|m| m.deref().clone())
                    .or_else(|| here.machine.clone()),
                bus: here.bus.clone(),
            };
            self.read_file(&shown, &include.args, &child).map_err(|e| {
                if matches!(
                    e.kind,
                    LoadErrorKind::UnknownArg { .. } | LoadErrorKind::MissingArg { .. }
                ) && e.file == shown
                {
                    // Wrong args are the including file's mistake: point at the include.
                    site(line_of(include.file.span()), &format!("{key}.args")).error(e.kind)
                } else {
                    e
                }
            })?;
        }
        self.stack.pop();

        for (i, node) in raw.nodes.iter().enumerate() {
            let tree_node = tree
                .as_mapping()
                .and_then(|m| m.get_sequence("nodes"))
                .and_then(|s| s.get_node(i));
            let collected = self.collect_node(path, &dir, i, node, tree_node, &here)?;
            self.nodes.push(collected);
        }
        Ok(RootInfo {
            name: raw.name,
            shutdown,
        })
    }

    /// `a -> b -> a` when including `target` from the current file closes a cycle.
    fn cycle(&self, target: &Path, shown: &Path) -> Option<String> {
        let canonical = target.canonicalize().ok()?;
        let pos = self.stack.iter().position(|(c, _)| *c == canonical)?;
        let chain: Vec<String> = self.stack[pos..]
            .iter()
            .map(|(_, shown)| shown.display().to_string())
            .chain([shown.display().to_string()])
            .collect();
        Some(chain.join(" -> "))
    }

    /// Reads `args:`: each declared arg gets the caller's value or its default
    /// (which may use `$(env ..)`, `$(dirname)` and earlier args).
    fn read_args(
        &self,
        path: &Path,
        tree: &Node,
        given: &BTreeMap<String, String>,
        dir: &Path,
    ) -> Result<BTreeMap<String, String>, LoadError> {
        let mut args = BTreeMap::new();
        let declared = tree.as_mapping().and_then(|m| m.get_node("args"));
        let declared = match declared {
            None => None,
            Some(Node::Mapping(m)) => Some(m),
            Some(other) => {
                return Err(LoadError::new(
                    path,
                    LoadErrorKind::Schema("expected a mapping of arg names".into()),
                )
                .at(line_of(other.span()), "args"))
            }
        };
        let mut names = Vec::new();
        for (key, value) in declared.into_iter().flat_map(|m| m.iter()) {
            let name = key.as_str().to_owned();
            let key_path = format!("args.{name}");
            let at = |kind| LoadError::new(path, kind).at(line_of(value.span()), key_path.clone());
            let default = match value {
                Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "" | "~" | "null") => {
                    None
                }
                Node::Scalar(s) => Some(s.as_str().to_owned()),
                Node::Mapping(_) => {
                    marked_yaml::from_node::<RawArg>(value)
                        .map_err(|e| schema_error(path, e, &key_path))?
                        .default
                }
                Node::Sequence(_) => {
                    return Err(at(LoadErrorKind::Schema(
                        "an arg is a default value or a mapping {default, description}".into(),
                    )))
                }
            };
            let value = match (given.get(&name), default) {
                (Some(v), _) => v.clone(),
                (None, Some(default)) => {
                    let ctx = SubstContext {
                        args: &args,
                        dir,
                        env: self.env,
                    };
                    substitute(&default, &ctx).map_err(|e| at(e.into()))?
                }
                (None, None) => return Err(at(LoadErrorKind::MissingArg { name })),
            };
            names.push(name.clone());
            args.insert(name, value);
        }
        if let Some(unknown) = given.keys().find(|k| !args.contains_key(*k)) {
            return Err(LoadError::new(
                path,
                LoadErrorKind::UnknownArg {
                    name: unknown.clone(),
                    declared: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                },
            ));
        }
        Ok(args)
    }

    /// Expands `$(...)` in every scalar value outside `args:`.
    fn substitute_tree(
        &self,
        path: &Path,
        tree: &mut Node,
        args: &BTreeMap<String, String>,
        dir: &Path,
    ) -> Result<(), LoadError> {
        let ctx = SubstContext {
            args,
            dir,
            env: self.env,
        };
        let Some(top) = tree.as_mapping_mut() else {
            return Ok(());
        };
        for (key, value) in top.iter_mut() {
            if key.as_str() != "args" {
                walk_substitute(value, key.as_str(), &ctx)
                    .map_err(|(line, key, e)| LoadError::new(path, e.into()).at(line, key))?;
            }
        }
        Ok(())
    }
}

fn shutdown_timeouts(
    raw: &RawFile,
    site: &dyn Fn(Option<usize>, &str) -> Site,
) -> Result<ShutdownTimeouts, LoadError> {
    let mut timeouts = ShutdownTimeouts::default();
    if let Some(shutdown) = &raw.shutdown {
        if let Some(v) = &shutdown.sigint_timeout {
            timeouts.sigint = duration(v, site(line_of(v.span()), "shutdown.sigint_timeout"))?;
        }
        if let Some(v) = &shutdown.sigterm_timeout {
            timeouts.sigterm = duration(v, site(line_of(v.span()), "shutdown.sigterm_timeout"))?;
        }
    }
    Ok(timeouts)
}

/// The path of an included file as shown in messages: relative to the
/// including file's folder as the user sees it.
fn relative_to_cwd(including: &Path, written: &str) -> PathBuf {
    let written = Path::new(written);
    if written.is_absolute() {
        written.to_path_buf()
    } else {
        including.parent().unwrap_or(Path::new("")).join(written)
    }
}
