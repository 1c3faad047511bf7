//! `RateLimit`: a token bucket per caller.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use evospike_plugin_api::{
    crate_version, MiddlewarePlugin, MiddlewareRequest, Plugin, PluginConfig, PluginError,
    PluginMetadata, PluginType, Priority, Rejection,
};
use serde::Deserialize;

use evospike_plugin_api::settings;

/// Rate limiting (priority 30, middleware): a token bucket per API key, or per
/// client address for callers without one; 429 with `Retry-After` when the
/// caller's bucket is empty.
///
/// Settings: `per_second` (required, > 0: the rate a bucket refills at) and
/// `burst` (default 20: the requests a caller may make at once).
#[derive(Debug)]
pub struct RateLimit {
    meta: PluginMetadata,
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Caller, Bucket>>,
}

/// Who a bucket belongs to. Keys are hashed by value: the map owns a copy only
/// when a caller is first seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Key(String),
    Address(IpAddr),
    /// Requests that arrived without a socket (over the bus).
    Unknown,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Deserialize)]
struct Settings {
    per_second: f64,
    #[serde(default = "default_burst")]
    burst: u32,
}

fn default_burst() -> u32 {
    20
}

/// Buckets kept at most; full ones are dropped first past it.
const MAX_BUCKETS: usize = 10_000;

impl RateLimit {
    /// The plugin, not yet configured.
    pub fn new() -> Self {
        let meta = PluginMetadata::new("RateLimit", crate_version!(), PluginType::Functional)
            .with_description("HTTP rate limiting: a token bucket per API key or client address; 429 with Retry-After")
            .with_author("evospike")
            .with_priority(Priority::MIDDLEWARE)
            .with_capability("http-middleware")
            .with_capability("rate-limiting");
        Self {
            meta,
            per_second: 0.0,
            burst: 1.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn caller(request: &MiddlewareRequest<'_>) -> Caller {
        match (crate::auth::presented_key(request), request.client) {
            (Some(key), _) => Caller::Key(key.to_owned()),
            (None, Some(ip)) => Caller::Address(ip),
            (None, None) => Caller::Unknown,
        }
    }

    /// Takes a token for `caller`, or says how many seconds until one is there.
    fn take(&self, caller: Caller, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&caller) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(caller).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl Plugin for RateLimit {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        let name = &self.meta.name;
        let s: Settings = settings::read(name, &["per_second", "burst"], config)?;
        if !s.per_second.is_finite() || s.per_second <= 0.0 {
            return Err(PluginError::invalid_config(
                name,
                "per_second",
                format!(
                    "must be a positive number of requests per second, not {}",
                    s.per_second
                ),
            ));
        }
        if s.burst == 0 {
            return Err(PluginError::invalid_config(
                name,
                "burst",
                "must be at least 1",
            ));
        }
        self.per_second = s.per_second;
        self.burst = f64::from(s.burst);
        self.buckets
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    fn as_middleware(&self) -> Option<&dyn MiddlewarePlugin> {
        Some(self)
    }
}

impl MiddlewarePlugin for RateLimit {
    fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
        self.take(Self::caller(request), Instant::now())
            .map_err(|seconds| {
                Rejection::new(
                    429,
                    format!(
                        "rate limit exceeded ({} requests/s, bursts of {}); retry in {seconds} s",
                        self.per_second, self.burst
                    ),
                )
                .retry_after(seconds)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        let mut limit = RateLimit::new();
        let config = json!({"per_second": per_second, "burst": burst});
        limit.initialize(config.as_object().unwrap()).unwrap();
        limit
    }

    fn key(k: &str) -> Caller {
        Caller::Key(k.into())
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let limit = limit(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limit.take(key("a"), t0).is_ok());
        }
        assert_eq!(limit.take(key("a"), t0), Err(1));
        // Another caller has its own bucket.
        assert!(limit.take(key("b"), t0).is_ok());
        // Half a second at 2/s is one token.
        assert!(limit
            .take(key("a"), t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limit
            .take(key("a"), t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn callers_are_keys_then_addresses() {
        let limit = limit(1.0, 1);
        let headers: &[(&str, &str)] = &[];
        let from = |ip: &str| MiddlewareRequest {
            method: "GET",
            path: "/a/b",
            query: None,
            headers: &headers,
            client: Some(ip.parse().unwrap()),
            body: None,
        };
        assert!(limit.check(&from("10.0.0.1")).is_ok());
        let rejection = limit.check(&from("10.0.0.1")).unwrap_err();
        assert_eq!((rejection.status, rejection.retry_after_s), (429, Some(1)));
        assert!(limit.check(&from("10.0.0.2")).is_ok());
    }

    #[test]
    fn bad_settings_are_refused_by_key() {
        let err = RateLimit::new()
            .initialize(&PluginConfig::new())
            .unwrap_err();
        assert!(err.to_string().contains("per_second"), "{err}");
        let config = json!({"per_second": 0});
        let err = RateLimit::new()
            .initialize(config.as_object().unwrap())
            .unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig { ref key, .. } if key == "per_second"));
        let config = json!({"per_second": 1, "rate": 3});
        let err = RateLimit::new()
            .initialize(config.as_object().unwrap())
            .unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig { ref key, .. } if key == "rate"));
    }
}
