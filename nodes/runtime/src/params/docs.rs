//! A kind's parameter table, generated from its params struct: the JSON schema
//! `schemars` derives from the struct (field order, doc comments, types, serde
//! defaults) flattened into one row per key, nested lists included
//! (`inputs[].topic`).

use serde_json::Value;

use super::Params;

/// One row of `evospike run KIND --list-params`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamDoc {
    /// Path of the key (`size`, `inputs[].p`).
    pub key: String,
    /// Its type, e.g. `integer`, `number or null`, `excitatory | inhibitory`.
    pub ty: String,
    /// Its default (a string without quotes, anything else as JSON), a default
    /// applied at run time such as `<name>/spikes`, `required`, or `none`.
    pub default: String,
    /// What it means (the field's doc comment).
    pub about: String,
}

/// The parameter table of `P`, in field order.
pub fn docs<P: Params>() -> Vec<ParamDoc> {
    let schema = schemars::schema_for!(P);
    let root = schema.as_value();
    let mut rows = Vec::new();
    object_rows(root, root, "", &mut rows);
    rows
}

/// The keys `P` takes at the top level.
pub(super) fn top_level_keys<P: Params>() -> Vec<String> {
    let schema = schemars::schema_for!(P);
    schema
        .as_value()
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

fn object_rows(root: &Value, object: &Value, prefix: &str, rows: &mut Vec<ParamDoc>) {
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let key = format!("{prefix}{name}");
        let resolved = resolve(root, property);
        // `#[schemars(extend("x-default" = …))]`: a default applied at run time
        // (`<name>/spikes`, or one a model may replace), shown as written.
        let computed = property.get("x-default").map(|v| match v {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        });
        let default = match property.get("default").or_else(|| resolved.get("default")) {
            _ if computed.is_some() => computed.clone().unwrap_or_default(),
            Some(Value::Null) => "none".to_owned(),
            // Strings as written in a launch file, without JSON quotes.
            Some(Value::String(text)) => text.clone(),
            Some(value) => value.to_string(),
            None if required.contains(&name.as_str()) => "required".to_owned(),
            None => "none".to_owned(),
        };
        let about = property
            .get("description")
            .or_else(|| resolved.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut ty = type_name(root, property);
        if computed.is_some() {
            // Left out, the value is computed; `null` is not a value to write.
            ty = ty.trim_end_matches(" or null").to_owned();
        }
        rows.push(ParamDoc {
            key: key.clone(),
            ty,
            default,
            about,
        });
        // A struct, or a list of structs, gets a row per field below its own.
        let resolved = not_null(root, property);
        if resolved.get("properties").is_some() {
            object_rows(root, resolved, &format!("{key}."), rows);
        } else if let Some(items) = resolved.get("items") {
            let items = resolve(root, items);
            if items.get("properties").is_some() {
                object_rows(root, items, &format!("{key}[]."), rows);
            }
        }
    }
}

/// Follows a `$ref` into `$defs`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root.get("$defs")?.get(name))
        .unwrap_or(schema)
}

/// The schema without its `null` alternative (an `Option`'s `anyOf`).
fn not_null<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(root, schema);
    match schema.get("anyOf").and_then(Value::as_array) {
        Some(options) => options
            .iter()
            .find(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map_or(schema, |o| resolve(root, o)),
        None => schema,
    }
}

fn type_name(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(options) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let names: Vec<String> = options.iter().map(|o| type_name(root, o)).collect();
        return names.join(" or ");
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        return names.join(" | ");
    }
    if let Some(constant) = schema.get("const").and_then(Value::as_str) {
        return constant.to_owned();
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec!["any"],
    };
    let names: Vec<String> = types
        .into_iter()
        .map(|t| match t {
            "array" => match schema.get("items") {
                Some(items) if resolve(root, items).get("properties").is_some() => {
                    "list of {…}".to_owned()
                }
                Some(items) => format!("list of {}", type_name(root, items)),
                None => "list".to_owned(),
            },
            "object" if schema.get("properties").is_some() => "{…}".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    names.join(" or ")
}
