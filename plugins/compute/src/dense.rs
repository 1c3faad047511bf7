//! Dense operations for training: matrix products and the LIF forward/backward steps.
//!
//! Training a network by backpropagation through time works on whole mini-batches:
//! a layer's input for a batch is one matrix product, the neurons advance element by
//! element, and the backward pass is the same in reverse. These operations are
//! methods of [`Backend`](crate::Backend) so the same training code runs on the CPU
//! and on ArrayFire; this module holds their argument types and the CPU code.
//!
//! Matrices are row-major views ([`MatRef`], [`MatMut`]) over caller-owned buffers,
//! so a training loop allocates its buffers once and every step after that reuses
//! them.
//!
//! # The LIF step, batched
//!
//! The element-wise step is exactly the one the `LIFNeuron` plugin takes with delta
//! synapses, `v_rest = v_reset = 0` and no refractory period ([`LifDense`]):
//!
//! ```text
//! v_t  = β·v'_{t−1} + I_t            (pre-reset membrane, kept for the backward pass)
//! s_t  = [v_t ≥ θ]                    (spike, 0 or 1)
//! v'_t = s_t ? 0 : v_t                (reset to zero)
//! ```
//!
//! The backward pass replaces the derivative of the step function by a
//! [`Surrogate`] and treats the reset as a constant (as snnTorch does, detaching it):
//!
//! ```text
//! dv_t      = ∂L/∂s_t · σ'(v_t − θ) + a_t · (1 − s_t)
//! ∂L/∂I_t   = dv_t,      a_{t−1} = β · dv_t
//! ```
//!
//! where `a_t = ∂L/∂v'_t` is the gradient carried back from step `t + 1`.

use rayon::prelude::*;

use crate::ShapeError;

/// A row-major matrix borrowed from a slice.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatRef<'a> {
    /// Views `data` as `rows x cols`; the length must be exactly `rows * cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_len(data.len(), rows, cols)?;
        Ok(Self { data, rows, cols })
    }

    /// The values, row after row.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A writable row-major matrix borrowed from a slice.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatMut<'a> {
    /// Views `data` as `rows x cols`; the length must be exactly `rows * cols`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_len(data.len(), rows, cols)?;
        Ok(Self { data, rows, cols })
    }

    /// The values, row after row.
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

fn check_len(len: usize, rows: usize, cols: usize) -> Result<(), ShapeError> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(ShapeError::DenseLength {
            rows,
            cols,
            expected: rows.saturating_mul(cols),
            got: len,
        }),
    }
}

/// Whether an operand of [`Gemm`] is used as it is or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// One general matrix product `C = alpha · op(A) · op(B) + beta · C`.
#[derive(Debug)]
pub struct Gemm<'a> {
    /// Scale of the product.
    pub alpha: f32,
    /// Left operand.
    pub a: MatRef<'a>,
    /// How `a` is used.
    pub op_a: Op,
    /// Right operand.
    pub b: MatRef<'a>,
    /// How `b` is used.
    pub op_b: Op,
    /// Scale of the old `C` (0 overwrites it, 1 accumulates into it).
    pub beta: f32,
    /// The result.
    pub c: MatMut<'a>,
}

/// `(rows, cols, row stride, col stride)` of `op(m)` over `m`'s row-major storage.
fn oriented(m: &MatRef<'_>, op: Op) -> (usize, usize, isize, isize) {
    match op {
        Op::N => (m.rows, m.cols, m.cols as isize, 1),
        Op::T => (m.cols, m.rows, 1, m.cols as isize),
    }
}

impl Gemm<'_> {
    /// `(m, k, n)` after checking that the operands fit together and into `C`.
    pub fn dims(&self) -> Result<(usize, usize, usize), ShapeError> {
        let (m, k, _, _) = oriented(&self.a, self.op_a);
        let (k2, n, _, _) = oriented(&self.b, self.op_b);
        if k != k2 {
            return Err(ShapeError::Value {
                what: "matrix product",
                reason: format!("op(A) is {m}x{k} but op(B) is {k2}x{n}"),
            });
        }
        if self.c.rows != m || self.c.cols != n {
            return Err(ShapeError::Value {
                what: "matrix product",
                reason: format!(
                    "the result is {m}x{n} but C is {}x{}",
                    self.c.rows, self.c.cols
                ),
            });
        }
        Ok((m, k, n))
    }
}

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// A pointer into `C` that worker threads write disjoint column blocks through.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the threads given a `SharedOut` write disjoint column ranges of one
// matrix (see `gemm_cpu`), and the matrix outlives the parallel section.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The CPU product: `matrixmultiply`'s packed SIMD kernels. A large product is
/// split among `pool`'s threads along the longer side of `C`: by column blocks
/// when `C` is wide (each thread then packs only its share of `B`, as the forward
/// pass `x·W` needs), by row blocks when it is tall. No two threads write the same
/// element, and each element is summed in the same order as on one thread.
pub(crate) fn gemm_cpu(g: Gemm<'_>, pool: Option<&rayon::ThreadPool>) -> Result<(), ShapeError> {
    let (m, k, n) = g.dims()?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (_, _, rsa, csa) = oriented(&g.a, g.op_a);
    let (_, _, rsb, csb) = oriented(&g.b, g.op_b);
    let (alpha, beta, a, b) = (g.alpha, g.beta, g.a.data, g.b.data);
    // Rows `row0 .. row0 + rows` and columns `col0 .. col0 + cols` of C, at `c`.
    let block = |row0: usize, rows: usize, col0: usize, cols: usize, c: *mut f32| {
        // SAFETY: `dims` checked that op(A) is m x k, op(B) is k x n and C is m x n
        // over slices of exactly those sizes. Row `row0` of op(A) starts at offset
        // `row0 * rsa` and column `col0` of op(B) at `col0 * csb`; the kernel reads
        // `rows x k` and `k x cols` from there with the given strides, which stays
        // inside `a` and `b`. `c` points at C[row0][col0] and the kernel writes
        // `rows x cols` elements with row stride n, inside C; callers hand each
        // thread a block no other thread writes.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                cols,
                alpha,
                a.as_ptr().offset(row0 as isize * rsa),
                rsa,
                csa,
                b.as_ptr().offset(col0 as isize * csb),
                rsb,
                csb,
                beta,
                c,
                n as isize,
                1,
            );
        }
    };
    let threads = pool.map_or(1, rayon::ThreadPool::current_num_threads);
    let c = SharedOut(g.c.data.as_mut_ptr());
    match pool {
        Some(pool)
            if m * n * k >= PARALLEL_MIN_FLOPS && threads > 1 && n >= m && n >= 16 * threads =>
        {
            // Column blocks, a multiple of 16 wide so the kernels' panels stay whole.
            let per = n.div_ceil(threads).next_multiple_of(16);
            pool.install(|| {
                (0..n.div_ceil(per)).into_par_iter().for_each(|i| {
                    let col0 = i * per;
                    block(0, m, col0, per.min(n - col0), c.at(col0));
                });
            });
        }
        Some(pool) if m * n * k >= PARALLEL_MIN_FLOPS && threads > 1 && m >= 2 * threads => {
            let per = m.div_ceil(threads);
            pool.install(|| {
                (0..m.div_ceil(per)).into_par_iter().for_each(|i| {
                    let row0 = i * per;
                    block(row0, per.min(m - row0), 0, n, c.at(row0 * n));
                });
            });
        }
        _ => block(0, m, 0, n, c.at(0)),
    }
    Ok(())
}

/// The derivative that stands in for the spike's step function in the backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surrogate {
    /// `1 / (1 + slope·|x|)²` (Zenke & Ganguli's SuperSpike; snnTorch `fast_sigmoid`).
    FastSigmoid {
        /// Steepness (snnTorch's default is 25).
        slope: f32,
    },
    /// `(α/2) / (1 + (π/2·α·x)²)` (snnTorch `atan`).
    Arctan {
        /// Width parameter (snnTorch's default is 2).
        alpha: f32,
    },
}

impl Default for Surrogate {
    fn default() -> Self {
        Self::FastSigmoid { slope: 25.0 }
    }
}

impl Surrogate {
    /// σ'(x), where `x = v − θ`.
    #[inline(always)]
    pub fn grad(self, x: f32) -> f32 {
        match self {
            Self::FastSigmoid { slope } => {
                let d = 1.0 + slope * x.abs();
                1.0 / (d * d)
            }
            Self::Arctan { alpha } => {
                let z = std::f32::consts::FRAC_PI_2 * alpha * x;
                0.5 * alpha / (1.0 + z * z)
            }
        }
    }
}

/// The constants of a batched LIF step; see the module docs for the equations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifDense {
    /// Membrane decay per step, `β = e^{−dt/τ}`.
    pub beta: f32,
    /// Firing threshold θ.
    pub threshold: f32,
    /// Spike derivative for the backward pass.
    pub surrogate: Surrogate,
}

/// Buffers of one forward step; all the same length.
#[derive(Debug)]
pub struct LifForward<'a> {
    /// `I_t`, this step's input current.
    pub input: &'a [f32],
    /// `v'_{t−1}` in, `v'_t` out: the membrane after reset.
    pub v: &'a mut [f32],
    /// `v_t` out: the membrane before reset (what the backward pass needs).
    pub v_pre: &'a mut [f32],
    /// `s_t` out: 1 where a neuron fired, else 0.
    pub spikes: &'a mut [f32],
}

impl LifForward<'_> {
    /// The neurons in the step, after checking that every buffer holds that many.
    pub fn len_checked(&self) -> Result<usize, ShapeError> {
        let n = self.input.len();
        same_lengths(
            "LIF forward buffer",
            n,
            &[self.v.len(), self.v_pre.len(), self.spikes.len()],
        )?;
        Ok(n)
    }
}

/// Buffers of one backward step; all the same length.
#[derive(Debug)]
pub struct LifBackward<'a> {
    /// `v_t` saved by the forward pass.
    pub v_pre: &'a [f32],
    /// `s_t` saved by the forward pass.
    pub spikes: &'a [f32],
    /// `∂L/∂s_t` from the layer above (and the loss).
    pub grad_spikes: &'a [f32],
    /// `a_t` in, `a_{t−1}` out: the gradient carried through the membrane.
    pub carry: &'a mut [f32],
    /// `∂L/∂I_t` out.
    pub grad_input: &'a mut [f32],
}

impl LifBackward<'_> {
    /// The neurons in the step, after checking that every buffer holds that many.
    pub fn len_checked(&self) -> Result<usize, ShapeError> {
        let n = self.v_pre.len();
        same_lengths(
            "LIF backward buffer",
            n,
            &[
                self.spikes.len(),
                self.grad_spikes.len(),
                self.carry.len(),
                self.grad_input.len(),
            ],
        )?;
        Ok(n)
    }
}

/// Below this many neurons an element-wise step runs on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;
/// Elements per parallel task of an element-wise step.
const ELEMENT_CHUNK: usize = 1 << 13;

/// Checks that every buffer of an element-wise step has the same length.
fn same_lengths(what: &'static str, expected: usize, lengths: &[usize]) -> Result<(), ShapeError> {
    match lengths.iter().find(|&&l| l != expected) {
        Some(&got) => Err(ShapeError::Length {
            what,
            expected,
            got,
        }),
        None => Ok(()),
    }
}

/// One block of the forward step, branch-free so it vectorises (AVX-512, AVX2 or
/// baseline, picked at run time; no fused multiply-add, so the numbers are the
/// `LIFNeuron` plugin's: `β·v + I`, reset to zero).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2", "x86_64+avx2"))]
fn forward_block(
    beta: f32,
    threshold: f32,
    input: &[f32],
    v: &mut [f32],
    v_pre: &mut [f32],
    spikes: &mut [f32],
) {
    let outputs = v.iter_mut().zip(v_pre.iter_mut()).zip(spikes.iter_mut());
    for (&i, ((v, p), s)) in input.iter().zip(outputs) {
        let x = beta * *v + i;
        let fired = x >= threshold;
        *p = x;
        *s = if fired { 1.0 } else { 0.0 };
        *v = if fired { 0.0 } else { x };
    }
}

/// One block of the backward step, one loop per surrogate so each vectorises.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2", "x86_64+avx2"))]
fn backward_block(
    lif: LifDense,
    v_pre: &[f32],
    spikes: &[f32],
    grad_spikes: &[f32],
    carry: &mut [f32],
    grad_input: &mut [f32],
) {
    let (beta, threshold) = (lif.beta, lif.threshold);
    let inputs = v_pre.iter().zip(spikes).zip(grad_spikes);
    let outputs = carry.iter_mut().zip(grad_input.iter_mut());
    match lif.surrogate {
        Surrogate::FastSigmoid { slope } => {
            for (((&p, &s), &g), (c, gi)) in inputs.zip(outputs) {
                let d = 1.0 + slope * (p - threshold).abs();
                let dv = g * (1.0 / (d * d)) + *c * (1.0 - s);
                *gi = dv;
                *c = beta * dv;
            }
        }
        Surrogate::Arctan { alpha } => {
            for (((&p, &s), &g), (c, gi)) in inputs.zip(outputs) {
                let z = std::f32::consts::FRAC_PI_2 * alpha * (p - threshold);
                let dv = g * (0.5 * alpha / (1.0 + z * z)) + *c * (1.0 - s);
                *gi = dv;
                *c = beta * dv;
            }
        }
    }
}

pub(crate) fn lif_forward_cpu(
    lif: LifDense,
    f: LifForward<'_>,
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), ShapeError> {
    let n = f.len_checked()?;
    let run = |input: &[f32], v: &mut [f32], v_pre: &mut [f32], s: &mut [f32]| {
        forward_block(lif.beta, lif.threshold, input, v, v_pre, s);
    };
    match pool {
        Some(pool) if n >= PARALLEL_MIN_ELEMENTS => pool.install(|| {
            f.input
                .par_chunks(ELEMENT_CHUNK)
                .zip(f.v.par_chunks_mut(ELEMENT_CHUNK))
                .zip(f.v_pre.par_chunks_mut(ELEMENT_CHUNK))
                .zip(f.spikes.par_chunks_mut(ELEMENT_CHUNK))
                .for_each(|(((i, v), p), s)| run(i, v, p, s));
        }),
        _ => run(f.input, f.v, f.v_pre, f.spikes),
    }
    Ok(())
}

pub(crate) fn lif_backward_cpu(
    lif: LifDense,
    b: LifBackward<'_>,
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), ShapeError> {
    let n = b.len_checked()?;
    let run = |v_pre: &[f32], s: &[f32], gs: &[f32], carry: &mut [f32], gi: &mut [f32]| {
        backward_block(lif, v_pre, s, gs, carry, gi);
    };
    match pool {
        Some(pool) if n >= PARALLEL_MIN_ELEMENTS => pool.install(|| {
            b.v_pre
                .par_chunks(ELEMENT_CHUNK)
                .zip(b.spikes.par_chunks(ELEMENT_CHUNK))
                .zip(b.grad_spikes.par_chunks(ELEMENT_CHUNK))
                .zip(b.carry.par_chunks_mut(ELEMENT_CHUNK))
                .zip(b.grad_input.par_chunks_mut(ELEMENT_CHUNK))
                .for_each(|((((p, s), g), c), i)| run(p, s, g, c, i));
        }),
        _ => run(b.v_pre, b.spikes, b.grad_spikes, b.carry, b.grad_input),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, CpuBackend};

    /// The reference product, written out the way the operation is defined.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        a: &[f32],
        ar: usize,
        ac: usize,
        ta: Op,
        b: &[f32],
        br: usize,
        bc: usize,
        tb: Op,
    ) -> Vec<f32> {
        let at = |i: usize, j: usize| match ta {
            Op::N => a[i * ac + j],
            Op::T => a[j * ac + i],
        };
        let bt = |i: usize, j: usize| match tb {
            Op::N => b[i * bc + j],
            Op::T => b[j * bc + i],
        };
        let (m, k) = if ta == Op::N { (ar, ac) } else { (ac, ar) };
        let n = if tb == Op::N { bc } else { br };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn gemm_matches_the_definition_for_every_transpose_serial_and_parallel() {
        let (m, k, n) = (130, 77, 45);
        let parallel = CpuBackend::with_threads(2).unwrap();
        for backend in [CpuBackend::single_threaded(), parallel] {
            for (ta, tb) in [
                (Op::N, Op::N),
                (Op::T, Op::N),
                (Op::N, Op::T),
                (Op::T, Op::T),
            ] {
                let (ar, ac) = if ta == Op::N { (m, k) } else { (k, m) };
                let (br, bc) = if tb == Op::N { (k, n) } else { (n, k) };
                let a = values(ar * ac, 1);
                let b = values(br * bc, 2);
                let mut c = values(m * n, 3);
                let old = c.clone();
                let want: Vec<f32> = naive(&a, ar, ac, ta, &b, br, bc, tb)
                    .iter()
                    .zip(&old)
                    .map(|(p, o)| 0.5 * p + 2.0 * o)
                    .collect();
                backend
                    .gemm(Gemm {
                        alpha: 0.5,
                        a: MatRef::new(&a, ar, ac).unwrap(),
                        op_a: ta,
                        b: MatRef::new(&b, br, bc).unwrap(),
                        op_b: tb,
                        beta: 2.0,
                        c: MatMut::new(&mut c, m, n).unwrap(),
                    })
                    .unwrap();
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-3, "{ta:?}{tb:?}: {x} vs {y}");
                }
            }
        }
    }

    /// Products large enough to be split among threads, by columns (wide C) and by
    /// rows (tall C), give exactly the single-threaded result.
    #[test]
    fn split_products_equal_the_single_threaded_result_bit_for_bit() {
        let parallel = CpuBackend::with_threads(2).unwrap();
        let single = CpuBackend::single_threaded();
        for (m, k, n) in [(64, 300, 530), (530, 300, 64)] {
            let a = values(m * k, 5);
            let b = values(k * n, 6);
            let run = |backend: &CpuBackend| {
                let mut c = vec![0.0; m * n];
                backend
                    .gemm(Gemm {
                        alpha: 1.0,
                        a: MatRef::new(&a, m, k).unwrap(),
                        op_a: Op::N,
                        b: MatRef::new(&b, k, n).unwrap(),
                        op_b: Op::N,
                        beta: 0.0,
                        c: MatMut::new(&mut c, m, n).unwrap(),
                    })
                    .unwrap();
                c
            };
            let (one, two) = (run(&single), run(&parallel));
            assert!(one == two, "{m}x{k}x{n}: threads changed the result");
            let want = naive(&a, m, k, Op::N, &b, k, n, Op::N);
            assert!(
                one.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-2),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn gemm_shape_mismatch_is_an_error() {
        let a = [0.0; 6];
        let b = [0.0; 6];
        let mut c = [0.0; 4];
        let err = CpuBackend::single_threaded()
            .gemm(Gemm {
                alpha: 1.0,
                a: MatRef::new(&a, 2, 3).unwrap(),
                op_a: Op::N,
                b: MatRef::new(&b, 2, 3).unwrap(),
                op_b: Op::N,
                beta: 0.0,
                c: MatMut::new(&mut c, 2, 2).unwrap(),
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("op(A) is 2x3 but op(B) is 2x3"),
            "{err}"
        );
        assert!(MatRef::new(&a, 4, 2).is_err());
    }

    #[test]
    fn lif_forward_fires_resets_and_backward_carries_the_membrane_gradient() {
        let lif = LifDense {
            beta: 0.5,
            threshold: 1.0,
            surrogate: Surrogate::FastSigmoid { slope: 1.0 },
        };
        let b = CpuBackend::single_threaded();
        let mut v = vec![0.0, 1.0];
        let (mut pre, mut s) = (vec![0.0; 2], vec![0.0; 2]);
        b.lif_forward(
            lif,
            LifForward {
                input: &[0.4, 0.6],
                v: &mut v,
                v_pre: &mut pre,
                spikes: &mut s,
            },
        )
        .unwrap();
        assert_eq!(pre, [0.4, 1.1]);
        assert_eq!(s, [0.0, 1.0]);
        assert_eq!(v, [0.4, 0.0]);
        let mut carry = vec![1.0, 1.0];
        let mut gi = vec![0.0; 2];
        b.lif_backward(
            lif,
            LifBackward {
                v_pre: &pre,
                spikes: &s,
                grad_spikes: &[2.0, 2.0],
                carry: &mut carry,
                grad_input: &mut gi,
            },
        )
        .unwrap();
        // Neuron 0: 2·1/(1+0.6)² + 1; neuron 1 fired, so the carry is cut: 2·1/(1+0.1)².
        let want0 = 2.0 / (1.6f32 * 1.6) + 1.0;
        let want1 = 2.0 / (1.1f32 * 1.1);
        assert!(
            (gi[0] - want0).abs() < 1e-6 && (gi[1] - want1).abs() < 1e-6,
            "{gi:?}"
        );
        assert!((carry[0] - 0.5 * want0).abs() < 1e-6, "{carry:?}");
    }

    #[test]
    fn surrogates_peak_at_the_threshold() {
        for s in [
            Surrogate::FastSigmoid { slope: 25.0 },
            Surrogate::Arctan { alpha: 2.0 },
        ] {
            assert!(
                s.grad(0.0) > s.grad(0.1) && s.grad(0.1) > s.grad(1.0),
                "{s:?}"
            );
            assert_eq!(s.grad(0.3), s.grad(-0.3));
        }
    }
}
