//! Hooks: named extension points where plugins add behaviour to the host.
//!
//! A hook point is a name (`"node.step"`, `"bus.publish"`, …) at which the host runs
//! an operation on some [`HookData`]. Plugins register handlers there from
//! [`Plugin::register_hooks`](crate::Plugin::register_hooks), each with a
//! `Priority` (lower runs first / outermost):
//!
//! * [`HookHandler::Before`] runs before the operation and may change its input,
//! * [`HookHandler::Around`] wraps the operation and decides whether and how to call it,
//! * [`HookHandler::Replace`] runs instead of the operation (the lowest priority wins),
//! * [`HookHandler::After`] runs after the operation and may change its result.
//!
//! The host (`evospike-plugin-host`) runs the chain; the first handler error stops it.

use std::fmt;
use std::sync::Arc;

use crate::{PluginError, Priority};

/// The value a hook chain works on (input before, result after the operation).
pub type HookData = serde_json::Value;

/// A before / after / replace handler.
pub type HookFn = Arc<dyn Fn(&mut HookData) -> Result<(), PluginError> + Send + Sync>;

/// The rest of the chain, handed to an around handler.
pub type Next<'a> = &'a mut dyn FnMut(&mut HookData) -> Result<(), PluginError>;

/// An around handler: gets the data and the rest of the chain.
pub type AroundFn = Arc<dyn Fn(&mut HookData, Next<'_>) -> Result<(), PluginError> + Send + Sync>;

/// One handler, by position in the chain.
#[derive(Clone)]
pub enum HookHandler {
    /// Runs before the operation.
    Before(HookFn),
    /// Runs after the operation.
    After(HookFn),
    /// Wraps the operation.
    Around(AroundFn),
    /// Runs instead of the operation.
    Replace(HookFn),
}

impl HookHandler {
    /// The position of this handler.
    pub fn kind(&self) -> HookKind {
        match self {
            Self::Before(_) => HookKind::Before,
            Self::After(_) => HookKind::After,
            Self::Around(_) => HookKind::Around,
            Self::Replace(_) => HookKind::Replace,
        }
    }
}

impl fmt::Debug for HookHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookHandler::{:?}", self.kind())
    }
}

/// Position of a handler in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookKind {
    /// See [`HookHandler::Before`].
    Before,
    /// See [`HookHandler::After`].
    After,
    /// See [`HookHandler::Around`].
    Around,
    /// See [`HookHandler::Replace`].
    Replace,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Before => "before",
            Self::After => "after",
            Self::Around => "around",
            Self::Replace => "replace",
        })
    }
}

/// Where a plugin registers its handlers (implemented by the host, which records
/// the registering plugin as the handler's owner).
pub trait HookRegistrar {
    /// Add `handler` at hook point `point` with `priority`.
    fn register(&mut self, point: &str, priority: Priority, handler: HookHandler);
}
