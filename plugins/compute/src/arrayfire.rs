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
//! Training operations ([`Backend::gemm`], the batched LIF steps) take host slices,
//! as every backend's do: each call uploads its operands, runs `af::matmul` or the
//! element-wise kernels on the device and downloads the result. That keeps one
//! training loop for all backends; keeping whole batches resident on the device is
//! the next step for large GPU runs.
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

use crate::backend::{check_shapes, shape};
use crate::dense::{Gemm, LifBackward, LifDense, LifForward, Op, Surrogate};
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

    fn gemm(&self, g: Gemm<'_>) -> Result<(), BackendError> {
        self.dense_gemm(g)
    }

    fn lif_forward(&self, lif: LifDense, f: LifForward<'_>) -> Result<(), BackendError> {
        self.dense_lif_forward(lif, f)
    }

    fn lif_backward(&self, lif: LifDense, b: LifBackward<'_>) -> Result<(), BackendError> {
        self.dense_lif_backward(lif, b)
    }
}

impl ArrayFireBackend {
    fn dense_gemm(&self, g: Gemm<'_>) -> Result<(), BackendError> {
        let (m, _, n) = g.dims().map_err(|e| shape(self.name(), e))?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let wanted = af_backend(self.device);
        let prop = |op: Op| match op {
            Op::N => af::MatProp::NONE,
            Op::T => af::MatProp::TRANS,
        };
        // A row-major r x c matrix is a column-major c x r one: its transpose. So the
        // row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, which is
        // matmul of the uploaded B and A with the same transpose flags.
        let (a, b) = (g.a, g.b);
        let product = guarded("matmul", || {
            af::set_backend(wanted);
            let a_dev = af::Array::new(
                a.data(),
                af::Dim4::new(&[a.cols() as u64, a.rows() as u64, 1, 1]),
            );
            let b_dev = af::Array::new(
                b.data(),
                af::Dim4::new(&[b.cols() as u64, b.rows() as u64, 1, 1]),
            );
            let c_t = af::matmul(&b_dev, &a_dev, prop(g.op_b), prop(g.op_a));
            let mut host = vec![0.0f32; m * n];
            c_t.host(&mut host);
            host
        })?;
        let (alpha, beta, mut c) = (g.alpha, g.beta, g.c);
        for (c, p) in c.data().iter_mut().zip(&product) {
            *c = alpha * p + if beta == 0.0 { 0.0 } else { beta * *c };
        }
        Ok(())
    }

    fn dense_lif_forward(&self, lif: LifDense, f: LifForward<'_>) -> Result<(), BackendError> {
        let n = f.len_checked().map_err(|e| shape(self.name(), e))?;
        let wanted = af_backend(self.device);
        let dims = af::Dim4::new(&[n as u64, 1, 1, 1]);
        guarded("lif_forward", || {
            af::set_backend(wanted);
            let input = af::Array::new(f.input, dims);
            let v = af::Array::new(f.v, dims);
            let x = af::add(&af::mul(&v, &lif.beta, false), &input, false);
            let fired = af::ge(&x, &lif.threshold, false).cast::<f32>();
            let kept = af::mul(&x, &af::sub(&1.0f32, &fired, false), false);
            x.host(f.v_pre);
            fired.host(f.spikes);
            kept.host(f.v);
        })
    }

    fn dense_lif_backward(&self, lif: LifDense, b: LifBackward<'_>) -> Result<(), BackendError> {
        let n = b.len_checked().map_err(|e| shape(self.name(), e))?;
        let wanted = af_backend(self.device);
        let dims = af::Dim4::new(&[n as u64, 1, 1, 1]);
        guarded("lif_backward", || {
            af::set_backend(wanted);
            let x = af::sub(&af::Array::new(b.v_pre, dims), &lif.threshold, false);
            let grad = match lif.surrogate {
                Surrogate::FastSigmoid { slope } => {
                    let d = af::add(&1.0f32, &af::mul(&af::abs(&x), &slope, false), false);
                    af::div(&1.0f32, &af::mul(&d, &d, false), false)
                }
                Surrogate::Arctan { alpha } => {
                    let z = af::mul(&x, &(std::f32::consts::FRAC_PI_2 * alpha), false);
                    af::div(
                        &(0.5 * alpha),
                        &af::add(&1.0f32, &af::mul(&z, &z, false), false),
                        false,
                    )
                }
            };
            let spikes = af::Array::new(b.spikes, dims);
            let gs = af::Array::new(b.grad_spikes, dims);
            let carry = af::Array::new(b.carry, dims);
            let dv = af::add(
                &af::mul(&gs, &grad, false),
                &af::mul(&carry, &af::sub(&1.0f32, &spikes, false), false),
                false,
            );
            let next = af::mul(&dv, &lif.beta, false);
            dv.host(b.grad_input);
            next.host(b.carry);
        })
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
