//! How a node is told who it is: command-line flags, over the `EVOSPIKE_*`
//! environment variables the launcher sets (the contract of
//! [`evospike_schemas::contract`]), over defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use evospike_bus::{BusConfig, Mode, TransportKind};
use evospike_schemas::contract::{self, env, DEFAULT_ROUTER};
use serde_json::{Map, Value};

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
    /// TLS: PEM file of the cluster's certificate authority (endpoints are then `tls/…`).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// TLS: PEM file of this machine's certificate.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: PEM file of this machine's private key.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: a router accepts only sessions with a certificate of the CA.
    #[arg(long)]
    pub mtls: bool,
    /// Authenticate as this user (its password comes from `EVOSPIKE_BUS_PASSWORD`
    /// or --password-file).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// A file holding the password of --user (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// A cluster secret file: --user's password is derived from it (as the
    /// launcher does for its nodes).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// A router's file of accepted users, one `user:password` per line.
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// A router's access-control file (JSON, Zenoh's `access_control` section;
    /// `evospike launch --acl` writes one from a launch file).
    #[arg(long, value_name = "FILE")]
    pub acl: Option<PathBuf>,
}

impl BusArgs {
    /// The bus configuration: defaults, then `EVOSPIKE_BUS_*`, then these flags.
    /// Without any connect endpoint, a peer connects to [`DEFAULT_ROUTER`].
    pub fn to_config(&self, namespace: &str) -> Result<BusConfig, ArgsError> {
        let mut config = BusConfig::from_env().map_err(ArgsError::Bus)?;
        config.namespace = namespace.to_string();
        if !self.connect.is_empty() {
            config.connect = self.connect.clone();
        }
        if !self.listen.is_empty() {
            config.listen = self.listen.clone();
        }
        if let Some(mode) = &self.mode {
            config.mode = mode.parse().map_err(ArgsError::Bus)?;
        }
        if self.no_shm {
            config.shared_memory = false;
        }
        if self.local {
            config.transport = TransportKind::Local;
        }
        self.apply_security(&mut config)?;
        if config.connect.is_empty()
            && config.mode != Mode::Router
            && config.transport == TransportKind::Zenoh
        {
            config.connect = vec![DEFAULT_ROUTER.to_string()];
        }
        Ok(config)
    }

    /// The security flags over what the environment set.
    fn apply_security(&self, config: &mut BusConfig) -> Result<(), ArgsError> {
        if self.tls_ca.is_some() || self.tls_cert.is_some() || self.mtls {
            let mut tls = config.tls.take().unwrap_or_default();
            if let Some(ca) = &self.tls_ca {
                tls.ca = ca.clone();
            }
            if tls.ca.as_os_str().is_empty() {
                return Err(ArgsError::Bus(evospike_bus::BusError::Config(
                    "--tls-cert and --mtls need --tls-ca (the cluster's certificate authority)"
                        .into(),
                )));
            }
            tls.cert = self.tls_cert.clone().or(tls.cert);
            tls.key = self.tls_key.clone().or(tls.key);
            tls.mtls |= self.mtls;
            config.tls = Some(tls);
        }
        if let Some(user) = &self.user {
            config.auth.user = Some(user.clone());
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| ArgsError::PasswordFile {
                path: path.clone(),
                source,
            })?;
            config.auth.password = Some(text.lines().next().unwrap_or_default().to_string());
        }
        if let Some(path) = &self.secret_file {
            config.auth.secret_file = Some(path.clone());
        }
        if let Some(path) = &self.users_file {
            config.auth.users_file = Some(path.clone());
        }
        if let Some(path) = &self.acl {
            config.acl = Some(path.clone());
        }
        Ok(())
    }
}

/// A flag, a params file or an `EVOSPIKE_*` variable is malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A variable that holds JSON does not.
    #[error("{variable} is not valid JSON")]
    EnvJson {
        /// The variable.
        variable: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A variable holds JSON of the wrong shape.
    #[error("{variable} must be {expected}, got {got}")]
    EnvShape {
        /// The variable.
        variable: &'static str,
        /// What it must hold.
        expected: &'static str,
        /// What it holds.
        got: String,
    },
    /// `--password-file` cannot be read.
    #[error("cannot read password file {}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--params-file` cannot be read.
    #[error("cannot read params file {}", path.display())]
    ParamsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--params-file` is not YAML or JSON, or not a mapping.
    #[error("params file {} is not a mapping of parameters", path.display())]
    ParamsFileSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, if it did not parse.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A flag value without its separator (`-p size` for `-p size=100`).
    #[error("{flag} {value:?}: expected {form}")]
    Form {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// The form it must have.
        form: &'static str,
    },
    /// A `plugins:` entry of the launch file is malformed.
    #[error("plugin entry {entry}: {problem}")]
    PluginEntry {
        /// The entry as JSON.
        entry: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The bus options (flags or `EVOSPIKE_BUS_*`) are invalid.
    #[error("invalid bus options")]
    Bus(#[source] evospike_bus::BusError),
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn env_json(variable: &'static str) -> Result<Option<Value>, ArgsError> {
    match std::env::var(variable) {
        Ok(text) if !text.trim().is_empty() => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ArgsError::EnvJson { variable, source }),
        _ => Ok(None),
    }
}

fn params_file(path: &Path) -> Result<Map<String, Value>, ArgsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ArgsError::ParamsFile {
        path: path.to_owned(),
        source,
    })?;
    let syntax = |source: Box<dyn std::error::Error + Send + Sync>| ArgsError::ParamsFileSyntax {
        path: path.to_owned(),
        source: Some(source),
    };
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| syntax(Box::new(e)))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| syntax(Box::new(e)))?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ArgsError::ParamsFileSyntax {
            path: path.to_owned(),
            source: None,
        }),
    }
}

impl NodeArgs {
    /// The node's parameters: `EVOSPIKE_PARAMS`, then `--params-file`, then `--param`.
    pub fn params(&self) -> Result<Map<String, Value>, ArgsError> {
        let mut params = match env_json(env::PARAMS)? {
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ArgsError::EnvShape {
                    variable: env::PARAMS,
                    expected: "a JSON object",
                    got: other.to_string(),
                })
            }
            None => Map::new(),
        };
        if let Some(path) = &self.params_file {
            params.extend(params_file(path)?);
        }
        for param in &self.params {
            let (key, value) = contract::split_key_value(param).ok_or_else(|| ArgsError::Form {
                flag: "--param",
                value: param.clone(),
                form: "KEY=VALUE",
            })?;
            params.insert(key.to_string(), parse_value(value.trim()));
        }
        Ok(params)
    }

    /// Topic remaps: `EVOSPIKE_REMAP`, then `--remap`.
    pub fn remaps(&self) -> Result<BTreeMap<String, String>, ArgsError> {
        let mut remaps = BTreeMap::new();
        if let Some(value) = env_json(env::REMAP)? {
            let map: BTreeMap<String, String> =
                serde_json::from_value(value.clone()).map_err(|_| ArgsError::EnvShape {
                    variable: env::REMAP,
                    expected: "a JSON object of topic names",
                    got: value.to_string(),
                })?;
            remaps.extend(map);
        }
        for remap in &self.remaps {
            let (from, to) = contract::split_remap(remap).ok_or_else(|| ArgsError::Form {
                flag: "--remap",
                value: remap.clone(),
                form: "FROM:=TO",
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
    pub fn plugins(&self) -> Result<Vec<Value>, ArgsError> {
        match env_json(env::PLUGINS)? {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(ArgsError::EnvShape {
                variable: env::PLUGINS,
                expected: "a JSON array",
                got: other.to_string(),
            }),
            None => Ok(Vec::new()),
        }
    }
}
