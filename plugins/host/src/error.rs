//! Typed errors of the host. Every error names the plugin(s), file or hook point.

use std::path::PathBuf;

use evospike_plugin_api::{HookKind, PluginError, PluginStatus, PluginType};
use semver::{Version, VersionReq};

/// Any failure of a host operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// No plugin of this type and name is registered.
    #[error("no {plugin_type} plugin named `{name}` is registered")]
    NotFound {
        /// Requested type.
        plugin_type: PluginType,
        /// Requested name.
        name: String,
    },
    /// Plugin names are unique across types (config sections are keyed by name).
    #[error("cannot register {plugin_type} plugin `{name}`: a {existing_type} plugin of that name is already registered")]
    AlreadyRegistered {
        /// The name.
        name: String,
        /// Type of the newcomer.
        plugin_type: PluginType,
        /// Type of the registered one.
        existing_type: PluginType,
    },
    /// The config disables this plugin, so it is never initialized.
    #[error("plugin `{name}` is disabled by its config (`plugins.{name}.enabled = false`)")]
    Disabled {
        /// The name.
        name: String,
    },
    /// The operation is not allowed in the plugin's current status.
    #[error("cannot {operation} plugin `{name}`: it is {status}")]
    InvalidTransition {
        /// The name.
        name: String,
        /// What was asked.
        operation: &'static str,
        /// Where the plugin is.
        status: PluginStatus,
    },
    /// The plugin's own code returned an error or panicked; it is now marked failed.
    #[error("{operation} of plugin `{name}` failed: {source}")]
    Plugin {
        /// The name.
        name: String,
        /// Lifecycle step.
        operation: &'static str,
        /// What the plugin reported.
        #[source]
        source: PluginError,
    },
    /// Dependencies cannot be satisfied.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
    /// The node config's `plugins` section is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An external plugin could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A hook chain stopped with an error.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A plugin that config enables did not start (its own failure, or a
    /// dependency's), reported by [`PluginManager::configure_and_start`](crate::PluginManager::configure_and_start).
    #[error("plugin `{name}` did not start: {reason}")]
    NotStarted {
        /// The plugin.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Dependency problems found when ordering plugins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DependencyError {
    /// A dependency is not registered.
    #[error(
        "plugin `{plugin}` depends on `{dependency}` ({requirement}), which is not registered"
    )]
    Missing {
        /// The dependent plugin.
        plugin: String,
        /// The missing plugin.
        dependency: String,
        /// The version requirement.
        requirement: VersionReq,
    },
    /// A dependency is registered but disabled by config.
    #[error("plugin `{plugin}` depends on `{dependency}`, which is disabled by config")]
    Disabled {
        /// The dependent plugin.
        plugin: String,
        /// The disabled plugin.
        dependency: String,
    },
    /// A dependency's version does not match the requirement.
    #[error(
        "plugin `{plugin}` needs `{dependency}` {requirement}, but version {found} is registered"
    )]
    Incompatible {
        /// The dependent plugin.
        plugin: String,
        /// The dependency.
        dependency: String,
        /// The version requirement.
        requirement: VersionReq,
        /// The registered version.
        found: Version,
    },
    /// Plugins depend on each other in a circle.
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The plugins on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A dependency is registered but not active when its dependent starts.
    #[error("plugin `{plugin}` cannot start: its dependency `{dependency}` is {status}")]
    NotActive {
        /// The dependent plugin.
        plugin: String,
        /// The dependency.
        dependency: String,
        /// Status of the dependency.
        status: PluginStatus,
    },
}

/// Invalid `plugins` section of a node config.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not valid TOML / JSON.
    #[error("cannot parse plugin config: {reason}")]
    Parse {
        /// Parser message (with line and column).
        reason: String,
    },
    /// `plugins` or `plugins.<name>` is not a table.
    #[error("`{path}` must be a table, found {found}")]
    NotATable {
        /// Dotted path of the value.
        path: String,
        /// What was found.
        found: String,
    },
    /// `plugins.<name>.enabled` is not a boolean.
    #[error("`plugins.{plugin}.enabled` must be true or false, found {found}")]
    EnabledNotBool {
        /// The plugin.
        plugin: String,
        /// What was found.
        found: String,
    },
    /// A config section names a plugin that is not registered (likely a typo).
    #[error("config has a section `plugins.{plugin}` but no plugin of that name is registered (registered: {registered})")]
    UnknownPlugin {
        /// The section name.
        plugin: String,
        /// Registered names, comma-separated.
        registered: String,
    },
}

/// Why an external plugin could not be loaded. Nothing of the plugin ran unless
/// the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A plugin directory or file could not be read or copied.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest beside the library is invalid.
    #[error("plugin manifest {path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The dynamic loader refused the library.
    #[error("cannot load plugin library {path}: {reason}")]
    Open {
        /// The library.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library does not export the entry symbol.
    #[error("{path} is not an evospike plugin: it does not export `{symbol}` (is `export_plugin!` in the crate, and is it built as a cdylib?)")]
    MissingEntry {
        /// The library.
        path: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// The header's magic number is wrong.
    #[error("{path} is not an evospike plugin: its header magic is {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        /// The library.
        path: PathBuf,
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
    },
    /// ABI, API or compiler versions do not match.
    #[error(
        "{path}: incompatible plugin: {what}\n  host:   {host}\n  plugin: {plugin}\n  fix: rebuild the plugin against evospike-plugin-api {} with {} (update its `evospike-plugin-api` dependency, then `cargo build --release` in the plugin crate)",
        evospike_plugin_api::abi::API_VERSION,
        evospike_plugin_api::abi::RUSTC_VERSION
    )]
    Incompatible {
        /// The library.
        path: PathBuf,
        /// What differs.
        what: String,
        /// The host's build.
        host: Box<BuildInfo>,
        /// The plugin's build (as far as its header can be read).
        plugin: Box<BuildInfo>,
    },
    /// The library disagrees with its manifest.
    #[error("{path}: the library says {field} is `{library}` but its manifest says `{manifest}`")]
    ManifestMismatch {
        /// The library.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Manifest's value.
        manifest: String,
        /// Library's value.
        library: String,
    },
    /// The plugin's constructor or metadata call failed (plugin code ran).
    #[error("{path}: {source}")]
    Plugin {
        /// The library.
        path: PathBuf,
        /// What the plugin reported.
        #[source]
        source: PluginError,
    },
}

/// Build identity of one side of the ABI, printed side by side in [`LoadError::Incompatible`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// ABI major.minor.
    pub abi: (u32, u32),
    /// evospike-plugin-api version, when readable.
    pub api: Option<String>,
    /// rustc version, when readable.
    pub rustc: Option<String>,
}

impl std::fmt::Display for BuildInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unreadable = "(unreadable across ABI versions)";
        write!(
            f,
            "plugin ABI {}.{}, evospike-plugin-api {}, {}",
            self.abi.0,
            self.abi.1,
            self.api.as_deref().unwrap_or(unreadable),
            self.rustc.as_deref().unwrap_or(unreadable)
        )
    }
}

/// A hook chain stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// A handler returned an error or panicked.
    #[error("hook `{point}`: {kind} handler of plugin `{owner}` failed: {source}")]
    Handler {
        /// The hook point.
        point: String,
        /// The plugin that registered the handler.
        owner: String,
        /// Position of the handler.
        kind: HookKind,
        /// The handler's error.
        #[source]
        source: Box<PluginError>,
    },
    /// The operation itself failed.
    #[error("hook `{point}`: the operation failed: {source}")]
    Operation {
        /// The hook point.
        point: String,
        /// The operation's error.
        #[source]
        source: Box<PluginError>,
    },
}
