//! Loading external plugins: manifests, libraries, and the adapters that make them
//! behave like built-ins.

mod boundary;
pub mod external;
pub mod layer;
mod library;
pub mod manifest;

pub use external::ExternalPlugin;
pub use layer::ExternalLayer;
pub use manifest::{
    discover, library_file_name, read_manifest, Discovered, Manifest, MANIFEST_SUFFIX,
};
