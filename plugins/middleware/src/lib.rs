//! The gateway's built-in HTTP middleware, as plugins of the plugin system.
//!
//! Each is an ordinary FUNCTIONAL plugin with a
//! [`MiddlewarePlugin`](evospike_plugin_api::MiddlewarePlugin) view; the
//! gateway registers [`builtin_plugins`] (and any external plugin found in its
//! `plugin_dirs`) with a plugin manager, applies its `plugins:` config, starts
//! them and runs the manager's
//! [`middleware_chain`](evospike_plugin_host::PluginManager::middleware_chain)
//! on every request — in priority order, so access control (security, 20) runs
//! before the rest (middleware, 30):
//!
//! | plugin | priority | settings | rejects with |
//! |---|---|---|---|
//! | [`ApiKeyAuth`] | 20 | `keys`, `keys_file` | 401 |
//! | [`RateLimit`] | 30 | `per_second`, `burst` | 429 + `Retry-After` |
//! | [`RequestValidation`] | 30 | — | 400 naming the field |
//!
//! ```
//! use evospike_plugin_api::{Plugin, PluginConfig, MiddlewareRequest};
//!
//! let mut auth = evospike_middleware::ApiKeyAuth::new();
//! let mut config = PluginConfig::new();
//! config.insert("keys".into(), serde_json::json!(["k1"]));
//! auth.initialize(&config).unwrap();
//! let headers: &[(&str, &str)] = &[("x-api-key", "k1")];
//! let request = MiddlewareRequest { method: "GET", path: "/registry/models", query: None, headers: &headers, client: None, body: None };
//! assert!(auth.as_middleware().unwrap().check(&request).is_ok());
//! ```
#![warn(missing_docs)]

mod auth;
mod rate;
mod validate;

pub use auth::ApiKeyAuth;
pub use rate::RateLimit;
pub use validate::RequestValidation;

use evospike_plugin_api::Plugin;

/// Every built-in middleware plugin, fresh and uninitialized.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(ApiKeyAuth::new()),
        Box::new(RateLimit::new()),
        Box::new(RequestValidation::new()),
    ]
}

/// The built-in middleware plugins a gateway runs when its config does not
/// mention them: validation only (authentication needs keys, rate limiting a rate).
pub const ON_BY_DEFAULT: &[&str] = &["RequestValidation"];
