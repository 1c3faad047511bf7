//! `ApiKeyAuth`: a request must carry one of the configured API keys.

use evospike_plugin_api::{
    crate_version, MiddlewarePlugin, MiddlewareRequest, Plugin, PluginConfig, PluginError,
    PluginMetadata, PluginType, Priority, Rejection,
};
use serde::Deserialize;

use evospike_plugin_api::settings;

/// Authentication (priority 20, security): a request must carry one of the
/// configured keys as `Authorization: Bearer <key>` or `x-api-key: <key>` (or,
/// for the dashboard's event stream, whose browser `EventSource` sends no
/// headers, a `key` query parameter on `/events/spikes`); 401 otherwise.
///
/// Settings: `keys` (a list) and/or `keys_file` (one key per line, `#` comments
/// and blank lines skipped); at least one key in all.
#[derive(Debug)]
pub struct ApiKeyAuth {
    meta: PluginMetadata,
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    keys_file: Option<String>,
}

impl ApiKeyAuth {
    /// The plugin, not yet configured.
    pub fn new() -> Self {
        let meta = PluginMetadata::new("ApiKeyAuth", crate_version!(), PluginType::Functional)
            .with_description("HTTP authentication: API keys or bearer tokens; 401 without")
            .with_author("evospike")
            .with_priority(Priority::SECURITY)
            .with_capability("http-middleware")
            .with_capability("authentication");
        Self {
            meta,
            keys: Vec::new(),
        }
    }

    fn presented_key<'r>(request: &MiddlewareRequest<'r>) -> Option<&'r str> {
        if let Some(key) = request.headers.header("x-api-key") {
            return Some(key);
        }
        if let Some(bearer) = request
            .headers
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return Some(bearer.trim());
        }
        if request.path == "/events/spikes" {
            return request.query_param("key");
        }
        None
    }
}

impl Default for ApiKeyAuth {
    fn default() -> Self {
        Self::new()
    }
}

/// The API key a request presents (what [`ApiKeyAuth`] checks), for other
/// plugins that key their state by caller.
pub(crate) fn presented_key<'r>(request: &MiddlewareRequest<'r>) -> Option<&'r str> {
    ApiKeyAuth::presented_key(request)
}

/// Compares without an early exit, so timing does not tell how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Plugin for ApiKeyAuth {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        let name = &self.meta.name;
        let s: Settings = settings::read(name, &["keys", "keys_file"], config)?;
        let mut keys = Vec::new();
        for (i, key) in s.keys.iter().enumerate() {
            if key.trim().is_empty() {
                return Err(PluginError::invalid_config(
                    name,
                    format!("keys[{i}]"),
                    "must not be empty",
                ));
            }
            keys.push(key.trim().to_owned());
        }
        if let Some(file) = &s.keys_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                PluginError::invalid_config(name, "keys_file", format!("cannot read {file}: {e}"))
            })?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if keys.is_empty() {
            return Err(PluginError::invalid_config(
                name,
                "keys",
                "no API key configured: give `keys` or a non-empty `keys_file`, or set `enabled: false`",
            ));
        }
        self.keys = keys;
        Ok(())
    }

    fn as_middleware(&self) -> Option<&dyn MiddlewarePlugin> {
        Some(self)
    }
}

impl MiddlewarePlugin for ApiKeyAuth {
    fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
        match Self::presented_key(request) {
            None => Err(Rejection::new(
                401,
                "authentication required: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )),
            Some(key) if self.keys.iter().any(|k| same(k, key)) => Ok(()),
            Some(_) => Err(Rejection::new(401, "the API key is not valid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> PluginConfig {
        value.as_object().unwrap().clone()
    }

    fn request<'a>(headers: &'a &'a [(&'a str, &'a str)]) -> MiddlewareRequest<'a> {
        MiddlewareRequest {
            method: "GET",
            path: "/x/y",
            query: None,
            headers,
            client: None,
            body: None,
        }
    }

    #[test]
    fn accepts_bearer_or_header_and_nothing_else() {
        let mut auth = ApiKeyAuth::new();
        auth.initialize(&config(json!({"keys": ["s3cret"]})))
            .unwrap();
        for ok in [
            &[("authorization", "Bearer s3cret")][..],
            &[("X-Api-Key", "s3cret")][..],
        ] {
            assert!(auth.check(&request(&ok)).is_ok());
        }
        for bad in [
            &[][..],
            &[("x-api-key", "s3cre")][..],
            &[("authorization", "Basic s3cret")][..],
        ] {
            assert_eq!(auth.check(&request(&bad)).unwrap_err().status, 401);
        }
    }

    #[test]
    fn reads_keys_from_a_file_and_refuses_bad_settings_by_key() {
        let dir = std::env::temp_dir().join(format!("evospike-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys.txt");
        std::fs::write(&file, "# keys\n\nfrom-file\n").unwrap();
        let mut auth = ApiKeyAuth::new();
        auth.initialize(&config(json!({"keys_file": file.display().to_string()})))
            .unwrap();
        assert_eq!(auth.keys, ["from-file"]);
        std::fs::remove_dir_all(&dir).unwrap();

        let err = ApiKeyAuth::new()
            .initialize(&config(json!({"key": ["k"]})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `ApiKeyAuth`: invalid config setting `key`: unknown setting (expected one of: keys, keys_file)"
        );
        let err = ApiKeyAuth::new()
            .initialize(&config(json!({"keys": "k"})))
            .unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidConfig { ref key, .. } if key == "keys"),
            "{err}"
        );
        let err = ApiKeyAuth::new()
            .initialize(&PluginConfig::new())
            .unwrap_err();
        assert!(err.to_string().contains("no API key configured"), "{err}");
        let err = ApiKeyAuth::new()
            .initialize(&config(json!({"keys": [" "]})))
            .unwrap_err();
        assert!(err.to_string().contains("`keys[0]`"), "{err}");
    }
}
