use std::time::Duration;

use serde::{Deserialize, Serialize};

use evospike_schemas::contract::{self, env};

use crate::security::{read_acl, AuthConfig, SecurityError, TlsConfig};
use crate::BusError;

/// Which transport carries the bus: the COMMUNICATION choice of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Eclipse Zenoh: processes and hosts (default).
    #[default]
    Zenoh,
    /// In-process: every [`Bus`](crate::Bus) opened with the same `local_domain` in
    /// one process sees the others. For single-process runs and tests.
    Local,
}

/// Role of a Zenoh session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Talks to peers and routers directly (default).
    #[default]
    Peer,
    /// Talks only through one router.
    Client,
    /// Routes for others: the bus broker of a cluster.
    Router,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Peer => "peer",
            Mode::Client => "client",
            Mode::Router => "router",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Mode, BusError> {
        match s {
            "peer" => Ok(Mode::Peer),
            "client" => Ok(Mode::Client),
            "router" => Ok(Mode::Router),
            other => Err(BusError::Config(format!(
                "unknown mode {other:?} (expected peer, client or router)"
            ))),
        }
    }
}

/// How to open a [`Bus`](crate::Bus).
///
/// The defaults are safe on shared networks: multicast scouting is off, so a
/// session only meets the endpoints it is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Transport implementation.
    pub transport: TransportKind,
    /// Zenoh session role.
    pub mode: Mode,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// Endpoints to connect to; opening fails if none can be reached within
    /// `connect_timeout`.
    pub connect: Vec<String>,
    /// Namespace of every key (`evospike/<namespace>/…`).
    pub namespace: String,
    /// Zenoh multicast scouting. Off unless explicitly asked for.
    pub multicast_scouting: bool,
    /// Zero-copy shared memory between processes of one host.
    pub shared_memory: bool,
    /// Cap of this session's shared-memory pools for spike tensors. Nothing is
    /// mapped until the first tensor is sent; then a pool holds `4 × (queue_capacity + 2)`
    /// tensors of the largest size sent so far (at least 64 KiB, a power of two),
    /// and a larger tensor makes a larger pool, up to this cap. A tensor larger than
    /// the cap goes over the network path (copied).
    pub shm_pool_bytes: usize,
    /// How long opening waits for the connect endpoints.
    #[serde(with = "duration_ms")]
    pub connect_timeout: Duration,
    /// Capacity of each subscription's queue; a full queue pushes back on the
    /// sender instead of dropping data.
    pub queue_capacity: usize,
    /// Domain of the local transport (buses in one process with the same domain meet).
    pub local_domain: String,
    /// TLS (and mutual TLS) on `tls/` endpoints; when set, every endpoint must be `tls/`.
    pub tls: Option<TlsConfig>,
    /// User/password authentication.
    pub auth: AuthConfig,
    /// An access-control file (JSON: Zenoh's `access_control` section) that this
    /// session — a router — enforces on the sessions connected to it.
    pub acl: Option<std::path::PathBuf>,
    /// A fixed Zenoh id (hex, at most 32 digits) instead of a random one: routers
    /// of a secured cluster are known to each other's access-control lists by it.
    pub zid: Option<String>,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            transport: TransportKind::Zenoh,
            mode: Mode::Peer,
            listen: Vec::new(),
            connect: Vec::new(),
            namespace: contract::DEFAULT_NAMESPACE.to_string(),
            multicast_scouting: false,
            shared_memory: true,
            shm_pool_bytes: 256 << 20,
            connect_timeout: Duration::from_secs(5),
            queue_capacity: 1024,
            local_domain: "default".to_string(),
            tls: None,
            auth: AuthConfig::default(),
            acl: None,
            zid: None,
        }
    }
}

impl BusConfig {
    /// An in-process bus in `domain` (for tests and single-process runs).
    pub fn local(domain: &str) -> BusConfig {
        BusConfig {
            transport: TransportKind::Local,
            local_domain: domain.to_string(),
            ..BusConfig::default()
        }
    }

    /// A Zenoh peer that listens on `listen` and connects to `connect`.
    pub fn peer(listen: &[String], connect: &[String]) -> BusConfig {
        BusConfig {
            listen: listen.to_vec(),
            connect: connect.to_vec(),
            ..BusConfig::default()
        }
    }

    /// The defaults, overridden by the `EVOSPIKE_BUS_*` and `EVOSPIKE_NAMESPACE`
    /// environment variables that are set.
    pub fn from_env() -> Result<BusConfig, BusError> {
        BusConfig::default().with_env(|name| std::env::var(name).ok())
    }

    /// Applies overrides from a variable lookup (testable form of [`from_env`](Self::from_env)).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Result<BusConfig, BusError> {
        if let Some(t) = var(env::BUS_TRANSPORT) {
            self.transport = match t.as_str() {
                "zenoh" => TransportKind::Zenoh,
                "local" => TransportKind::Local,
                other => {
                    return Err(BusError::Config(format!(
                        "{}={other:?}: expected zenoh or local",
                        env::BUS_TRANSPORT
                    )))
                }
            };
        }
        if let Some(mode) = var(env::BUS_MODE) {
            self.mode = mode.parse()?;
        }
        if let Some(listen) = var(env::BUS_LISTEN) {
            self.listen = contract::split_list(&listen);
        }
        if let Some(connect) = var(env::BUS_CONNECT) {
            self.connect = contract::split_list(&connect);
        }
        if let Some(shm) = var(env::BUS_SHM) {
            self.shared_memory = !contract::shm_disabled(&shm);
        }
        if let Some(ns) = var(env::NAMESPACE) {
            self.namespace = ns;
        }
        self.security_from_env(&var)?;
        Ok(self)
    }

    /// The `EVOSPIKE_BUS_TLS_*`, `EVOSPIKE_BUS_USER`/`PASSWORD`/`USERS_FILE` and
    /// `EVOSPIKE_BUS_ACL` variables.
    fn security_from_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), BusError> {
        let path = |name| {
            var(name)
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from)
        };
        let (ca, cert, key) = (
            path(env::BUS_TLS_CA),
            path(env::BUS_TLS_CERT),
            path(env::BUS_TLS_KEY),
        );
        let mtls = match var(env::BUS_TLS_MTLS) {
            None => None,
            Some(v) => Some(contract::parse_flag(&v).ok_or_else(|| {
                BusError::Config(format!(
                    "{}={v:?}: expected 1/true/on/yes or 0/false/off/no",
                    env::BUS_TLS_MTLS
                ))
            })?),
        };
        if ca.is_some() || cert.is_some() || key.is_some() || mtls.is_some() {
            let mut tls = self.tls.take().unwrap_or_default();
            if let Some(ca) = ca {
                tls.ca = ca;
            }
            tls.cert = cert.or(tls.cert);
            tls.key = key.or(tls.key);
            tls.mtls = mtls.unwrap_or(tls.mtls);
            self.tls = Some(tls);
        }
        if let Some(user) = var(env::BUS_USER) {
            self.auth.user = Some(user);
        }
        if let Some(password) = var(env::BUS_PASSWORD) {
            self.auth.password = Some(password);
        }
        if let Some(file) = path(env::BUS_SECRET_FILE) {
            self.auth.secret_file = Some(file);
        }
        if let Some(file) = path(env::BUS_USERS_FILE) {
            self.auth.users_file = Some(file);
        }
        if let Some(file) = path(env::BUS_ACL) {
            self.acl = Some(file);
        }
        if let Some(zid) = var(env::BUS_ZID).filter(|v| !v.is_empty()) {
            self.zid = Some(zid);
        }
        Ok(())
    }

    /// Every endpoint uses TLS when TLS is configured: a plain `tcp/` listener
    /// beside a `tls/` one would be a way around it.
    fn check_endpoints(&self) -> Result<(), BusError> {
        let Some(_) = &self.tls else {
            return Ok(());
        };
        for (what, endpoints) in [("listen", &self.listen), ("connect", &self.connect)] {
            if let Some(plain) = endpoints.iter().find(|e| !e.starts_with("tls/")) {
                return Err(BusError::Security(SecurityError {
                    setting: "tls",
                    path: None,
                    problem: format!(
                        "TLS is configured but the {what} endpoint {plain} is not tls/…: \
                         write it as tls/HOST:PORT"
                    ),
                }));
            }
        }
        Ok(())
    }

    /// The Zenoh configuration this bus configuration stands for.
    pub fn to_zenoh(&self) -> Result<zenoh::Config, BusError> {
        let mut config = zenoh::Config::default();
        let mut set = |key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|err| BusError::Config(format!("zenoh setting {key}={value}: {err}")))
        };
        set("mode", json(self.mode.as_str()))?;
        set("listen/endpoints", json(&self.listen))?;
        set("connect/endpoints", json(&self.connect))?;
        set("scouting/multicast/enabled", json(&self.multicast_scouting))?;
        set("transport/shared_memory/enabled", json(&self.shared_memory))?;
        // A router keeps retrying the routers it links to (Zenoh's router
        // defaults): the machines of a cluster start in any order.
        if !self.connect.is_empty() && self.mode != Mode::Router {
            // Fail instead of retrying forever in the background: a wrong endpoint is
            // reported at open, naming the endpoint.
            set(
                "connect/timeout_ms",
                json(&(self.connect_timeout.as_millis() as u64)),
            )?;
            set("connect/exit_on_failure", json(&true))?;
        }
        if let Some(zid) = &self.zid {
            set("id", json(zid))?;
        }
        self.check_endpoints()?;
        if let Some(tls) = &self.tls {
            for (key, value) in tls.zenoh_settings()? {
                set(key, value)?;
            }
        }
        for (key, value) in self.auth.zenoh_settings()? {
            set(key, value)?;
        }
        if let Some(acl) = &self.acl {
            let text = read_acl(acl)?;
            config
                .insert_json5("access_control", &text)
                .map_err(|err| {
                    BusError::Security(SecurityError {
                        setting: "acl",
                        path: Some(acl.clone()),
                        problem: format!("not a valid Zenoh access_control section: {err}"),
                    })
                })?;
        }
        Ok(config)
    }
}

/// JSON text of a plain value (strings, numbers, booleans, string lists never fail).
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_multicast_off_and_shm_on() {
        let config = BusConfig::default();
        assert!(!config.multicast_scouting);
        assert!(config.shared_memory);
        let zenoh = config.to_zenoh().unwrap();
        assert_eq!(
            zenoh.get_json("scouting/multicast/enabled").unwrap(),
            "false"
        );
        assert_eq!(
            zenoh.get_json("transport/shared_memory/enabled").unwrap(),
            "true"
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let vars = [
            (env::BUS_MODE, "client"),
            (env::BUS_CONNECT, "tcp/127.0.0.1:7447, tcp/127.0.0.1:7448"),
            (env::BUS_SHM, "0"),
            (env::NAMESPACE, "lab"),
        ];
        let config = BusConfig::default()
            .with_env(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
        assert_eq!(config.mode, Mode::Client);
        assert_eq!(
            config.connect,
            vec!["tcp/127.0.0.1:7447", "tcp/127.0.0.1:7448"]
        );
        assert!(!config.shared_memory);
        assert_eq!(config.namespace, "lab");
    }

    #[test]
    fn bad_mode_is_a_config_error() {
        let err = BusConfig::default()
            .with_env(|n| (n == env::BUS_MODE).then(|| "boss".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("boss"), "{err}");
    }
}
