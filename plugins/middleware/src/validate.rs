//! `RequestValidation`: each known endpoint's JSON body is read as its message.

use evospike_plugin_api::{
    crate_version, MiddlewarePlugin, MiddlewareRequest, Plugin, PluginMetadata, PluginType,
    Priority, Rejection,
};
use evospike_schemas::proto::{
    BatchInferRequest, InferRequest, RegisterModelRequest, RegisterServiceRequest, TrainRequest,
};
use serde::de::DeserializeOwned;

/// Request validation (priority 30, middleware): the JSON body of each known
/// endpoint (as the gateway serves it: `/inference/infer`, `/api/generate`, …)
/// is read as the service's protobuf message before it is forwarded; a body
/// that does not fit gets 400 naming the field. No settings. The body itself is
/// forwarded unchanged.
#[derive(Debug)]
pub struct RequestValidation {
    meta: PluginMetadata,
}

type Check = fn(&[u8]) -> Result<(), Rejection>;

impl RequestValidation {
    /// The plugin.
    pub fn new() -> Self {
        let meta = PluginMetadata::new("RequestValidation", crate_version!(), PluginType::Functional)
            .with_description("HTTP request validation: each endpoint's JSON body against its message; 400 naming the field")
            .with_author("evospike")
            .with_priority(Priority::MIDDLEWARE)
            .with_capability("http-middleware")
            .with_capability("validation");
        Self { meta }
    }

    fn schema(method: &str, path: &str) -> Option<Check> {
        if method != "POST" {
            return None;
        }
        Some(match path {
            "/inference/infer" | "/api/generate" => fits::<InferRequest>,
            "/inference/batch_infer" => fits::<BatchInferRequest>,
            "/training/train" => fits::<TrainRequest>,
            "/registry/models/register" => fits::<RegisterModelRequest>,
            "/services/register" => fits::<RegisterServiceRequest>,
            _ => return None,
        })
    }
}

impl Default for RequestValidation {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `body` is one JSON `T`; the error names the field at fault.
fn fits<T: DeserializeOwned>(body: &[u8]) -> Result<(), Rejection> {
    let bad = |m: String| Rejection::new(400, m);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut reader);
    match parsed {
        Ok(_) => reader
            .end()
            .map_err(|e| bad(format!("invalid JSON body: {e}"))),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            Err(bad(if path.is_empty() || path == "." {
                format!("invalid JSON body: {inner}")
            } else {
                format!("invalid JSON body: `{path}`: {inner}")
            }))
        }
    }
}

impl Plugin for RequestValidation {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn as_middleware(&self) -> Option<&dyn MiddlewarePlugin> {
        Some(self)
    }
}

impl MiddlewarePlugin for RequestValidation {
    fn needs_body(&self, method: &str, path: &str) -> bool {
        Self::schema(method, path).is_some()
    }

    fn check(&self, request: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
        match (Self::schema(request.method, request.path), request.body) {
            (Some(check), Some(body)) => check(body),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(
        path: &'a str,
        body: &'a [u8],
        headers: &'a &'a [(&'a str, &'a str)],
    ) -> MiddlewareRequest<'a> {
        MiddlewareRequest {
            method: "POST",
            path,
            query: None,
            headers,
            client: None,
            body: Some(body),
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        let v = RequestValidation::new();
        let headers: &[(&str, &str)] = &[];
        assert!(v.needs_body("POST", "/training/train"));
        assert!(!v.needs_body("GET", "/training/jobs"));
        let bad =
            br#"{"model_type": "classifier", "dataset_path": "x", "config": {"epochs": "ten"}}"#;
        let err = v
            .check(&post("/training/train", bad, &headers))
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("config.epochs"), "{}", err.message);
        let good = br#"{"model_id": "m", "inputs": {"pixels": [0.5, 1]}}"#;
        assert!(v.check(&post("/inference/infer", good, &headers)).is_ok());
        let trailing = br#"{"model_id": "m"} x"#;
        assert!(v
            .check(&post("/inference/infer", trailing, &headers))
            .is_err());
        let unknown = br#"{"model_id": "m", "colour": 1}"#;
        let err = v
            .check(&post("/inference/infer", unknown, &headers))
            .unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
    }
}
