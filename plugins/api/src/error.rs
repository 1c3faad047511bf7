//! The one error type plugin code returns.

/// What went wrong inside a plugin. Every variant names the plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PluginError {
    /// A setting of the plugin's config section is missing, has the wrong type or is out of range.
    #[error("plugin `{plugin}`: invalid config setting `{key}`: {reason}")]
    InvalidConfig {
        /// Plugin name.
        plugin: String,
        /// The setting (as written under `plugins.<name>.`).
        key: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A model parameter of a layer, encoder or rule spec is invalid.
    #[error("plugin `{plugin}`: invalid parameter `{param}`: {reason}")]
    InvalidParameter {
        /// Plugin name.
        plugin: String,
        /// The parameter name (a key of `params`, or a spec field such as `num_neurons`).
        param: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The operation needs another lifecycle state (e.g. `execute` before `activate`).
    #[error("plugin `{plugin}`: cannot {operation}: {reason}")]
    NotReady {
        /// Plugin name.
        plugin: String,
        /// The operation that was refused.
        operation: String,
        /// Why.
        reason: String,
    },
    /// The plugin does not implement this operation.
    #[error("plugin `{plugin}` does not support {operation}")]
    Unsupported {
        /// Plugin name.
        plugin: String,
        /// The operation.
        operation: String,
    },
    /// The plugin tried and failed.
    #[error("plugin `{plugin}` failed: {reason}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin panicked; the panic was caught at the boundary.
    #[error("plugin `{plugin}` panicked during {operation}: {message}")]
    Panicked {
        /// Plugin name.
        plugin: String,
        /// The call that panicked.
        operation: String,
        /// The panic payload if it was a string.
        message: String,
    },
}

impl PluginError {
    /// The plugin the error is about.
    pub fn plugin(&self) -> &str {
        match self {
            Self::InvalidConfig { plugin, .. }
            | Self::InvalidParameter { plugin, .. }
            | Self::NotReady { plugin, .. }
            | Self::Unsupported { plugin, .. }
            | Self::Failed { plugin, .. }
            | Self::Panicked { plugin, .. } => plugin,
        }
    }

    /// Shorthand for [`PluginError::InvalidConfig`].
    pub fn invalid_config(
        plugin: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidConfig {
            plugin: plugin.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`PluginError::InvalidParameter`].
    pub fn invalid_parameter(
        plugin: impl Into<String>,
        param: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidParameter {
            plugin: plugin.into(),
            param: param.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`PluginError::Failed`].
    pub fn failed(plugin: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Failed {
            plugin: plugin.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`PluginError::Unsupported`].
    pub fn unsupported(plugin: impl Into<String>, operation: impl Into<String>) -> Self {
        Self::Unsupported {
            plugin: plugin.into(),
            operation: operation.into(),
        }
    }
}
