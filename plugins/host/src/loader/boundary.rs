//! Calling across the C ABI: status codes and plugin-owned buffers.

use std::sync::OnceLock;

use evospike_plugin_api::abi::{self, RawBuf};
use evospike_plugin_api::PluginError;

/// Turns a status code and error buffer into a `Result`, freeing the buffer in the
/// plugin. `poison` is set on a panic.
pub(super) fn outcome(
    free_buf: unsafe extern "C" fn(RawBuf),
    plugin: &str,
    operation: &str,
    status: i32,
    err: RawBuf,
    poison: &OnceLock<String>,
) -> Result<(), PluginError> {
    let message = take(free_buf, err);
    match status {
        abi::STATUS_OK => Ok(()),
        abi::STATUS_ERROR => Err(serde_json::from_slice::<PluginError>(&message)
            .unwrap_or_else(|_| PluginError::failed(plugin, String::from_utf8_lossy(&message)))),
        abi::STATUS_PANIC => {
            let message = String::from_utf8_lossy(&message).into_owned();
            let _ = poison.set(format!("panicked during {operation}: {message}"));
            Err(PluginError::Panicked {
                plugin: plugin.to_owned(),
                operation: operation.to_owned(),
                message,
            })
        }
        other => Err(PluginError::failed(
            plugin,
            format!("{operation} returned unknown status {other}"),
        )),
    }
}

/// Copy a plugin-allocated buffer and give it back to the plugin to free.
pub(super) fn take(free_buf: unsafe extern "C" fn(RawBuf), buf: RawBuf) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: a non-null buffer written by the plugin describes live plugin memory.
    let bytes = unsafe { buf.as_slice() }.to_vec();
    // SAFETY: the buffer came from this plugin's allocator and is released once, here.
    unsafe { free_buf(buf) };
    bytes
}

pub(super) fn poisoned_error(plugin: &str, operation: &str, why: &str) -> PluginError {
    PluginError::NotReady {
        plugin: plugin.to_owned(),
        operation: operation.to_owned(),
        reason: format!("the plugin {why}; reload it"),
    }
}
