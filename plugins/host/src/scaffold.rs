//! `evospike plugin new NAME --type TYPE`: write a new external plugin crate.
//!
//! The crate builds as a `cdylib`, depends only on `evospike-plugin-api`, exports
//! the plugin with `export_plugin!`, and comes with its manifest
//! (`<name>.plugin.toml`). Build it, copy the library and the manifest into a
//! plugin directory, and the host loads it at start (see docs/PLUGINS.md).

use std::path::{Path, PathBuf};

use evospike_plugin_api::PluginType;

/// Why a crate could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The plugin name cannot be used.
    #[error("invalid plugin name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The target directory exists already.
    #[error("{path} already exists; choose another name or directory")]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How the generated crate depends on `evospike-plugin-api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldOptions {
    /// The dependency's TOML value, e.g. `{ path = "/src/evospike/plugins/api" }` or
    /// `{ git = "…", tag = "v0.1.0" }`.
    pub api_dependency: String,
}

impl Default for ScaffoldOptions {
    /// A path dependency on the `plugins/api` crate of the source tree this host was
    /// built from.
    fn default() -> Self {
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("api");
        let api = api.canonicalize().unwrap_or(api);
        Self {
            api_dependency: format!("{{ path = {:?} }}", api.display().to_string()),
        }
    }
}

/// `MyNeuron` → `my_neuron`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '-' || c == '_' {
            out.push('_');
            prev_lower = false;
        } else if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason| ScaffoldError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let first = name.chars().next().ok_or_else(|| invalid("it is empty"))?;
    if !first.is_ascii_alphabetic() {
        return Err(invalid("it must start with an ASCII letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid("use only ASCII letters, digits, `_` and `-`"));
    }
    Ok(())
}

/// Write a new plugin crate `<dir>/<snake_name>` for plugin `name` of `plugin_type`,
/// depending on the `plugins/api` crate of this source tree. Returns the crate dir.
pub fn new_plugin(
    dir: &Path,
    name: &str,
    plugin_type: PluginType,
) -> Result<PathBuf, ScaffoldError> {
    new_plugin_with(dir, name, plugin_type, &ScaffoldOptions::default())
}

/// [`new_plugin`] with explicit options.
pub fn new_plugin_with(
    dir: &Path,
    name: &str,
    plugin_type: PluginType,
    options: &ScaffoldOptions,
) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let snake = snake_case(name);
    let crate_dir = dir.join(&snake);
    if crate_dir.exists() {
        return Err(ScaffoldError::Exists { path: crate_dir });
    }
    let write = |path: PathBuf, text: String| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path, source })
    };
    write(crate_dir.join("Cargo.toml"), cargo_toml(&snake, options))?;
    write(
        crate_dir.join("src").join("lib.rs"),
        lib_rs(name, &snake, plugin_type),
    )?;
    write(
        crate_dir.join(format!("{snake}.plugin.toml")),
        manifest(name, &snake, plugin_type),
    )?;
    Ok(crate_dir)
}

fn cargo_toml(snake: &str, options: &ScaffoldOptions) -> String {
    format!(
        r#"[package]
name = "{kebab}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# A cdylib is what the evospike host loads; rlib keeps `cargo test` working.
crate-type = ["cdylib", "rlib"]

[dependencies]
evospike-plugin-api = {api}

# Not part of any enclosing workspace.
[workspace]
"#,
        kebab = snake.replace('_', "-"),
        api = options.api_dependency,
    )
}

fn manifest(name: &str, snake: &str, plugin_type: PluginType) -> String {
    format!(
        r#"# Read by the host before it loads the library. Keep name, version and type in
# step with src/lib.rs (the host checks them against the library).
name = "{name}"
version = "0.1.0"
type = "{plugin_type}"
description = "{name}: an external {plugin_type} plugin"
author = ""
capabilities = []
# dependencies = [{{ name = "OtherPlugin", version = "^1" }}]
library = "{snake}"
"#
    )
}

fn lib_rs(name: &str, snake: &str, plugin_type: PluginType) -> String {
    let common = format!(
        r#"//! {name}: an external evospike {plugin_type} plugin.
//!
//! Build with `cargo build --release`, then copy `target/release/{library}`
//! and `{snake}.plugin.toml` into a plugin directory of the node.

use evospike_plugin_api::semver::Version;
use evospike_plugin_api::serde_json::Value;
use evospike_plugin_api::{{Plugin, PluginConfig, PluginError, PluginMetadata, PluginType}};

/// The plugin object (one per node).
#[derive(Debug)]
pub struct {name} {{
    meta: PluginMetadata,
    /// Example setting, read from `plugins.{name}.scale` in the node config.
    scale: f64,
}}

impl {name} {{
    /// A fresh plugin; `initialize` applies the config.
    pub fn new() -> Self {{
        let version = Version::new(0, 1, 0); // keep in step with the manifest
        let meta = PluginMetadata::new("{name}", version, PluginType::{variant});
        Self {{ meta, scale: 1.0 }}
    }}
}}

impl Default for {name} {{
    fn default() -> Self {{
        Self::new()
    }}
}}

impl Plugin for {name} {{
    fn metadata(&self) -> &PluginMetadata {{
        &self.meta
    }}

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {{
        for (key, value) in config {{
            match key.as_str() {{
                "scale" => {{
                    self.scale = value.as_f64().ok_or_else(|| {{
                        PluginError::invalid_config("{name}", key, "must be a number")
                    }})?
                }}
                _ => return Err(PluginError::invalid_config("{name}", key, "unknown setting (accepted: scale)")),
            }}
        }}
        Ok(())
    }}

    fn execute(&mut self, input: &Value) -> Result<Value, PluginError> {{
        let x = input
            .as_f64()
            .ok_or_else(|| PluginError::failed("{name}", "execute expects a number"))?;
        Ok(Value::from(x * self.scale))
    }}
{as_family}}}
"#,
        library = crate::loader::library_file_name(snake),
        variant = variant(plugin_type),
        as_family = if plugin_type == PluginType::Neuron {
            "\n    fn as_neuron(&self) -> Option<&dyn evospike_plugin_api::NeuronPlugin> {\n        Some(self)\n    }\n"
        } else {
            ""
        },
    );
    let family = if plugin_type == PluginType::Neuron {
        format!(
            r#"
impl evospike_plugin_api::NeuronPlugin for {name} {{
    fn create_layer(
        &self,
        spec: &evospike_plugin_api::LayerSpec,
    ) -> Result<Box<dyn evospike_plugin_api::NeuronLayer>, PluginError> {{
        if spec.num_neurons == 0 {{
            return Err(PluginError::invalid_parameter("{name}", "num_neurons", "must be at least 1"));
        }}
        let threshold = match spec.params.get("threshold") {{
            None => 1.0,
            Some(v) => v.as_f64().filter(|t| *t > 0.0).ok_or_else(|| {{
                PluginError::invalid_parameter("{name}", "threshold", "must be a number > 0")
            }})? as f32,
        }};
        Ok(Box::new(Layer {{ v: vec![0.0; spec.num_neurons], threshold, scale: self.scale as f32 }}))
    }}
}}

/// Integrate-and-fire neurons: replace with your model. `step` must not allocate.
#[derive(Debug)]
struct Layer {{
    v: Vec<f32>,
    threshold: f32,
    scale: f32,
}}

impl evospike_plugin_api::NeuronLayer for Layer {{
    fn len(&self) -> usize {{
        self.v.len()
    }}

    fn step(&mut self, input: &[f32], spikes: &mut evospike_plugin_api::SpikeWords) {{
        spikes.fill(0);
        for (i, (v, x)) in self.v.iter_mut().zip(input).enumerate() {{
            *v += self.scale * x;
            if *v >= self.threshold {{
                spikes[i / 64] |= 1 << (i % 64);
                *v = 0.0;
            }}
        }}
    }}

    fn reset(&mut self) {{
        self.v.fill(0.0);
    }}

    fn state(&self, name: &str) -> Option<&[f32]> {{
        (name == "v").then_some(self.v.as_slice())
    }}
}}
"#
        )
    } else {
        String::new()
    };
    format!(
        "{common}{family}\nevospike_plugin_api::export_plugin!({plugin_type}: {name} => {name}::new());\n"
    )
}

fn variant(plugin_type: PluginType) -> &'static str {
    match plugin_type {
        PluginType::Neuron => "Neuron",
        PluginType::Encoder => "Encoder",
        PluginType::Plasticity => "Plasticity",
        PluginType::Functional => "Functional",
        PluginType::Learning => "Learning",
        PluginType::Monitoring => "Monitoring",
        PluginType::Communication => "Communication",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_plugin_names() {
        assert_eq!(snake_case("MyNeuron"), "my_neuron");
        assert_eq!(snake_case("LIFNeuron2"), "lifneuron2");
        assert_eq!(snake_case("rate-coder"), "rate_coder");
    }

    #[test]
    fn writes_manifest_cargo_toml_and_lib() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = new_plugin(dir.path(), "MyFilter", PluginType::Functional).unwrap();
        assert_eq!(crate_dir, dir.path().join("my_filter"));
        let cargo = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains("name = \"my-filter\"") && cargo.contains("cdylib"),
            "{cargo}"
        );
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("export_plugin!(functional: MyFilter => MyFilter::new());"),
            "{lib}"
        );
        assert!(!lib.contains("NeuronPlugin for"));
        let manifest = crate::loader::manifest::Manifest::deserialize_for_test(
            &std::fs::read_to_string(crate_dir.join("my_filter.plugin.toml")).unwrap(),
        );
        assert_eq!(manifest.metadata.name, "MyFilter");
        assert_eq!(manifest.metadata.plugin_type, PluginType::Functional);
        assert_eq!(manifest.library, "my_filter");
    }

    #[test]
    fn refuses_bad_names_and_existing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_plugin(dir.path(), "9lives", PluginType::Neuron).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid plugin name `9lives`: it must start with an ASCII letter"
        );
        assert!(new_plugin(dir.path(), "a b", PluginType::Neuron).is_err());
        new_plugin(dir.path(), "Twice", PluginType::Neuron).unwrap();
        let err = new_plugin(dir.path(), "Twice", PluginType::Neuron).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists { .. }), "{err}");
    }
}
