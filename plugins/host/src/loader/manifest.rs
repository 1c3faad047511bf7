//! The manifest beside an external plugin's library: read and checked before any
//! of the plugin's code runs.
//!
//! ```toml
//! # example_neuron.plugin.toml
//! name = "ExampleNeuron"
//! version = "0.1.0"
//! type = "neuron"
//! description = "…"
//! author = "…"
//! priority = 40                      # optional, default per type
//! capabilities = ["spiking"]
//! dependencies = [{ name = "Other", version = "^1" }]
//! library = "evospike_example_neuron" # crate name (libNAME.so / NAME.dll / libNAME.dylib) or a file name
//! ```

use std::path::{Path, PathBuf};

use evospike_plugin_api::PluginMetadata;
use serde::Deserialize;

use crate::error::LoadError;

/// File-name suffix of manifests in a plugin directory.
pub const MANIFEST_SUFFIX: &str = ".plugin.toml";

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    /// Metadata and dependencies.
    #[serde(flatten)]
    pub metadata: PluginMetadata,
    /// The library, as written in the manifest.
    pub library: String,
}

impl Manifest {
    /// Parse manifest text (test helper for generated manifests).
    #[cfg(test)]
    pub(crate) fn deserialize_for_test(text: &str) -> Self {
        toml::from_str(text).expect("generated manifest must parse")
    }
}

/// A manifest found in a plugin directory, with its library path resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// Its content.
    pub manifest: Manifest,
    /// The library file it points to (exists).
    pub library_path: PathBuf,
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The file name of a library given as a crate name (`foo` → `libfoo.so` on Linux),
/// or the name unchanged if it already has an extension.
pub fn library_file_name(library: &str) -> String {
    if Path::new(library).extension().is_some() {
        library.to_owned()
    } else {
        format!(
            "{}{library}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    }
}

/// Read and check one manifest.
pub fn read_manifest(path: &Path) -> Result<Discovered, LoadError> {
    let bad = |reason: String| LoadError::Manifest {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let name = &manifest.metadata.name;
    if !is_valid_name(name) {
        return Err(bad(format!(
            "name `{name}` must be non-empty and use only ASCII letters, digits, `_` and `-` (it is a config key)"
        )));
    }
    if manifest.library.trim().is_empty() {
        return Err(bad("`library` is empty".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let library_path = dir.join(library_file_name(&manifest.library));
    if !library_path.is_file() {
        return Err(bad(format!(
            "library `{}` not found at {} (build the plugin crate and copy its cdylib here)",
            manifest.library,
            library_path.display()
        )));
    }
    Ok(Discovered {
        manifest_path: path.to_owned(),
        manifest,
        library_path,
    })
}

/// Every `*.plugin.toml` in `dir`, sorted by file name; each one parsed or the reason
/// it could not be. An unreadable directory is an error.
pub fn discover(dir: &Path) -> Result<Vec<Result<Discovered, LoadError>>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_manifest = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX));
        if is_manifest && path.is_file() {
            manifests.push(path);
        }
    }
    manifests.sort();
    Ok(manifests.iter().map(|p| read_manifest(p)).collect())
}

#[cfg(test)]
mod tests {
    use evospike_plugin_api::PluginType;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_a_manifest_and_resolves_the_library() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(library_file_name("foo")),
            b"not really a library",
        )
        .unwrap();
        let path = write(
            dir.path(),
            "foo.plugin.toml",
            r#"name = "Foo"
               version = "1.0.0"
               type = "monitoring"
               library = "foo"
               dependencies = [{ name = "Bar", version = "^2" }]"#,
        );
        let d = read_manifest(&path).unwrap();
        assert_eq!(d.manifest.metadata.plugin_type, PluginType::Monitoring);
        assert_eq!(d.manifest.metadata.dependencies[0].name, "Bar");
        assert_eq!(d.library_path, dir.path().join(library_file_name("foo")));
        let found = discover(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].as_ref().unwrap(), &d);
    }

    #[test]
    fn bad_manifests_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.plugin.toml",
            "name = \"A\"\nversion = \"1\"\ntype = \"neuron\"\nlibrary = \"a\"",
        );
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(
            err.contains("a.plugin.toml") && err.contains("version"),
            "{err}"
        );

        let path = write(
            dir.path(),
            "b.plugin.toml",
            "name = \"B c\"\nversion = \"1.0.0\"\ntype = \"neuron\"\nlibrary = \"b\"",
        );
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("name `B c`"), "{err}");

        let path = write(
            dir.path(),
            "c.plugin.toml",
            "name = \"C\"\nversion = \"1.0.0\"\ntype = \"neuron\"\nlibrary = \"c\"",
        );
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("library `c` not found"), "{err}");

        let err = discover(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
