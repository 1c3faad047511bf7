//! The registry on the bus: queryables under `evospike/<ns>/svc/registry/<method>`
//! answering the protobuf messages of `schemas/proto/evospike/v1/svc/registry.proto`.
//!
//! | method | request | reply |
//! |---|---|---|
//! | `get_model` | `GetModelRequest` | `RegistryModel` |
//! | `list_models` | `ListModelsRequest` | `ListModelsReply` |
//! | `fetch_file` | `FetchFileRequest` | `FetchFileReply` (content + sha256) |
//! | `publish` | `PublishRequest` | `RegistryVersion` (register + files + finalize) |
//!
//! Errors are the bus's `ErrorReply`: `NOT_FOUND` for an unknown model, version,
//! alias or file, `INVALID_ARGUMENT` for a malformed request or a file too large
//! to send in one reply ([`MAX_BUS_FILE`]; use HTTP for those).

use std::sync::Arc;

use evospike_bus::{Bus, BusError, Declared};
use evospike_schemas::proto::{
    ErrorCode, ErrorReply, FetchFileReply, FetchFileRequest, GetModelRequest, ListModelsReply,
    ListModelsRequest, PublishRequest, RegistryModel, RegistryVersion,
};

use crate::messages::{model_message, state_text, version_message};
use crate::registry::{check_name, RegisterRequest, VersionState};
use crate::{Registry, RegistryError};

/// The largest file `fetch_file` sends in one reply.
pub const MAX_BUS_FILE: u64 = 256 << 20;

/// Declares the registry's queryables; they answer while the handles live.
///
/// # Errors
/// A queryable cannot be declared.
pub fn serve(
    bus: &Bus,
    responder: &str,
    registry: Arc<Registry>,
) -> Result<Vec<Declared>, BusError> {
    let keys = bus.keys();
    let r = registry.clone();
    let get_model = bus.serve::<GetModelRequest, RegistryModel, _>(
        &keys.service("registry", "get_model")?,
        responder,
        move |req| {
            r.model(&req.model_id)
                .map(model_message)
                .map_err(error_reply)
        },
    )?;
    let r = registry.clone();
    let list = bus.serve::<ListModelsRequest, ListModelsReply, _>(
        &keys.service("registry", "list_models")?,
        responder,
        move |_| {
            r.models()
                .map(|models| ListModelsReply {
                    models: models.into_iter().map(model_message).collect(),
                })
                .map_err(error_reply)
        },
    )?;
    let r = registry.clone();
    let fetch = bus.serve::<FetchFileRequest, FetchFileReply, _>(
        &keys.service("registry", "fetch_file")?,
        responder,
        move |req| fetch_file(&r, &req).map_err(error_reply),
    )?;
    let publish = bus.serve::<PublishRequest, RegistryVersion, _>(
        &keys.service("registry", "publish")?,
        responder,
        move |req| publish(&registry, req).map_err(error_reply),
    )?;
    Ok(vec![get_model, list, fetch, publish])
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn fetch_file(
    registry: &Registry,
    req: &FetchFileRequest,
) -> Result<FetchFileReply, RegistryError> {
    let record = registry.resolve(
        &req.model_id,
        non_empty(&req.version),
        non_empty(&req.alias),
    )?;
    let file = record.files.get(&req.filename).ok_or_else(|| {
        RegistryError::NotFound(format!(
            "model {} version {} has no file {}",
            record.model_id, record.version, req.filename
        ))
    })?;
    if file.size > MAX_BUS_FILE {
        return Err(RegistryError::Invalid(format!(
            "{} is {} bytes, more than one bus reply carries ({MAX_BUS_FILE}); download it over HTTP",
            req.filename, file.size
        )));
    }
    let path = registry.blobs().path(&file.sha256);
    let content = std::fs::read(&path).map_err(|source| crate::blobs::BlobError::Io {
        action: "read",
        path,
        source,
    })?;
    Ok(FetchFileReply {
        model_id: record.model_id,
        version: record.version,
        filename: req.filename.clone(),
        sha256: file.sha256.clone(),
        content,
    })
}

fn optional(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn publish(registry: &Registry, req: PublishRequest) -> Result<RegistryVersion, RegistryError> {
    for file in &req.files {
        check_name("filename", &file.name)?;
    }
    // Store (and check) every file first: a wrong one leaves no version behind.
    let mut stored = Vec::with_capacity(req.files.len());
    for file in req.files {
        let mut writer = registry.blobs().writer()?;
        writer.write(&file.content)?;
        let declared = optional(file.sha256);
        stored.push((
            file.name,
            writer.finish(registry.blobs(), declared.as_deref())?,
        ));
    }
    let (record, _) = registry.register(RegisterRequest {
        model_id: req.model_id,
        name: req.name,
        version: req.version,
        model_type: optional(req.model_type),
        framework: optional(req.framework),
        created_at: optional(req.created_at),
        description: optional(req.description),
        metadata_json: req.metadata_json,
    })?;
    if record.state != VersionState::Pending {
        return Err(RegistryError::Conflict(format!(
            "model {} version {} is already {}",
            record.model_id,
            record.version,
            state_text(record.state)
        )));
    }
    for (name, stored) in &stored {
        registry.attach(&record.model_id, &record.version, name, stored)?;
    }
    let done = registry.finalize(&record.model_id, &record.version)?;
    if done.state == VersionState::Failed {
        return Err(RegistryError::Invalid(format!(
            "model {} version {} failed its check and is now failed: {}",
            done.model_id,
            done.version,
            done.error.as_deref().unwrap_or("unknown problem")
        )));
    }
    Ok(version_message(done))
}

fn error_reply(err: RegistryError) -> ErrorReply {
    let code = match &err {
        RegistryError::NotFound(_) => ErrorCode::NotFound,
        RegistryError::Invalid(_)
        | RegistryError::Conflict(_)
        | RegistryError::Blob(crate::blobs::BlobError::Mismatch { .. }) => {
            ErrorCode::InvalidArgument
        }
        _ => {
            tracing::error!(%err, "registry request failed");
            ErrorCode::Internal
        }
    };
    ErrorReply {
        code: code as i32,
        message: err.to_string(),
        ..Default::default()
    }
}
