//! A service's settings from the environment, with the documented defaults.

use std::time::Duration;

use crate::HttpError;

/// Where and how a service serves HTTP.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `SERVICE_HOST` | address to bind | `0.0.0.0` |
/// | `SERVICE_PORT` | port to bind (0: any free port) | the service's own |
/// | `SERVICE_WORKERS` | requests served at once before 503 (× 64) | 4 |
/// | `SERVICE_REQUEST_TIMEOUT_S` | time limit of ordinary requests | 30 |
/// | `SERVICE_BODY_LIMIT` | largest JSON request body, in bytes | 1 MiB |
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Worker count (`SERVICE_WORKERS`).
    pub workers: usize,
    /// Requests served at once; past it the service answers 503 with
    /// `Retry-After`. `workers × 64` unless set otherwise.
    pub max_in_flight: usize,
    /// Time limit of ordinary requests (408 past it).
    pub request_timeout: Duration,
    /// Largest ordinary (JSON) request body, in bytes.
    pub body_limit: usize,
}

impl ServiceConfig {
    /// The defaults for a service whose documented port is `port`.
    pub fn with_port(port: u16) -> ServiceConfig {
        ServiceConfig {
            host: "0.0.0.0".to_owned(),
            port,
            workers: 4,
            max_in_flight: 4 * 64,
            request_timeout: Duration::from_secs(30),
            body_limit: 1 << 20,
        }
    }

    /// The settings from the environment (table above), `default_port` when
    /// `SERVICE_PORT` is unset.
    ///
    /// # Errors
    /// [`HttpError::Env`] naming a variable that is set but malformed.
    pub fn from_env(default_port: u16) -> Result<ServiceConfig, HttpError> {
        Self::from_lookup(default_port, |name| std::env::var(name).ok())
    }

    /// As [`ServiceConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// [`HttpError::Env`] naming a variable that is set but malformed.
    pub fn from_lookup(
        default_port: u16,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServiceConfig, HttpError> {
        let mut config = ServiceConfig::with_port(default_port);
        if let Some(host) = lookup("SERVICE_HOST").filter(|h| !h.is_empty()) {
            config.host = host;
        }
        if let Some(port) = parse(&lookup, "SERVICE_PORT", "a port number (0-65535)")? {
            config.port = port;
        }
        if let Some(workers) = parse::<usize>(&lookup, "SERVICE_WORKERS", "a positive integer")? {
            if workers == 0 {
                return Err(env_error("SERVICE_WORKERS", "0", "a positive integer"));
            }
            config.workers = workers;
            config.max_in_flight = workers.saturating_mul(64);
        }
        if let Some(secs) = parse::<u64>(&lookup, "SERVICE_REQUEST_TIMEOUT_S", "whole seconds")? {
            config.request_timeout = Duration::from_secs(secs.max(1));
        }
        if let Some(bytes) = parse(&lookup, "SERVICE_BODY_LIMIT", "a byte count")? {
            config.body_limit = bytes;
        }
        Ok(config)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, HttpError> {
    match lookup(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| env_error(name, &value, expected)),
    }
}

fn env_error(var: &'static str, value: &str, expected: &'static str) -> HttpError {
    HttpError::Env {
        var,
        value: value.to_owned(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = ServiceConfig::from_lookup(8003, |_| None).unwrap();
        assert_eq!(config.addr(), "0.0.0.0:8003");
        assert_eq!(config.workers, 4);
    }

    #[test]
    fn variables_override_and_malformed_ones_are_named() {
        let config = ServiceConfig::from_lookup(8003, |name| match name {
            "SERVICE_HOST" => Some("127.0.0.1".into()),
            "SERVICE_PORT" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.addr(), "127.0.0.1:0");

        let err = ServiceConfig::from_lookup(8003, |name| {
            (name == "SERVICE_PORT").then(|| "eighty".to_owned())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "SERVICE_PORT=`eighty` is not a port number (0-65535)"
        );
    }
}
