//! Compute for spiking layers: spike bitsets, weights, projections and backends.
//!
//! # Concepts
//!
//! * Spikes travel as bitsets ([`spikes`]): bit `i` of word `i / 64` is neuron `i`.
//! * [`Weights`] between two layers are [`DenseWeights`] (row-major) or
//!   [`CsrWeights`] (compressed sparse rows); rows are presynaptic neurons, so the
//!   weights a spike sends out are one contiguous row. [`FixedProbability`] builds
//!   seeded random sparse connectivity.
//! * A [`Projection`] owns weights, a [`Target`] (excitatory `+w` or inhibitory
//!   `-w`) and a delay in steps (a preallocated ring buffer of pending inputs).
//!   [`Projection::step`] turns this step's presynaptic spikes into postsynaptic
//!   input, event-driven: only the rows of neurons that spiked are read.
//! * A [`Backend`] does that one tensor operation. [`CpuBackend`] is pure Rust and
//!   always built (single-threaded or with a worker pool for large calls);
//!   `ArrayFireBackend` (cargo feature `arrayfire`, see the `arrayfire` module)
//!   runs it on CUDA, OpenCL or CPU chosen from `DEVICE`. [`backend_from_env`]
//!   picks one from the environment.
//!
//! * Training works on whole mini-batches with dense operations ([`dense`]): matrix
//!   products ([`Backend::gemm`] over [`MatRef`] views) and the batched LIF forward
//!   and backward steps, on every backend.
//! * [`ParamReader`] reads model parameters from a spec's JSON map with typed,
//!   key-naming errors; the built-in plugin crates share it.
//!
//! Neuron models (evospike-neuron) do the elementwise state updates themselves.
//!
//! # Example
//!
//! ```
//! use evospike_compute::{spikes, CpuBackend, FixedProbability, Projection, Target, WeightInit};
//!
//! // 100 -> 50 neurons, 10% connectivity, weight 0.5, delivered 2 steps later.
//! let w = FixedProbability::new(0.1, 42)?.connect(100, 50, WeightInit::Constant(0.5))?;
//! let mut proj = Projection::new(w.into(), Target::Excitatory, 2)?;
//! let backend = CpuBackend::single_threaded();
//!
//! let mut pre = vec![0u64; spikes::spike_words_len(100)];
//! spikes::set(&mut pre, 7);
//! let mut input = vec![0.0f32; 50];
//! proj.step(&backend, &pre, &mut input)?; // step 0: neuron 7 spikes
//! assert!(input.iter().all(|&x| x == 0.0)); // still in flight
//! spikes::clear(&mut pre);
//! proj.step(&backend, &pre, &mut input)?; // step 1
//! proj.step(&backend, &pre, &mut input)?; // step 2: arrives
//! let sent: f32 = input.iter().sum();
//! assert_eq!(sent, 0.5 * proj.weights_row_len(7) as f32);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "arrayfire")]
pub mod arrayfire;
mod backend;
mod connector;
pub mod dense;
mod error;
pub mod params;
mod projection;
pub mod spikes;
mod weights;

#[cfg(feature = "arrayfire")]
pub use crate::arrayfire::ArrayFireBackend;
pub use backend::{backend_from_env, backend_from_vars, Backend, CpuBackend, Device};
pub use connector::{FixedProbability, WeightInit};
pub use dense::{Gemm, LifBackward, LifDense, LifForward, MatMut, MatRef, Op, Surrogate};
pub use error::{BackendError, ShapeError};
pub use params::{ParamError, ParamReader, Params};
pub use projection::{Projection, Target};
pub use weights::{CsrWeights, DenseWeights, Weights};
