//! How a node is told who it is: command-line flags, over the `EVOSPIKE_*`
//! environment variables the launcher sets (the contract of
//! [`evospike_schemas::contract`]), over defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use evospike_bus::{BusConfig, Mode, TransportKind};
use evospike_schemas::contract::{self, env, DEFAULT_ROUTER};
use serde_json::{Map, Value};

use crate::NodeError;

/// Command-line options shared by every node kind (`evospike run KIND …`) and by
/// the bus tools. Each flag falls back on its `EVOSPIKE_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// Node name (default: the kind).
    #[arg(long, env = env::NODE_NAME)]
    pub name: Option<String>,
    /// Namespace of every key.
    #[arg(long, env = env::NAMESPACE, default_value = contract::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// A parameter, `KEY=VALUE` (VALUE is JSON if it parses as JSON, else a string). Repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A YAML or JSON file of parameters (flags win over it).
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// A topic remap, `FROM:=TO`. Repeatable.
    #[arg(short = 'r', long = "remap", value_name = "FROM:=TO")]
    pub remaps: Vec<String>,
    /// A folder with external plugins. Repeatable.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// How to reach the bus.
    #[command(flatten)]
    pub bus: BusArgs,
}

/// How to reach the bus.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BusArgs {
    /// Endpoint to connect to. Repeatable. Default: the local router, tcp/127.0.0.1:7447.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Endpoint to listen on. Repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Zenoh mode: peer, client or router.
    #[arg(long)]
    pub mode: Option<String>,
    /// Turn shared memory off.
    #[arg(long)]
    pub no_shm: bool,
    /// Use the in-process transport (single-process runs).
    #[arg(long)]
    pub local: bool,
}

impl BusArgs {
    /// The bus configuration: defaults, then `EVOSPIKE_BUS_*`, then these flags.
    /// Without any connect endpoint, a peer connects to [`DEFAULT_ROUTER`].
    pub fn to_config(&self, namespace: &str) -> Result<BusConfig, NodeError> {
        let mut config = BusConfig::from_env()?;
        config.namespace = namespace.to_string();
        if !self.connect.is_empty() {
            config.connect = self.connect.clone();
        }
        if !self.listen.is_empty() {
            config.listen = self.listen.clone();
        }
        if let Some(mode) = &self.mode {
            config.mode = mode.parse()?;
        }
        if self.no_shm {
            config.shared_memory = false;
        }
        if self.local {
            config.transport = TransportKind::Local;
        }
        if config.connect.is_empty()
            && config.mode != Mode::Router
            && config.transport == TransportKind::Zenoh
        {
            config.connect = vec![DEFAULT_ROUTER.to_string()];
        }
        Ok(config)
    }
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn env_json(name: &'static str) -> Result<Option<Value>, NodeError> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| NodeError::Config(format!("{name} is not valid JSON: {err}"))),
        _ => Ok(None),
    }
}

impl NodeArgs {
    /// The node's parameters: `EVOSPIKE_PARAMS`, then `--params-file`, then `--param`.
    pub fn params(&self) -> Result<Map<String, Value>, NodeError> {
        let mut params = match env_json(env::PARAMS)? {
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(NodeError::Config(format!(
                    "{} must be a JSON object, got {other}",
                    env::PARAMS
                )))
            }
            None => Map::new(),
        };
        if let Some(path) = &self.params_file {
            let text = std::fs::read_to_string(path).map_err(|err| {
                NodeError::Config(format!("cannot read params file {}: {err}", path.display()))
            })?;
            let value: Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .map_err(|err| NodeError::Config(format!("{}: {err}", path.display())))?
            } else {
                serde_yaml_ng::from_str(&text)
                    .map_err(|err| NodeError::Config(format!("{}: {err}", path.display())))?
            };
            match value {
                Value::Object(map) => params.extend(map),
                _ => {
                    return Err(NodeError::Config(format!(
                        "{}: parameters must be a mapping",
                        path.display()
                    )))
                }
            }
        }
        for param in &self.params {
            let (key, value) = contract::split_key_value(param).ok_or_else(|| {
                NodeError::Config(format!("--param {param:?}: expected KEY=VALUE"))
            })?;
            params.insert(key.to_string(), parse_value(value.trim()));
        }
        Ok(params)
    }

    /// Topic remaps: `EVOSPIKE_REMAP`, then `--remap`.
    pub fn remaps(&self) -> Result<BTreeMap<String, String>, NodeError> {
        let mut remaps = BTreeMap::new();
        if let Some(value) = env_json(env::REMAP)? {
            let map: BTreeMap<String, String> = serde_json::from_value(value).map_err(|err| {
                NodeError::Config(format!("{} must map names to names: {err}", env::REMAP))
            })?;
            remaps.extend(map);
        }
        for remap in &self.remaps {
            let (from, to) = contract::split_remap(remap).ok_or_else(|| {
                NodeError::Config(format!("--remap {remap:?}: expected FROM:=TO"))
            })?;
            remaps.insert(from.to_string(), to.to_string());
        }
        Ok(remaps)
    }

    /// Plugin folders: `EVOSPIKE_PLUGIN_DIRS`, then `--plugin-dir`.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::env::var(env::PLUGIN_DIRS)
            .map(|v| {
                contract::split_dirs(&v)
                    .into_iter()
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        dirs.extend(self.plugin_dirs.iter().cloned());
        dirs
    }

    /// The node's plugin list (`EVOSPIKE_PLUGINS`), each entry as written in the launch file.
    pub fn plugins(&self) -> Result<Vec<Value>, NodeError> {
        match env_json(env::PLUGINS)? {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(NodeError::Config(format!(
                "{} must be a JSON array, got {other}",
                env::PLUGINS
            ))),
            None => Ok(Vec::new()),
        }
    }
}
