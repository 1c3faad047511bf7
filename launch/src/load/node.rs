//! Turning one `nodes:` entry into a node of the plan.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use evospike_schemas::contract;
use marked_yaml::{Node, Spanned};
use regex::Regex;
use serde_json::{Map, Value};

use super::check::{checked_identifier, resolve_exec};
use super::kinds::ParamSites;
use super::yaml::parse;
use super::{line_of, Collected, Command, Inherited, LoadOptions, Loader, Site, RESERVED_NAMES};
use crate::error::{LoadError, LoadErrorKind};
use crate::json::{merge_under, to_json};
use crate::plan::{
    NodeSpec, Readiness, RespawnPolicy, DEFAULT_READY_DELAY, DEFAULT_READY_TIMEOUT,
    DEFAULT_RESPAWN_DELAY, DEFAULT_RESPAWN_DELAY_MAX,
};
use crate::schema::RawNode;
use crate::security::{NodeSecurity, ROUTER_KIND};
use crate::subst::is_executable;

impl Loader<'_> {
    pub(super) fn collect_node(
        &self,
        path: &Path,
        dir: &Path,
        index: usize,
        node: &RawNode,
        tree_node: Option<&Node>,
        here: &Inherited,
    ) -> Result<Collected, LoadError> {
        let key = format!("nodes[{index}]");
        let site = |line, sub: &str| Site {
            file: path.to_path_buf(),
            line,
            key: format!("{key}.{sub}"),
        };
        let name_site = site(line_of(node.name.span()), "name");
        let name = checked_identifier(&node.name, name_site.clone())?;
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(name_site.error(LoadErrorKind::Schema(format!(
                "node name `{name}` is reserved for the launcher"
            ))));
        }
        let namespace = match &node.namespace {
            Some(ns) => checked_identifier(ns, site(line_of(ns.span()), "namespace"))?,
            None => here
                .namespace
                .clone()
                .unwrap_or_else(|| contract::DEFAULT_NAMESPACE.to_owned()),
        };
        let command = match (&node.kind, &node.exec) {
            (Some(kind), None) => {
                let kind_site = site(line_of(kind.span()), "kind");
                let name = checked_identifier(kind, kind_site.clone())?;
                if let Some(kinds) = self.kinds {
                    let known = kinds.kinds();
                    if !known.contains(&name) {
                        return Err(kind_site.error(LoadErrorKind::UnknownKind {
                            kind: name,
                            known: known.join(", "),
                        }));
                    }
                }
                Command::Kind {
                    kind: name,
                    site: kind_site,
                }
            }
            (None, Some(exec)) if !exec.deref().is_empty() => Command::Exec {
                program: exec.deref().clone(),
                dir: dir.to_path_buf(),
                site: site(line_of(exec.span()), "exec"),
            },
            (None, Some(exec)) => {
                return Err(site(line_of(exec.span()), "exec")
                    .error(LoadErrorKind::Schema("empty program".into())))
            }
            (Some(_), Some(_)) | (None, None) => return Err(Site {
                key: key.clone(),
                ..name_site
            }
            .error(LoadErrorKind::Schema(
                "a node needs exactly one of `kind:` (a built-in node kind) or `exec:` (a program)"
                    .into(),
            ))),
        };

        if let (Command::Kind { .. }, Some(topics)) = (&command, &node.topics) {
            return Err(site(line_of(topics.span()), "topics").error(LoadErrorKind::Schema(
                "`topics:` is for `exec:` nodes; a `kind:` node's kind says what it publishes, \
                 subscribes and serves"
                    .into(),
            )));
        }

        let sub_tree = |field: &str| {
            tree_node
                .and_then(Node::as_mapping)
                .and_then(|m| m.get_node(field))
        };
        let param_sites = ParamSites {
            file: path.to_path_buf(),
            tree: sub_tree("params").cloned(),
            params_file_line: node.params_file.as_ref().and_then(|f| line_of(f.span())),
            node_line: line_of(node.name.span()),
        };
        let mut params = match &node.params_file {
            Some(file) => read_params_file(
                &dir.join(file.deref()),
                site(line_of(file.span()), "params_file"),
            )?,
            None => Value::Object(Map::new()),
        };
        if let Some(inline) = sub_tree("params") {
            let inline = to_json(inline);
            if !inline.is_object() {
                return Err(site(line_of(inline_span(sub_tree("params"))), "params")
                    .error(LoadErrorKind::Schema("params must be a mapping".into())));
            }
            merge_under(&mut params, inline);
        }
        let plugins = sub_tree("plugins")
            .map(to_json)
            .unwrap_or(Value::Array(Vec::new()));
        let plugin_dirs: Vec<String> = node
            .plugin_dirs
            .iter()
            .map(|d| dir.join(d).display().to_string())
            .collect();
        let bus = node
            .bus
            .as_ref()
            .map(|b| b.resolved(dir).over(&here.bus))
            .unwrap_or_else(|| here.bus.clone());
        let is_router = matches!(&command, Command::Kind { kind, .. } if kind == ROUTER_KIND);
        if bus.security.as_ref().is_some_and(|s| s.acl)
            && !is_router
            && bus.mode.as_deref() != Some("client")
        {
            return Err(name_site.error(LoadErrorKind::Schema(format!(
                "bus.security.acl needs `mode: client` for node `{name}` (every node but the \
                 routers): peers link to each other directly, past the routers that enforce \
                 the access-control list"
            ))));
        }

        let mut env = BTreeMap::new();
        env.insert(contract::env::NODE_NAME.to_owned(), name.clone());
        env.insert(contract::env::NAMESPACE.to_owned(), namespace.clone());
        env.insert(contract::env::PARAMS.to_owned(), params.to_string());
        env.insert(
            contract::env::REMAP.to_owned(),
            serde_json::to_string(&node.remap).unwrap_or_else(|_| "{}".to_owned()),
        );
        env.insert(contract::env::PLUGINS.to_owned(), plugins.to_string());
        env.insert(
            contract::env::PLUGIN_DIRS.to_owned(),
            contract::join_dirs(&plugin_dirs),
        );
        if let Some(mode) = &bus.mode {
            env.insert(contract::env::BUS_MODE.to_owned(), mode.clone());
        }
        if let Some(listen) = &bus.listen {
            env.insert(
                contract::env::BUS_LISTEN.to_owned(),
                contract::join_list(listen),
            );
        }
        if let Some(connect) = &bus.connect {
            env.insert(
                contract::env::BUS_CONNECT.to_owned(),
                contract::join_list(connect),
            );
        }
        env.extend(node.env.iter().map(|(k, v)| (k.clone(), v.clone())));

        let seconds = |value: &Option<Spanned<f64>>, field: &str, default: Duration| {
            value
                .as_ref()
                .map_or(Ok(default), |v| duration(v, site(line_of(v.span()), field)))
        };
        let respawn = RespawnPolicy {
            mode: node.respawn,
            max_restarts: node.max_restarts,
            delay: seconds(&node.respawn_delay, "respawn_delay", DEFAULT_RESPAWN_DELAY)?,
            delay_max: seconds(
                &node.respawn_delay_max,
                "respawn_delay_max",
                DEFAULT_RESPAWN_DELAY_MAX,
            )?,
        };
        let readiness = match &node.ready_when {
            Some(pattern) => Readiness::Line {
                pattern: Regex::new(pattern.deref()).map_err(|e| {
                    site(line_of(pattern.span()), "ready_when")
                        .error(LoadErrorKind::Schema(format!("invalid regex: {e}")))
                })?,
                timeout: seconds(&node.ready_timeout, "ready_timeout", DEFAULT_READY_TIMEOUT)?,
            },
            None => Readiness::Delay(seconds(
                &node.ready_delay,
                "ready_delay",
                DEFAULT_READY_DELAY,
            )?),
        };
        let depends_on = node
            .depends_on
            .iter()
            .enumerate()
            .map(|(i, dep)| {
                (
                    dep.deref().clone(),
                    site(line_of(dep.span()), &format!("depends_on[{i}]")),
                )
            })
            .collect();
        let machine = node
            .machine
            .as_ref()
            .map(|m| m.deref().clone())
            .or_else(|| here.machine.clone());

        Ok(Collected {
            name,
            site: name_site,
            namespace,
            machine,
            command,
            args: node.args.clone(),
            env,
            respawn,
            depends_on,
            readiness,
            required: node.required,
            params: params.as_object().cloned().unwrap_or_default(),
            param_sites,
            security: bus.security.clone(),
            remap: node.remap.clone(),
            declared_topics: node.topics.as_ref().map(|t| t.deref().clone()),
        })
    }
}

fn inline_span(node: Option<&Node>) -> &marked_yaml::Span {
    static BLANK: std::sync::OnceLock<marked_yaml::Span> = std::sync::OnceLock::new();
    node.map(Node::span)
        .unwrap_or_else(|| BLANK.get_or_init(marked_yaml::Span::new_blank))
}

impl Collected {
    /// Binds the node to its executable and keeps only dependencies on this machine.
    pub(super) fn finish(
        self,
        options: &LoadOptions,
        selected: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NodeSpec, LoadError> {
        let mut env_vars = self.env.clone();
        if let Some(security) = &self.security {
            let node = NodeSecurity {
                security,
                name: &self.name,
                namespace: &self.namespace,
                machine: self.machine.as_deref(),
                kind: self.kind(),
            };
            let vars = node
                .env()
                .map_err(|problem| self.site.error(LoadErrorKind::Schema(problem)))?;
            env_vars.extend(vars);
        }
        let (program, args) = match self.command {
            Command::Kind { kind, site } => {
                let exe = options.evospike_exe.clone().ok_or_else(|| {
                    site.error(LoadErrorKind::NoEvospikeExe { kind: kind.clone() })
                })?;
                if !is_executable(&exe) {
                    return Err(site.error(LoadErrorKind::ExecutableNotFound {
                        program: exe.display().to_string(),
                        searched: "the evospike executable given by --evospike-exe or EVOSPIKE_EXE"
                            .to_owned(),
                    }));
                }
                let args = contract::run_args(&kind)
                    .into_iter()
                    .chain(self.args)
                    .collect();
                (exe, args)
            }
            Command::Exec { program, dir, site } => (
                resolve_exec(&program, &dir, env).map_err(|kind| site.error(kind))?,
                self.args,
            ),
        };
        Ok(NodeSpec {
            defined_at: self.site.display(),
            name: self.name,
            namespace: self.namespace,
            machine: self.machine,
            program,
            args,
            env: env_vars,
            respawn: self.respawn,
            depends_on: self
                .depends_on
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| selected.contains(name))
                .collect(),
            readiness: self.readiness,
            required: self.required,
        })
    }
}

fn read_params_file(path: &Path, site: Site) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        site.error(LoadErrorKind::Schema(format!(
            "cannot read params file {}: {e}",
            path.display()
        )))
    })?;
    let tree = parse(path, &text)?;
    Ok(to_json(&tree))
}

pub(super) fn duration(seconds: &Spanned<f64>, site: Site) -> Result<Duration, LoadError> {
    Duration::try_from_secs_f64(*seconds.deref()).map_err(|_| {
        site.error(LoadErrorKind::Schema(format!(
            "`{}` is not a duration in seconds (a number >= 0)",
            seconds.deref()
        )))
    })
}
