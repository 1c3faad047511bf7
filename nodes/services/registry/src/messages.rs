//! The registry's records as the protobuf messages of its API
//! (`schemas/proto/evospike/v1/svc/registry.proto`), which are also its HTTP JSON.

use evospike_schemas::proto::{RegistryFile, RegistryModel, RegistryVersion};

use crate::registry::{ModelView, VersionRecord, VersionState};

pub(crate) fn state_text(state: VersionState) -> &'static str {
    match state {
        VersionState::Pending => "pending",
        VersionState::Ready => "ready",
        VersionState::Failed => "failed",
    }
}

pub(crate) fn version_message(v: VersionRecord) -> RegistryVersion {
    RegistryVersion {
        state: state_text(v.state).to_owned(),
        files: v
            .files
            .into_iter()
            .map(|(name, f)| RegistryFile {
                name,
                sha256: f.sha256,
                size: f.size,
            })
            .collect(),
        model_id: v.model_id,
        version: v.version,
        name: v.name,
        model_type: v.model_type.unwrap_or_default(),
        framework: v.framework.unwrap_or_default(),
        error: v.error.unwrap_or_default(),
        created_at: v.created_at.unwrap_or_default(),
        description: v.description.unwrap_or_default(),
        metadata_json: v
            .metadata
            .map(|m| serde_json::Value::Object(m).to_string())
            .unwrap_or_default(),
        registered_at: v.registered_at,
    }
}

pub(crate) fn model_message(m: ModelView) -> RegistryModel {
    RegistryModel {
        model_id: m.model_id,
        name: m.name,
        latest: m.latest.unwrap_or_default(),
        versions: m.versions.into_iter().map(version_message).collect(),
        aliases: m.aliases.into_iter().collect(),
    }
}
