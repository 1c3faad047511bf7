//! Compiles `proto/evospike/**/*.proto` with protox (pure Rust: no `protoc` needed)
//! and generates the Rust types with prost-build, with serde derived on every
//! message so that JSON views come from the same definitions.
//!
//! Two JSON mappings, chosen by where a file lives:
//!
//! - **Service APIs** (`proto/evospike/v1/svc/*.proto`): the services' HTTP JSON.
//!   Field names as written in the proto (snake_case); unknown fields refused;
//!   a plain scalar, string or enum field is *required*, while `optional`,
//!   repeated, map and message fields may be left out; `bytes` are base64; enums
//!   are their value names without the enum's prefix (`JOB_STATE_RUNNING` →
//!   `"RUNNING"`); a string field named `<x>_json` holds JSON text on the bus and
//!   is the JSON value `<x>` over HTTP. `oneof` is not allowed there (write
//!   `optional` fields and check that one is set).
//! - **Everything else** (node, rpc): the proto3 JSON mapping's camelCase names,
//!   every field optional — the form of `--json` output.

use std::path::{Path, PathBuf};

use prost_build::Config;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Where the service APIs live.
const SERVICE_DIR: &str = "evospike/v1/svc/";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let mut files = Vec::new();
    proto_files(&root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(&files, [&root])?;
    let mut config = Config::new();
    config
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .enable_type_names();
    for file in &descriptors.file {
        let package = format!(".{}", file.package());
        if file.name().starts_with(SERVICE_DIR) {
            service_json(&mut config, file, &package)?;
        } else {
            for message in &file.message_type {
                let path = format!("{package}.{}", message.name());
                config
                    .type_attribute(&path, "#[serde(rename_all = \"camelCase\")]")
                    .message_attribute(&path, "#[serde(default)]");
            }
            for e in &file.enum_type {
                let path = format!("{package}.{}", e.name());
                config.type_attribute(&path, "#[serde(rename_all = \"camelCase\")]");
            }
        }
    }
    config.compile_fds(descriptors)?;
    Ok(())
}

fn service_json(
    config: &mut Config,
    file: &FileDescriptorProto,
    package: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    for e in &file.enum_type {
        // Serialized through `crate::json::enumeration`, by variant name.
        config.type_attribute(
            format!("{package}.{}", e.name()),
            "#[serde(rename_all = \"SCREAMING_SNAKE_CASE\")]",
        );
    }
    for message in &file.message_type {
        service_message(config, file.name(), message, package)?;
    }
    Ok(())
}

fn service_message(
    config: &mut Config,
    file: &str,
    message: &DescriptorProto,
    scope: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = format!("{scope}.{}", message.name());
    if message.options.as_ref().is_some_and(|o| o.map_entry()) {
        return Ok(());
    }
    config.message_attribute(&path, "#[serde(deny_unknown_fields)]");
    for field in &message.field {
        let optional = field.proto3_optional();
        if field.oneof_index.is_some() && !optional {
            return Err(format!(
                "{file}: {path}.{}: service messages may not use `oneof` (their JSON is the HTTP API); use `optional` fields",
                field.name()
            )
            .into());
        }
        let repeated = field.label() == Label::Repeated;
        let attr = match (field.r#type(), optional, repeated) {
            (_, _, true) => "#[serde(default)]".to_owned(),
            (Type::Message, _, _) => {
                "#[serde(default, skip_serializing_if = \"Option::is_none\")]".to_owned()
            }
            (Type::Bytes, false, _) => "#[serde(with = \"crate::json::base64\")]".to_owned(),
            (Type::Bytes, true, _) => {
                "#[serde(default, with = \"crate::json::base64_opt\", skip_serializing_if = \"Option::is_none\")]".to_owned()
            }
            (Type::Enum, false, _) => {
                let rust = rust_path(field.type_name());
                format!(
                    "#[serde(serialize_with = \"crate::json::enumeration::serialize::<{rust}, _>\", deserialize_with = \"crate::json::enumeration::deserialize::<{rust}, _>\")]"
                )
            }
            (Type::Enum, true, _) => {
                return Err(format!(
                    "{file}: {path}.{}: optional enums are not supported in service messages",
                    field.name()
                )
                .into())
            }
            (Type::String, false, _) if field.name().ends_with("_json") => {
                let name = field.name().trim_end_matches("_json");
                format!(
                    "#[serde(rename = \"{name}\", default, with = \"crate::json::object\", skip_serializing_if = \"String::is_empty\")]"
                )
            }
            (_, true, _) => "#[serde(default, skip_serializing_if = \"Option::is_none\")]".to_owned(),
            _ => continue,
        };
        config.field_attribute(format!("{path}.{}", field.name()), attr);
    }
    for nested in &message.nested_type {
        service_message(config, file, nested, &path)?;
    }
    if !message.enum_type.is_empty() {
        return Err(format!("{file}: {path}: declare service enums at file level").into());
    }
    Ok(())
}

/// `.evospike.v1.JobState` → `crate::proto::JobState`.
fn rust_path(type_name: &str) -> String {
    let name = type_name.rsplit('.').next().unwrap_or(type_name);
    format!("crate::proto::{name}")
}
