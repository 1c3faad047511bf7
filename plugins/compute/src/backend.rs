//! The compute backend trait and the pure-Rust CPU backend.
//!
//! A layer step at inference needs one tensor operation that is worth
//! accelerating: adding the weight rows of the presynaptic neurons that spiked into
//! the postsynaptic input buffer ([`Backend::propagate`]; [`Backend::propagate_analog`]
//! for graded inputs such as pixel currents). Elementwise neuron updates stay in the
//! neuron models, where the compiler vectorises them.
//!
//! Training needs dense operations on whole mini-batches: matrix products
//! ([`Backend::gemm`]) and the batched LIF forward and backward steps
//! ([`Backend::lif_forward`], [`Backend::lif_backward`]); see [`crate::dense`].

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::dense::{self, Gemm, LifBackward, LifDense, LifForward};
use crate::{BackendError, ShapeError, Weights};

/// A place where spikes are propagated through weights.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Short name for logs and errors (`cpu`, `arrayfire-cuda`, …).
    fn name(&self) -> &'static str;

    /// For every presynaptic neuron `j` in `active`, adds `scale * weights[j, :]` into
    /// `out` (one entry per postsynaptic neuron). Must not allocate on the CPU side.
    fn propagate(
        &self,
        weights: &Weights,
        active: &[u32],
        scale: f32,
        out: &mut [f32],
    ) -> Result<(), BackendError>;

    /// For every presynaptic neuron `j` with a non-zero value, adds
    /// `(scale * values[j]) * weights[j, :]` into `out`: a layer driven by graded
    /// input (pixel currents, membrane potentials). Rows are added in index order,
    /// so the result does not depend on the backend's threading. Must not allocate.
    fn propagate_analog(
        &self,
        weights: &Weights,
        values: &[f32],
        scale: f32,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        check_analog_shapes(self.name(), weights, values, out)?;
        add_analog_rows(weights, values, scale, out);
        Ok(())
    }

    /// [`Backend::propagate_analog`] for `batch` samples at once: `values` holds
    /// `batch` rows of `weights.rows()` values and `out` `batch` rows of
    /// `weights.cols()`. Every sample's row receives exactly the sums
    /// `propagate_analog` computes for it alone — the same terms added in the
    /// same order — so batching never changes an answer; what changes is that
    /// each weight row is read once per group of samples instead of once per
    /// sample. Runs on the host. Must not allocate.
    fn propagate_analog_batch(
        &self,
        weights: &Weights,
        values: &[f32],
        batch: usize,
        scale: f32,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        let (rows, cols) = (weights.rows(), weights.cols());
        if values.len() != batch * rows || out.len() != batch * cols {
            return Err(shape(
                self.name(),
                ShapeError::Length {
                    what: "batched values or output",
                    expected: batch * rows,
                    got: values.len(),
                },
            ));
        }
        add_analog_rows_batch(weights, values, batch, scale, out);
        Ok(())
    }

    /// `C = alpha · op(A) · op(B) + beta · C` (see [`Gemm`]).
    fn gemm(&self, g: Gemm<'_>) -> Result<(), BackendError>;

    /// One batched LIF step forward (see [`crate::dense`]).
    fn lif_forward(&self, lif: LifDense, f: LifForward<'_>) -> Result<(), BackendError>;

    /// One batched LIF step backward (see [`crate::dense`]).
    fn lif_backward(&self, lif: LifDense, b: LifBackward<'_>) -> Result<(), BackendError>;
}

/// Which device `DEVICE` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU through ArrayFire's CUDA backend.
    Cuda,
    /// A GPU (or other OpenCL device) through ArrayFire's OpenCL backend.
    OpenCl,
}

impl Device {
    /// The name used in `DEVICE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::OpenCl => "opencl",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Device {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "opencl" => Ok(Self::OpenCl),
            _ => Err(BackendError::UnknownDevice {
                value: s.to_owned(),
            }),
        }
    }
}

/// Picks a backend from the environment.
///
/// * `EVOSPIKE_BACKEND` = `cpu` (pure Rust, the default) or `arrayfire`.
/// * `DEVICE` = `cpu` (default), `cuda` or `opencl`: the ArrayFire device. Asking for
///   `cuda` or `opencl` implies `EVOSPIKE_BACKEND=arrayfire`.
///
/// Without the `arrayfire` feature a GPU request is a [`BackendError::FeatureDisabled`]
/// that says how to get it; with the feature but without `libaf` installed it is a
/// [`BackendError::LibraryMissing`] that says how to install it.
pub fn backend_from_env() -> Result<Box<dyn Backend>, BackendError> {
    let backend = std::env::var("EVOSPIKE_BACKEND").ok();
    let device = std::env::var("DEVICE").ok();
    backend_from_vars(backend.as_deref(), device.as_deref())
}

/// [`backend_from_env`] with the two variables passed in.
pub fn backend_from_vars(
    backend: Option<&str>,
    device: Option<&str>,
) -> Result<Box<dyn Backend>, BackendError> {
    let device: Device = device.unwrap_or("cpu").parse()?;
    let use_arrayfire = match backend.map(|b| b.trim().to_ascii_lowercase()) {
        None => device != Device::Cpu,
        Some(b) if b.is_empty() => device != Device::Cpu,
        Some(b) if b == "cpu" => {
            if device != Device::Cpu {
                return Err(BackendError::UnknownDevice {
                    value: format!("{device} (EVOSPIKE_BACKEND=cpu runs only on the host CPU)"),
                });
            }
            false
        }
        Some(b) if b == "arrayfire" => true,
        Some(b) => {
            return Err(BackendError::UnknownDevice {
                value: format!("EVOSPIKE_BACKEND={b}; use cpu or arrayfire"),
            })
        }
    };
    if !use_arrayfire {
        return Ok(Box::new(CpuBackend::new()?));
    }
    arrayfire_backend(device)
}

#[cfg(feature = "arrayfire")]
fn arrayfire_backend(device: Device) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(crate::arrayfire::ArrayFireBackend::new(device)?))
}

#[cfg(not(feature = "arrayfire"))]
fn arrayfire_backend(device: Device) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::FeatureDisabled {
        device: device.to_string(),
    })
}

/// Below this many synaptic updates in one call, threads cost more than they save.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// The pure-Rust backend: event-driven, allocation-free, optionally multi-threaded.
///
/// Only the rows of spiking neurons are read. With more than one thread, a call whose
/// work exceeds a threshold splits the *postsynaptic* range into chunks, one per
/// thread, so no two threads write the same output and no reduction is needed.
pub struct CpuBackend {
    pool: Option<rayon::ThreadPool>,
    threads: usize,
}

impl fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuBackend")
            .field("threads", &self.threads)
            .finish()
    }
}

impl CpuBackend {
    /// One thread per available core.
    pub fn new() -> Result<Self, BackendError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(threads)
    }

    /// Everything on the calling thread (what the single-thread benchmark uses).
    pub fn single_threaded() -> Self {
        Self {
            pool: None,
            threads: 1,
        }
    }

    /// A backend with its own pool of `threads` workers (`0` or `1`: single-threaded).
    pub fn with_threads(threads: usize) -> Result<Self, BackendError> {
        if threads <= 1 {
            return Ok(Self::single_threaded());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("evospike-cpu-{i}"))
            .build()
            .map_err(|e| BackendError::Device {
                backend: "cpu",
                operation: "start worker threads",
                reason: e.to_string(),
            })?;
        Ok(Self {
            pool: Some(pool),
            threads,
        })
    }

    /// Worker threads used for large calls.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn propagate(
        &self,
        weights: &Weights,
        active: &[u32],
        scale: f32,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        check_shapes("cpu", weights, active, out)?;
        let work = match weights {
            Weights::Dense(d) => active.len() * d.cols(),
            Weights::Csr(c) => active.len() * (c.nnz() / c.rows().max(1) + 1),
        };
        match &self.pool {
            Some(pool) if work >= PARALLEL_MIN_WORK => {
                let chunk = out
                    .len()
                    .div_ceil(self.threads)
                    .next_multiple_of(16)
                    .max(16);
                pool.install(|| {
                    out.par_chunks_mut(chunk).enumerate().for_each(|(i, part)| {
                        add_rows(weights, active, scale, i * chunk, part);
                    });
                });
            }
            _ => add_rows(weights, active, scale, 0, out),
        }
        Ok(())
    }

    fn gemm(&self, g: Gemm<'_>) -> Result<(), BackendError> {
        dense::gemm_cpu(g, self.pool.as_ref()).map_err(|source| shape("cpu", source))
    }

    fn lif_forward(&self, lif: LifDense, f: LifForward<'_>) -> Result<(), BackendError> {
        dense::lif_forward_cpu(lif, f, self.pool.as_ref()).map_err(|source| shape("cpu", source))
    }

    fn lif_backward(&self, lif: LifDense, b: LifBackward<'_>) -> Result<(), BackendError> {
        dense::lif_backward_cpu(lif, b, self.pool.as_ref()).map_err(|source| shape("cpu", source))
    }
}

pub(crate) fn shape(backend: &'static str, source: ShapeError) -> BackendError {
    BackendError::Shape { backend, source }
}

/// Validates the buffers of [`Backend::propagate_analog`]; shared by all backends.
pub(crate) fn check_analog_shapes(
    backend: &'static str,
    weights: &Weights,
    values: &[f32],
    out: &[f32],
) -> Result<(), BackendError> {
    if values.len() != weights.rows() {
        return Err(shape(
            backend,
            ShapeError::Length {
                what: "presynaptic values",
                expected: weights.rows(),
                got: values.len(),
            },
        ));
    }
    if out.len() != weights.cols() {
        return Err(shape(
            backend,
            ShapeError::Length {
                what: "postsynaptic input buffer",
                expected: weights.cols(),
                got: out.len(),
            },
        ));
    }
    Ok(())
}

/// Adds `(scale * values[j]) * row j` for every non-zero `values[j]`, rows in index order.
fn add_analog_rows(weights: &Weights, values: &[f32], scale: f32, out: &mut [f32]) {
    for (j, &x) in values.iter().enumerate() {
        if x == 0.0 {
            continue;
        }
        let x = scale * x;
        match weights {
            Weights::Dense(d) => {
                for (o, &w) in out.iter_mut().zip(d.row(j)) {
                    *o += x * w;
                }
            }
            Weights::Csr(c) => {
                let (cols, ws) = c.row(j);
                for (&k, &w) in cols.iter().zip(ws) {
                    out[k as usize] += x * w;
                }
            }
        }
    }
}

/// [`add_analog_rows`] for `batch` rows of values, as a blocked product: a tile
/// of [`TILE_SAMPLES`] samples × [`TILE_COLS`] outputs stays in registers while
/// every weight row goes by, so an output is loaded and stored once per tile
/// instead of once per non-zero input, and a weight row is read once per tile of
/// samples. Each output value still gets its terms `(scale * x) * w` in row
/// order, skipping zero inputs — exactly the operations of one sample alone, so
/// the sums are bit-identical (no fused multiply-add, whatever the vector width).
fn add_analog_rows_batch(
    weights: &Weights,
    values: &[f32],
    batch: usize,
    scale: f32,
    out: &mut [f32],
) {
    let (rows, cols) = (weights.rows(), weights.cols());
    let (Weights::Dense(d), 2..) = (weights, batch) else {
        // Sparse weights, or one sample: row by row (a sample alone shares nothing).
        for b in 0..batch {
            add_analog_rows(
                weights,
                &values[b * rows..(b + 1) * rows],
                scale,
                &mut out[b * cols..(b + 1) * cols],
            );
        }
        return;
    };
    let mut first = 0;
    while first < batch {
        let n = (batch - first).min(TILE_SAMPLES);
        let tile_values = &values[first * rows..(first + n) * rows];
        let tile_out = &mut out[first * cols..(first + n) * cols];
        let mut col0 = 0;
        while col0 + TILE_COLS <= cols {
            add_tile(d, tile_values, n, scale, col0, tile_out);
            col0 += TILE_COLS;
        }
        if col0 < cols {
            // The last columns: one sample at a time, in row order as well.
            for b in 0..n {
                let x_row = &tile_values[b * rows..(b + 1) * rows];
                let o_row = &mut tile_out[b * cols + col0..(b + 1) * cols];
                for (j, &x) in x_row.iter().enumerate() {
                    if x == 0.0 {
                        continue;
                    }
                    let x = scale * x;
                    for (o, &w) in o_row.iter_mut().zip(&d.row(j)[col0..]) {
                        *o += x * w;
                    }
                }
            }
        }
        first += n;
    }
}

/// Samples of a tile of [`add_analog_rows_batch`].
const TILE_SAMPLES: usize = 4;
/// Outputs of a tile of [`add_analog_rows_batch`].
const TILE_COLS: usize = 32;

/// One tile: outputs `col0..col0 + TILE_COLS` of `n` (≤ [`TILE_SAMPLES`])
/// samples, accumulated in registers over every row.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2", "x86_64+avx2"))]
fn add_tile(
    d: &crate::DenseWeights,
    values: &[f32],
    n: usize,
    scale: f32,
    col0: usize,
    out: &mut [f32],
) {
    let (rows, cols) = (d.rows(), d.cols());
    let mut acc = [[0.0f32; TILE_COLS]; TILE_SAMPLES];
    for (b, acc) in acc.iter_mut().enumerate().take(n) {
        acc.copy_from_slice(&out[b * cols + col0..b * cols + col0 + TILE_COLS]);
    }
    for j in 0..rows {
        let row: &[f32; TILE_COLS] = d.row(j)[col0..col0 + TILE_COLS]
            .try_into()
            .expect("a tile of columns");
        for (b, acc) in acc.iter_mut().enumerate().take(n) {
            let x = values[b * rows + j];
            if x == 0.0 {
                continue;
            }
            let x = scale * x;
            for (o, &w) in acc.iter_mut().zip(row) {
                *o += x * w;
            }
        }
    }
    for (b, acc) in acc.iter().enumerate().take(n) {
        out[b * cols + col0..b * cols + col0 + TILE_COLS].copy_from_slice(acc);
    }
}

/// Validates the buffers a backend is handed; shared by all backends.
pub(crate) fn check_shapes(
    backend: &'static str,
    weights: &Weights,
    active: &[u32],
    out: &[f32],
) -> Result<(), BackendError> {
    if out.len() != weights.cols() {
        return Err(BackendError::Shape {
            backend,
            source: ShapeError::Length {
                what: "postsynaptic input buffer",
                expected: weights.cols(),
                got: out.len(),
            },
        });
    }
    if let Some(&j) = active.iter().find(|&&j| j as usize >= weights.rows()) {
        return Err(BackendError::Shape {
            backend,
            source: ShapeError::Value {
                what: "presynaptic index",
                reason: format!("{j} is out of range for {} rows", weights.rows()),
            },
        });
    }
    Ok(())
}

/// Adds the active rows, restricted to columns `col0 .. col0 + out.len()`, into `out`.
fn add_rows(weights: &Weights, active: &[u32], scale: f32, col0: usize, out: &mut [f32]) {
    let col1 = col0 + out.len();
    match weights {
        Weights::Dense(d) => {
            for &j in active {
                let row = &d.row(j as usize)[col0..col1];
                for (o, &w) in out.iter_mut().zip(row) {
                    *o += scale * w;
                }
            }
        }
        Weights::Csr(c) => {
            let whole = col0 == 0 && col1 == c.cols();
            for &j in active {
                let (mut cols, mut ws) = c.row(j as usize);
                if !whole {
                    let lo = cols.partition_point(|&k| (k as usize) < col0);
                    let hi = cols.partition_point(|&k| (k as usize) < col1);
                    cols = &cols[lo..hi];
                    ws = &ws[lo..hi];
                }
                for (&k, &w) in cols.iter().zip(ws) {
                    out[k as usize - col0] += scale * w;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CsrWeights, DenseWeights, FixedProbability, WeightInit};
    use rand::{Rng as _, SeedableRng as _};

    fn reference(w: &DenseWeights, active: &[u32], scale: f32) -> Vec<f32> {
        let mut out = vec![0.0; w.cols()];
        for &j in active {
            for (k, o) in out.iter_mut().enumerate() {
                *o += scale * w.values()[j as usize * w.cols() + k];
            }
        }
        out
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn dense_and_csr_agree_with_the_definition_serial_and_parallel() {
        let csr = FixedProbability::new(0.3, 3)
            .unwrap()
            .connect(
                700,
                1500,
                WeightInit::Uniform {
                    low: -1.0,
                    high: 1.0,
                },
            )
            .unwrap();
        let dense = csr.to_dense();
        let active: Vec<u32> = (0..700).step_by(2).collect();
        let expected = reference(&dense, &active, -0.5);
        let parallel = CpuBackend::with_threads(2).unwrap();
        for backend in [CpuBackend::single_threaded(), parallel] {
            for w in [Weights::Dense(dense.clone()), Weights::Csr(csr.clone())] {
                let mut out = vec![0.0; 1500];
                backend.propagate(&w, &active, -0.5, &mut out).unwrap();
                assert_close(&out, &expected);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn csr_and_dense_propagate_the_same(
            rows in 1usize..40,
            cols in 1usize..70,
            p in 0.0f64..1.0,
            seed in 0u64..1000,
            active_mask in proptest::collection::vec(proptest::bool::ANY, 40),
        ) {
            let csr = FixedProbability::new(p, seed)
                .unwrap()
                .connect(rows, cols, WeightInit::Uniform { low: -2.0, high: 2.0 })
                .unwrap();
            let dense = csr.to_dense();
            let active: Vec<u32> = (0..rows as u32).filter(|&j| active_mask[j as usize]).collect();
            let expected = reference(&dense, &active, 1.5);
            let b = CpuBackend::single_threaded();
            for w in [Weights::Dense(dense.clone()), Weights::Csr(csr.clone())] {
                let mut out = vec![0.0; cols];
                b.propagate(&w, &active, 1.5, &mut out).unwrap();
                assert_close(&out, &expected);
            }
        }
    }

    #[test]
    fn a_batch_gets_the_very_sums_of_its_samples_alone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Whole tiles of outputs and samples, and the rest of each.
        let (pre, post, batch) = (37, 3 * 32 + 5, 150);
        let w = DenseWeights::new(
            pre,
            post,
            (0..pre * post)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect(),
        )
        .unwrap();
        let weights = Weights::Dense(w);
        let values: Vec<f32> = (0..pre * batch)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    rng.random_range(0.0f32..1.0)
                }
            })
            .collect();
        let backend = CpuBackend::single_threaded();
        let mut batched = vec![0.5; post * batch];
        backend
            .propagate_analog_batch(&weights, &values, batch, -1.0, &mut batched)
            .unwrap();
        for b in 0..batch {
            let mut alone = vec![0.5; post];
            backend
                .propagate_analog(&weights, &values[b * pre..(b + 1) * pre], -1.0, &mut alone)
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&batched[b * post..(b + 1) * post]),
                bits(&alone),
                "sample {b}"
            );
        }
        assert!(backend
            .propagate_analog_batch(&weights, &values[1..], batch, 1.0, &mut batched)
            .is_err());
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let w =
            Weights::Csr(CsrWeights::new(2, 2, vec![0, 1, 2], vec![0, 1], vec![1.0, 1.0]).unwrap());
        let b = CpuBackend::single_threaded();
        let err = b.propagate(&w, &[0], 1.0, &mut [0.0; 3]).unwrap_err();
        assert!(
            err.to_string().contains("expected length 2, got 3"),
            "{err}"
        );
        let err = b.propagate(&w, &[2], 1.0, &mut [0.0; 2]).unwrap_err();
        assert!(
            err.to_string().contains("2 is out of range for 2 rows"),
            "{err}"
        );
    }

    #[test]
    fn device_parsing_and_selection() {
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda);
        assert!(matches!(
            "tpu".parse::<Device>(),
            Err(BackendError::UnknownDevice { .. })
        ));
        assert_eq!(backend_from_vars(None, None).unwrap().name(), "cpu");
        assert_eq!(
            backend_from_vars(Some("cpu"), Some("cpu")).unwrap().name(),
            "cpu"
        );
        assert!(backend_from_vars(Some("cpu"), Some("cuda")).is_err());
        assert!(backend_from_vars(Some("tpu"), None).is_err());
    }

    #[cfg(not(feature = "arrayfire"))]
    #[test]
    fn gpu_without_the_feature_says_how_to_get_it() {
        let err = backend_from_vars(None, Some("cuda")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("AF_PATH") && text.contains("--features"),
            "{text}"
        );
    }
}
