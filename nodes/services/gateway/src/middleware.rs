//! The gateway's middleware: the HTTP middleware plugins of the plugin system,
//! run on every routed request in the plugin host's order — authentication
//! (`ApiKeyAuth`, priority 20, security), then rate limiting (`RateLimit`, 30)
//! and validation (`RequestValidation`, 30), then any other middleware plugin
//! — before anything reaches a service.
//!
//! The gateway owns a [`PluginManager`] with the built-in middleware plugins
//! (`evospike-middleware`), configured from its `plugins:` parameter; a plugin the
//! config does not mention keeps its default (validation on, the others off).
//! On each request it walks the manager's
//! [`middleware_chain`](PluginManager::middleware_chain); the first rejection
//! answers, and the request never leaves the gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use evospike_http::ApiError;
use evospike_plugin_api::{MiddlewareRequest, Rejection, RequestHeaders};
use evospike_plugin_host::{initialize_plugin_system, HostError, PluginManager};

/// The plugin host whose middleware chain the gateway runs.
#[derive(Debug)]
pub(crate) struct Chain {
    manager: PluginManager,
}

impl Chain {
    /// Registers the built-in middleware plugins, applies `plugins` (the gateway's `plugins:` parameter: `name → {enabled,
    /// settings…}`) over the defaults, and starts every enabled plugin. A
    /// section naming no registered plugin, a setting a plugin does not know or
    /// a plugin that fails to start is an error naming it.
    pub(crate) fn start(
        plugins: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Chain, HostError> {
        let no_dirs: [&str; 0] = [];
        let mut manager =
            initialize_plugin_system(evospike_middleware::builtin_plugins(), &no_dirs)?;
        manager.configure_and_start(plugins, |name| {
            evospike_middleware::ON_BY_DEFAULT.contains(&name)
        })?;
        Ok(Chain { manager })
    }

    /// The names of the middleware in force, in the order they run.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.manager
            .middleware_chain()
            .map(|(meta, _)| meta.name.as_str())
            .collect()
    }

    /// Runs the chain on one request; the first rejection is the answer.
    fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
        self.manager
            .middleware_chain()
            .try_for_each(|(_, plugin)| plugin.check(request))
    }

    fn needs_body(&self, method: &str, path: &str) -> bool {
        self.manager
            .middleware_chain()
            .any(|(_, plugin)| plugin.needs_body(method, path))
    }
}

/// The request's headers as the plugins see them.
struct Headers<'a>(&'a HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }
}

fn rejected(rejection: Rejection) -> Response {
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::FORBIDDEN);
    ApiError {
        retry_after: rejection.retry_after_s,
        ..ApiError::new(status, rejection.message)
    }
    .into_response()
}

/// Runs the chain on the request's parts (and body, if read).
fn check(chain: &Chain, parts: &Parts, body: Option<&[u8]>) -> Result<(), Rejection> {
    let headers = Headers(&parts.headers);
    chain.check(&MiddlewareRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &headers,
        client: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        body,
    })
}

/// The axum middleware running the chain.
pub(crate) async fn guard(
    State(chain): State<Arc<Chain>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let needs_body = chain.needs_body(parts.method.as_str(), parts.uri.path());
    let (body, bytes) = if needs_body {
        match axum::body::to_bytes(body, evospike_http::bridge::MAX_BUS_BODY).await {
            Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
            Err(e) => {
                return if evospike_http::is_length_limit(&e) {
                    ApiError::too_large("the request body is too large").into_response()
                } else {
                    ApiError::bad_request(format!("the request body was cut off: {e}"))
                        .into_response()
                };
            }
        }
    } else {
        (body, None)
    };
    if let Err(rejection) = check(&chain, &parts, bytes.as_deref()) {
        return rejected(rejection);
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_plugin_api::PluginError;
    use serde_json::json;

    fn plugins(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn by_default_only_validation_runs() {
        let chain = Chain::start(&plugins(json!({}))).unwrap();
        assert_eq!(chain.names(), ["RequestValidation"]);
    }

    #[test]
    fn security_runs_before_middleware_whatever_the_config_order() {
        let chain = Chain::start(&plugins(json!({
            "RateLimit": {"per_second": 5},
            "RequestValidation": {},
            "ApiKeyAuth": {"keys": ["k1"]},
        })))
        .unwrap();
        assert_eq!(
            chain.names(),
            ["ApiKeyAuth", "RateLimit", "RequestValidation"]
        );
        // Without a key the answer is authentication's (401), never the rate
        // limit's or validation's: security runs first.
        let none: &[(&str, &str)] = &[];
        let request = MiddlewareRequest {
            method: "POST",
            path: "/inference/infer",
            query: None,
            headers: &none,
            client: None,
            body: Some(b"not json"),
        };
        assert_eq!(chain.check(&request).unwrap_err().status, 401);
        let keyed: &[(&str, &str)] = &[("x-api-key", "k1")];
        let request = MiddlewareRequest {
            headers: &keyed,
            ..request
        };
        assert_eq!(chain.check(&request).unwrap_err().status, 400);
    }

    #[test]
    fn plugins_switch_off_and_on_by_config() {
        let chain = Chain::start(&plugins(json!({
            "RequestValidation": {"enabled": false},
            "RateLimit": {"enabled": true, "per_second": 1, "burst": 1},
        })))
        .unwrap();
        assert_eq!(chain.names(), ["RateLimit"]);
        let none: &[(&str, &str)] = &[];
        let request = MiddlewareRequest {
            method: "POST",
            path: "/inference/infer",
            query: None,
            headers: &none,
            client: Some("127.0.0.1".parse().unwrap()),
            body: Some(b"not json"),
        };
        // Validation is off: the bad body passes; the second call is over the rate.
        assert!(chain.check(&request).is_ok());
        let rejection = chain.check(&request).unwrap_err();
        assert_eq!((rejection.status, rejection.retry_after_s), (429, Some(1)));
        let chain = Chain::start(&plugins(
            json!({"ApiKeyAuth": {"keys": ["k"], "enabled": false}}),
        ))
        .unwrap();
        assert_eq!(chain.names(), ["RequestValidation"]);
    }

    #[test]
    fn bad_config_is_a_typed_error_naming_plugin_and_key() {
        let err = Chain::start(&plugins(json!({"ApiKeyAuht": {"keys": ["k"]}}))).unwrap_err();
        assert!(
            matches!(err, HostError::Config(evospike_plugin_host::ConfigError::UnknownPlugin { ref plugin, .. }) if plugin == "ApiKeyAuht"),
            "{err}"
        );
        let err = Chain::start(&plugins(
            json!({"RateLimit": {"per_second": 1, "brust": 3}}),
        ))
        .unwrap_err();
        match err {
            HostError::Plugin {
                ref name,
                source: PluginError::InvalidConfig { ref key, .. },
                ..
            } => assert_eq!((name.as_str(), key.as_str()), ("RateLimit", "brust")),
            other => panic!("{other}"),
        }
        let err = Chain::start(&plugins(json!({"ApiKeyAuth": {}}))).unwrap_err();
        assert!(err.to_string().contains("no API key configured"), "{err}");
        let err = Chain::start(&plugins(json!({"RateLimit": {"enabled": "yes"}}))).unwrap_err();
        assert!(
            err.to_string().contains("plugins.RateLimit.enabled"),
            "{err}"
        );
    }
}
