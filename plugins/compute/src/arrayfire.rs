//! The ArrayFire backend (cargo feature `arrayfire`).
//!
//! # Building and running
//!
//! ArrayFire is a native library (`libaf`, plus one library per device backend:
//! `libafcpu`, `libafcuda`, `libafopencl`). To build a binary with this feature:
//!
//! 1. install ArrayFire 3.8 or newer (<https://arrayfire.com/download> or your
//!    distribution's package),
//! 2. `export AF_PATH=/opt/arrayfire` (the install prefix; the arrayfire crate's
//!    build script looks in `$AF_PATH/lib` and `$AF_PATH/lib64`),
//! 3. `export LD_LIBRARY_PATH=$AF_PATH/lib64:$LD_LIBRARY_PATH`,
//! 4. `cargo build --features evospike-compute/arrayfire`.
//!
//! `cargo check --features arrayfire` works without ArrayFire (nothing is linked).
//!
//! At run time `DEVICE` (`cpu`, `cuda`, `opencl`; default `cpu`) picks ArrayFire's
//! backend. [`ArrayFireBackend::new`] first loads `libaf` and the device's backend
//! library with `libloading` and turns a missing library into a
//! [`BackendError::LibraryMissing`] / [`BackendError::DeviceUnavailable`] that says
//! what to install, instead of letting the first ArrayFire call abort the process.
//!
//! # Limits
//!
//! Weights stay on the host (plasticity rules update them there). Each call
//! uploads only the rows of the presynaptic neurons that spiked, reduces them on
//! the device and downloads one value per postsynaptic neuron. ArrayFire signals
//! errors by panicking in its error handler; every call here runs inside
//! `catch_unwind` and turns such a panic into [`BackendError::Device`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use arrayfire as af;

use crate::backend::check_shapes;
use crate::{Backend, BackendError, Device, Weights};

/// Libraries loaded by the probe; kept loaded for the life of the process
/// (unloading native libraries is never relied on).
static LOADED: OnceLock<Mutex<Vec<libloading::Library>>> = OnceLock::new();

/// Host-side scratch buffers, reused between calls so steady state does not allocate.
#[derive(Debug, Default)]
struct Scratch {
    values: Vec<f32>,
    row_offsets: Vec<i32>,
    cols: Vec<i32>,
    result: Vec<f32>,
}

/// Spike propagation on an ArrayFire device.
#[derive(Debug)]
pub struct ArrayFireBackend {
    device: Device,
    scratch: Mutex<Scratch>,
}

impl ArrayFireBackend {
    /// Checks that ArrayFire and the backend for `device` are installed, then selects it.
    pub fn new(device: Device) -> Result<Self, BackendError> {
        probe_library(&libaf_candidates("af"))?;
        let device_lib = match device {
            Device::Cpu => "afcpu",
            Device::Cuda => "afcuda",
            Device::OpenCl => "afopencl",
        };
        if let Err(BackendError::LibraryMissing { .. }) =
            probe_library(&libaf_candidates(device_lib))
        {
            return Err(BackendError::DeviceUnavailable {
                device: device.to_string(),
                library: device_lib_file(device),
                available: "not queried: the device library did not load".to_owned(),
            });
        }
        let wanted = af_backend(device);
        let available = guarded("query backends", af::get_available_backends)?;
        if !available.contains(&wanted) {
            return Err(BackendError::DeviceUnavailable {
                device: device.to_string(),
                library: device_lib_file(device),
                available: available
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        guarded("select backend", || af::set_backend(wanted))?;
        Ok(Self {
            device,
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// [`ArrayFireBackend::new`] with the device read from `DEVICE` (default `cpu`).
    pub fn from_env() -> Result<Self, BackendError> {
        let device = std::env::var("DEVICE").unwrap_or_default().parse()?;
        Self::new(device)
    }

    /// The selected device.
    pub fn device(&self) -> Device {
        self.device
    }
}

impl Backend for ArrayFireBackend {
    fn name(&self) -> &'static str {
        match self.device {
            Device::Cpu => "arrayfire-cpu",
            Device::Cuda => "arrayfire-cuda",
            Device::OpenCl => "arrayfire-opencl",
        }
    }

    fn propagate(
        &self,
        weights: &Weights,
        active: &[u32],
        scale: f32,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        check_shapes(self.name(), weights, active, out)?;
        if active.is_empty() || out.is_empty() {
            return Ok(());
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let scratch = &mut *scratch;
        let wanted = af_backend(self.device);
        let cols = weights.cols();
        let result = guarded("propagate", || {
            // ArrayFire's active backend is per thread.
            af::set_backend(wanted);
            match weights {
                Weights::Dense(d) => {
                    scratch.values.clear();
                    for &j in active {
                        scratch.values.extend_from_slice(d.row(j as usize));
                    }
                    // Column-major: each gathered row is one column of a cols x k array.
                    let dims = af::Dim4::new(&[cols as u64, active.len() as u64, 1, 1]);
                    let rows = af::Array::new(&scratch.values, dims);
                    af::sum(&rows, 1)
                }
                Weights::Csr(c) => {
                    scratch.values.clear();
                    scratch.cols.clear();
                    scratch.row_offsets.clear();
                    scratch.row_offsets.push(0);
                    for &j in active {
                        let (idx, ws) = c.row(j as usize);
                        scratch.cols.extend(idx.iter().map(|&k| k as i32));
                        scratch.values.extend_from_slice(ws);
                        scratch.row_offsets.push(scratch.cols.len() as i32);
                    }
                    let k = active.len() as u64;
                    let sparse = af::sparse_from_host(
                        k,
                        cols as u64,
                        scratch.values.len() as u64,
                        &scratch.values,
                        &scratch.row_offsets,
                        &scratch.cols,
                        af::SparseFormat::CSR,
                    );
                    let ones = af::constant(1.0f32, af::Dim4::new(&[k, 1, 1, 1]));
                    af::matmul(&sparse, &ones, af::MatProp::TRANS, af::MatProp::NONE)
                }
            }
        })?;
        scratch.result.resize(cols, 0.0);
        guarded("download", || result.host(&mut scratch.result))?;
        for (o, r) in out.iter_mut().zip(&scratch.result) {
            *o += scale * r;
        }
        Ok(())
    }
}

fn af_backend(device: Device) -> af::Backend {
    match device {
        Device::Cpu => af::Backend::CPU,
        Device::Cuda => af::Backend::CUDA,
        Device::OpenCl => af::Backend::OPENCL,
    }
}

fn device_lib_file(device: Device) -> &'static str {
    match device {
        Device::Cpu => "libafcpu",
        Device::Cuda => "libafcuda",
        Device::OpenCl => "libafopencl",
    }
}

/// Runs an ArrayFire call, turning the panic of its default error handler into an error.
fn guarded<T>(operation: &'static str, f: impl FnOnce() -> T) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| BackendError::Device {
        backend: "arrayfire",
        operation,
        reason: payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "unknown ArrayFire error".to_owned()),
    })
}

/// File names to try for ArrayFire library `stem` (`af`, `afcuda`, …): under
/// `$AF_PATH/lib64` and `$AF_PATH/lib` first, then the loader's search path.
fn libaf_candidates(stem: &str) -> Vec<PathBuf> {
    let names: Vec<String> = if cfg!(target_os = "windows") {
        vec![format!("{stem}.dll")]
    } else if cfg!(target_os = "macos") {
        vec![format!("lib{stem}.3.dylib"), format!("lib{stem}.dylib")]
    } else {
        vec![format!("lib{stem}.so.3"), format!("lib{stem}.so")]
    };
    let mut out = Vec::new();
    if let Some(prefix) = std::env::var_os("AF_PATH") {
        let prefix = PathBuf::from(prefix);
        for dir in ["lib64", "lib"] {
            out.extend(names.iter().map(|n| prefix.join(dir).join(n)));
        }
    }
    out.extend(names.iter().map(PathBuf::from));
    out
}

/// Loads the first loadable candidate and keeps it loaded.
pub(crate) fn probe_library(candidates: &[PathBuf]) -> Result<(), BackendError> {
    let mut last_error = String::from("no candidates");
    for path in candidates {
        // SAFETY: loading ArrayFire's own shared library runs only its initialisers,
        // the same ones that run when the library is linked into the binary; no symbol
        // is called through this handle.
        match unsafe { libloading::Library::new(path) } {
            Ok(lib) => {
                LOADED
                    .get_or_init(|| Mutex::new(Vec::new()))
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(lib);
                return Ok(());
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(BackendError::LibraryMissing {
        tried: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reason: last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error_naming_af_path() {
        let err = probe_library(&[PathBuf::from("/nonexistent/libaf.so.3")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/libaf.so.3"), "{text}");
        assert!(
            text.contains("AF_PATH") && text.contains("Install ArrayFire"),
            "{text}"
        );
    }

    #[test]
    fn candidates_look_under_af_path_first() {
        let c = libaf_candidates("afcuda");
        assert!(c.iter().any(|p| p.to_string_lossy().contains("afcuda")));
    }
}
