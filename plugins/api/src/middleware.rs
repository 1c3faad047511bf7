//! HTTP middleware plugins: checks an HTTP front end (the API gateway) runs on
//! every request before it forwards it — authentication, rate limiting,
//! validation, …
//!
//! A middleware plugin is an ordinary [`Plugin`] (usually of type
//! [`PluginType::Functional`](crate::PluginType::Functional), with a
//! [`Priority`](crate::Priority): `SECURITY` (20) for access control,
//! `MIDDLEWARE` (30) for the rest) that also implements [`MiddlewarePlugin`] and
//! returns itself from [`Plugin::as_middleware`]. The host runs the active ones
//! in its start order — dependencies, then priority — and the first
//! [`Rejection`] answers the request, which then never reaches a service.
//!
//! [`MiddlewarePlugin::check`] takes `&self` and is called concurrently from
//! many requests: state such as token buckets sits behind the plugin's own lock.
//! A request is described by [`MiddlewareRequest`], which borrows everything from
//! the front end's own request (no copy per request); the body is there only for
//! plugins that ask for it with [`MiddlewarePlugin::needs_body`].
//!
//! ```
//! use evospike_plugin_api::*;
//! use evospike_plugin_api::middleware::*;
//!
//! #[derive(Debug)]
//! struct NoDelete(PluginMetadata);
//! impl Plugin for NoDelete {
//!     fn metadata(&self) -> &PluginMetadata { &self.0 }
//!     fn as_middleware(&self) -> Option<&dyn MiddlewarePlugin> { Some(self) }
//! }
//! impl MiddlewarePlugin for NoDelete {
//!     fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
//!         match request.method {
//!             "DELETE" => Err(Rejection::new(405, "nothing is deleted here")),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! let plugin = NoDelete(PluginMetadata::new("NoDelete", semver::Version::new(1, 0, 0), PluginType::Functional));
//! let headers: &[(&str, &str)] = &[];
//! let request = MiddlewareRequest { method: "DELETE", path: "/registry/models/m", query: None, headers: &headers, client: None, body: None };
//! let rejection = plugin.as_middleware().unwrap().check(&request).unwrap_err();
//! assert_eq!(rejection.status, 405);
//! ```

use std::net::IpAddr;

use crate::Plugin;

/// Header look-up over the front end's own header map (names are matched
/// case-insensitively; values that are not visible ASCII are absent).
pub trait RequestHeaders {
    /// The first value of header `name`, if there is one and it is text.
    fn header(&self, name: &str) -> Option<&str>;
}

/// A list of `(name, value)` pairs (for tests and simple front ends).
impl RequestHeaders for &[(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// One HTTP request as a middleware plugin sees it, borrowed from the front end.
#[derive(Clone, Copy)]
pub struct MiddlewareRequest<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as the client sent it (`/inference/infer`).
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a dyn RequestHeaders,
    /// The client's address, when the request came over a socket.
    pub client: Option<IpAddr>,
    /// The body, if a plugin of the chain asked for it ([`MiddlewarePlugin::needs_body`]).
    pub body: Option<&'a [u8]>,
}

impl std::fmt::Debug for MiddlewareRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiddlewareRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("client", &self.client)
            .field("body_len", &self.body.map(<[u8]>::len))
            .finish_non_exhaustive()
    }
}

impl<'a> MiddlewareRequest<'a> {
    /// Header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.header(name)
    }

    /// The value of query parameter `name` (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then_some(value)
        })
    }
}

/// A middleware plugin's "no": the HTTP answer the client gets instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status (401, 429, 400, …).
    pub status: u16,
    /// What is wrong, for the client.
    pub message: String,
    /// Seconds after which the client may retry (`Retry-After`).
    pub retry_after_s: Option<u64>,
}

impl Rejection {
    /// A rejection with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same rejection, telling the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }
}

/// An HTTP middleware plugin: one check on every request.
pub trait MiddlewarePlugin: Plugin {
    /// Whether [`check`](Self::check) needs the body of a request with this
    /// method and path (the front end then reads it before the chain runs).
    fn needs_body(&self, method: &str, path: &str) -> bool {
        let _ = (method, path);
        false
    }

    /// `Err` answers the request with the rejection; it goes no further.
    /// Called concurrently; must not block for long.
    fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection>;
}
