//! Error types of the compute crate.

/// A weight matrix, projection or connector was given inconsistent shapes or values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// A dense matrix whose value count is not `rows * cols`.
    #[error("dense weights {rows}x{cols} need {expected} values, got {got}")]
    DenseLength {
        /// Rows (presynaptic neurons).
        rows: usize,
        /// Columns (postsynaptic neurons).
        cols: usize,
        /// `rows * cols`.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// CSR arrays that do not describe a valid matrix.
    #[error("CSR weights {rows}x{cols}: {reason}")]
    Csr {
        /// Rows (presynaptic neurons).
        rows: usize,
        /// Columns (postsynaptic neurons).
        cols: usize,
        /// What is inconsistent.
        reason: String,
    },
    /// A spike bitset or input buffer of the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A connection probability outside [0, 1].
    #[error("connection probability {0} is not in [0, 1]")]
    Probability(f64),
    /// A weight or delay that is not finite / not representable.
    #[error("invalid {what}: {reason}")]
    Value {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// A backend could not be selected or could not run an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `DEVICE` holds a value that is not `cpu`, `cuda` or `opencl`.
    #[error("DEVICE={value:?} is not a known device; use one of: cpu, cuda, opencl")]
    UnknownDevice {
        /// The value read.
        value: String,
    },
    /// A GPU device was requested from a build without the `arrayfire` feature.
    #[error(
        "DEVICE={device} needs the ArrayFire backend, but this binary was built without it; \
         install ArrayFire (https://arrayfire.com/download, or your distribution's `arrayfire` package), \
         set AF_PATH to its install prefix, and rebuild with `cargo build --features evospike-compute/arrayfire`"
    )]
    FeatureDisabled {
        /// The requested device.
        device: String,
    },
    /// The ArrayFire shared library could not be loaded.
    #[error(
        "ArrayFire's library (libaf) could not be loaded (tried: {tried}): {reason}. \
         Install ArrayFire 3.8+ (https://arrayfire.com/download, or your distribution's `arrayfire` package), \
         set AF_PATH to its install prefix (the folder holding lib/ or lib64/), and add $AF_PATH/lib64 \
         (or $AF_PATH/lib) to LD_LIBRARY_PATH"
    )]
    LibraryMissing {
        /// The library names and paths that were tried.
        tried: String,
        /// The loader's last error.
        reason: String,
    },
    /// ArrayFire is installed but the backend for the requested device is not.
    #[error(
        "DEVICE={device}: ArrayFire is installed but its {device} backend ({library}) is not available \
         (available: {available}); install ArrayFire's {device} backend or choose another DEVICE"
    )]
    DeviceUnavailable {
        /// The requested device.
        device: String,
        /// The backend library ArrayFire would need.
        library: &'static str,
        /// The backends ArrayFire reports as available.
        available: String,
    },
    /// Buffers handed to a backend do not fit the weights.
    #[error("backend {backend}: {source}")]
    Shape {
        /// The backend's name.
        backend: &'static str,
        /// The mismatch.
        #[source]
        source: ShapeError,
    },
    /// The device reported an error while running an operation.
    #[error("backend {backend}: {operation} failed: {reason}")]
    Device {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
        /// The device's message.
        reason: String,
    },
}
