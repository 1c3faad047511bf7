//! Opening a plugin library and checking its header before using anything in it.
//!
//! Two rules make reload safe without `dlclose`:
//!
//! * the file is copied to a fresh, uniquely named temporary path and the copy is
//!   opened, so a rebuilt library at the same path is really loaded again (the
//!   dynamic loader would otherwise hand back the already-loaded image by name);
//! * the opened library is leaked on purpose and never closed: objects created by
//!   the plugin (layers handed to a pipeline, panic payloads, thread-locals of its
//!   std) may still point into its code, and unloading code that is still referenced
//!   is undefined behaviour. The cost is the mapped image of each loaded version,
//!   for the life of the process.

use std::path::Path;

use evospike_plugin_api::abi::{
    self, AbiStr, EntryFn, HeaderPrefix, NeuronVTable, PluginHeader, PluginVTable,
};
use evospike_plugin_api::PluginType;
use semver::{Version, VersionReq};

use crate::error::{BuildInfo, LoadError};

/// A library whose header passed every check. Its image stays mapped for the rest
/// of the process, so the references are `'static`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenedLibrary {
    pub(crate) vtable: &'static PluginVTable,
    pub(crate) neuron: Option<&'static NeuronVTable>,
}

fn host_info() -> BuildInfo {
    BuildInfo {
        abi: (abi::ABI_MAJOR, abi::ABI_MINOR),
        api: Some(abi::API_VERSION.to_owned()),
        rustc: Some(abi::RUSTC_VERSION.to_owned()),
    }
}

fn incompatible(path: &Path, what: String, plugin: BuildInfo) -> LoadError {
    LoadError::Incompatible {
        path: path.to_owned(),
        what,
        host: Box::new(host_info()),
        plugin: Box::new(plugin),
    }
}

/// Copy `library` to a fresh temporary file; the copy is deleted when the returned
/// guard drops (on Unix an opened library stays mapped after its file is removed).
fn fresh_copy(library: &Path) -> Result<tempfile::TempPath, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let file_name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_owned());
    let temp = tempfile::Builder::new()
        .prefix("evospike-plugin-")
        .suffix(&format!("-{file_name}"))
        .tempfile()
        .map_err(io(&std::env::temp_dir()))?;
    let temp = temp.into_temp_path();
    std::fs::copy(library, &temp).map_err(io(library))?;
    Ok(temp)
}

/// Open `library` (through a fresh copy), read its header and check magic, ABI, API
/// and rustc versions and the plugin type against `expected_type`. Only the entry
/// function runs, and it only returns a pointer to static data.
pub(crate) fn open(library: &Path, expected_type: PluginType) -> Result<OpenedLibrary, LoadError> {
    let copy = fresh_copy(library)?;
    // SAFETY: loading a library runs its initialisers. Plugins are trusted code
    // chosen by the node's operator (they sit in its configured plugin dirs); the
    // header checks below guard against mismatched builds, not against malice.
    let lib =
        unsafe { libloading::Library::new(copy.as_os_str()) }.map_err(|e| LoadError::Open {
            path: library.to_owned(),
            reason: e.to_string(),
        })?;
    // SAFETY: the symbol, if present, has type `EntryFn`: that is the ABI contract of
    // ENTRY_SYMBOL (a versioned name), which `export_plugin!` implements.
    let entry: EntryFn = match unsafe { lib.get::<EntryFn>(abi::ENTRY_SYMBOL) } {
        Ok(symbol) => *symbol,
        Err(_) => {
            return Err(LoadError::MissingEntry {
                path: library.to_owned(),
                symbol: abi::ENTRY_SYMBOL,
            })
        }
    };
    // Never unload (see the module docs): the image must outlive everything made from it.
    std::mem::forget(lib);
    drop(copy);

    // SAFETY: calling the entry function is the first thing the ABI allows; it
    // returns a pointer to a static header.
    let header_ptr = unsafe { entry() };
    if header_ptr.is_null() {
        return Err(LoadError::Open {
            path: library.to_owned(),
            reason: format!("`{}` returned a null header", abi::ENTRY_SYMBOL),
        });
    }
    // SAFETY: every ABI version's header starts with `HeaderPrefix` (repr(C)), and the
    // image stays mapped forever.
    let prefix: HeaderPrefix = unsafe { header_ptr.cast::<HeaderPrefix>().read() };
    check_prefix(library, prefix)?;
    // SAFETY: the prefix says this is our magic and our ABI major, so the header has
    // this layout; it is static data in an image that is never unmapped.
    let header: &'static PluginHeader = unsafe { &*header_ptr };
    check_header(library, header, expected_type)
}

fn check_prefix(path: &Path, prefix: HeaderPrefix) -> Result<(), LoadError> {
    if prefix.magic != abi::MAGIC {
        return Err(LoadError::BadMagic {
            path: path.to_owned(),
            found: prefix.magic,
            expected: abi::MAGIC,
        });
    }
    let plugin_abi = (prefix.abi_major, prefix.abi_minor);
    if prefix.abi_major != abi::ABI_MAJOR || prefix.abi_minor > abi::ABI_MINOR {
        let what = if prefix.abi_major != abi::ABI_MAJOR {
            format!(
                "plugin ABI major version {} != host's {}",
                prefix.abi_major,
                abi::ABI_MAJOR
            )
        } else {
            format!(
                "plugin needs ABI {}.{}, newer than the host's {}.{}",
                prefix.abi_major,
                prefix.abi_minor,
                abi::ABI_MAJOR,
                abi::ABI_MINOR
            )
        };
        // Past the prefix, a header of another ABI may have any layout: print only the prefix.
        let plugin = BuildInfo {
            abi: plugin_abi,
            api: None,
            rustc: None,
        };
        return Err(incompatible(path, what, plugin));
    }
    Ok(())
}

/// Only called after `check_prefix` accepted the header.
fn check_header(
    path: &Path,
    header: &'static PluginHeader,
    expected_type: PluginType,
) -> Result<OpenedLibrary, LoadError> {
    let text = |s: AbiStr| {
        // SAFETY: header strings point into the never-unmapped image.
        unsafe { s.to_string_lossy() }.into_owned()
    };
    let plugin_api = text(header.api_version);
    let plugin_rustc = text(header.rustc_version);
    let plugin = BuildInfo {
        abi: (header.abi_major, header.abi_minor),
        api: Some(plugin_api.clone()),
        rustc: Some(plugin_rustc.clone()),
    };
    let host_api = Version::parse(abi::API_VERSION).map_err(|e| LoadError::Open {
        path: path.to_owned(),
        reason: format!("host API version {} is not semver: {e}", abi::API_VERSION),
    })?;
    let compatible = VersionReq::parse(&format!("^{plugin_api}"))
        .map(|req| req.matches(&host_api))
        .unwrap_or(false);
    if !compatible {
        let what = format!(
            "plugin was built against evospike-plugin-api {plugin_api}, which host API {host_api} does not satisfy"
        );
        return Err(incompatible(path, what, plugin));
    }
    if plugin_rustc != abi::RUSTC_VERSION {
        let what = "plugin and host were built by different compilers".to_owned();
        return Err(incompatible(path, what, plugin));
    }
    let library_type = PluginType::from_code(header.plugin_type);
    if library_type != Some(expected_type) {
        return Err(LoadError::ManifestMismatch {
            path: path.to_owned(),
            field: "type",
            manifest: expected_type.to_string(),
            library: library_type.map_or_else(
                || format!("unknown code {}", header.plugin_type),
                |t| t.to_string(),
            ),
        });
    }
    // SAFETY: a checked header's vtable pointer is null or points to a static vtable.
    let vtable = unsafe { header.vtable.as_ref() }.ok_or_else(|| LoadError::Open {
        path: path.to_owned(),
        reason: "the header has no vtable".to_owned(),
    })?;
    // SAFETY: as above, for the neuron vtable.
    let neuron = unsafe { vtable.neuron.as_ref() };
    if expected_type == PluginType::Neuron && neuron.is_none() {
        return Err(LoadError::Open {
            path: path.to_owned(),
            reason: "a neuron plugin without the NEURON vtable (was it exported with `export_plugin!(neuron: …)`?)".to_owned(),
        });
    }
    Ok(OpenedLibrary { vtable, neuron })
}
