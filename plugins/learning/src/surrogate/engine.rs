//! Backpropagation through time for a feed-forward stack of LIF layers with a
//! leaky-integrator (or LIF) output, on whole mini-batches.
//!
//! Layer `l` has weights `W_l` stored `[in, out]` (presynaptic rows, as the layer
//! nodes' projections hold them). The input layer is driven by a constant current
//! (the scaled pixels, every step), so its input `x·W_0` is one product per batch,
//! not one per step, and its weight gradient is `xᵀ·Σ_t ∂L/∂I_t`. Deeper layers take
//! the spikes of the layer below; their products run over all steps at once
//! (`T·B` rows). Every buffer is sized once for the largest batch; a training step
//! allocates nothing.

use evospike_compute::{
    Backend, BackendError, Gemm, LifBackward, LifDense, LifForward, MatMut, MatRef, Op,
};

/// How the output layer turns into class scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readout {
    /// Leaky integrators; the score is the membrane averaged over the steps.
    Membrane,
    /// LIF neurons; the score is the spike count.
    Count,
}

/// The fixed shape of a network and its neurons.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    /// `[inputs, hidden.., outputs]`.
    pub(crate) sizes: Vec<usize>,
    pub(crate) steps: usize,
    pub(crate) lif: LifDense,
    /// Decay of the leaky-integrator output.
    pub(crate) out_beta: f32,
    pub(crate) readout: Readout,
}

impl Shape {
    pub(crate) fn layers(&self) -> usize {
        self.sizes.len() - 1
    }
}

/// Per-layer activations kept for the backward pass.
#[derive(Debug, Default)]
struct LayerBuf {
    /// Input current: `[B, out]` for layer 0 (the same every step), `[T·B, out]` above.
    input: Vec<f32>,
    /// Membrane after reset, `[B, out]`.
    v: Vec<f32>,
    /// Membrane before reset per step, `[T·B, out]`.
    v_pre: Vec<f32>,
    /// Spikes per step, `[T·B, out]`.
    spikes: Vec<f32>,
    /// ∂L/∂spikes per step, `[T·B, out]`.
    grad_spikes: Vec<f32>,
    /// ∂L/∂input per step, `[T·B, out]`.
    grad_input: Vec<f32>,
    /// Membrane gradient carried back through time, `[B, out]`.
    carry: Vec<f32>,
}

/// The buffers of one forward/backward pass for batches of up to `capacity`.
#[derive(Debug)]
pub(crate) struct Workspace {
    capacity: usize,
    layers: Vec<LayerBuf>,
    /// Class scores `[B, classes]`.
    pub(crate) logits: Vec<f32>,
    /// ∂L/∂scores.
    grad_logits: Vec<f32>,
    /// Σ_t ∂L/∂I_t of layer 0, `[B, hidden]`.
    grad_input0: Vec<f32>,
}

impl Workspace {
    pub(crate) fn new(shape: &Shape, capacity: usize) -> Self {
        let t = shape.steps;
        let layers = shape.sizes[1..]
            .iter()
            .enumerate()
            .map(|(l, &n)| LayerBuf {
                input: vec![
                    0.0;
                    if l == 0 {
                        capacity * n
                    } else {
                        t * capacity * n
                    }
                ],
                v: vec![0.0; capacity * n],
                v_pre: vec![0.0; t * capacity * n],
                spikes: vec![0.0; t * capacity * n],
                grad_spikes: vec![0.0; t * capacity * n],
                grad_input: vec![0.0; t * capacity * n],
                carry: vec![0.0; capacity * n],
            })
            .collect();
        let classes = *shape.sizes.last().unwrap_or(&0);
        let first = shape.sizes.get(1).copied().unwrap_or(0);
        Self {
            capacity,
            layers,
            logits: vec![0.0; capacity * classes],
            grad_logits: vec![0.0; capacity * classes],
            grad_input0: vec![0.0; capacity * first],
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The loss hook's view of a batch of `rows` after [`forward`]: the scores
    /// (`[rows, width]`: class scores, or spike counts with a count readout) and
    /// the buffer for ∂L/∂scores that [`backward`] starts from.
    pub(crate) fn scores_and_grad(&mut self, rows: usize) -> (&[f32], &mut [f32]) {
        let width = self.logits.len() / self.capacity.max(1);
        (
            &self.logits[..rows * width],
            &mut self.grad_logits[..rows * width],
        )
    }

    /// Layer `l`'s spikes of the last [`forward`] of `rows` samples, `[T·rows, size]`
    /// step-major.
    pub(crate) fn spikes(&self, l: usize, rows: usize, steps: usize) -> &[f32] {
        let n = self.layers[l].v.len() / self.capacity.max(1);
        &self.layers[l].spikes[..steps * rows * n]
    }
}

pub(crate) fn gemm(
    backend: &dyn Backend,
    (a, a_shape, op_a): (&[f32], (usize, usize), Op),
    (b, b_shape, op_b): (&[f32], (usize, usize), Op),
    beta: f32,
    (c, c_shape): (&mut [f32], (usize, usize)),
) -> Result<(), BackendError> {
    let shape_err = |source| BackendError::Shape {
        backend: "engine",
        source,
    };
    backend.gemm(Gemm {
        alpha: 1.0,
        a: MatRef::new(a, a_shape.0, a_shape.1).map_err(shape_err)?,
        op_a,
        b: MatRef::new(b, b_shape.0, b_shape.1).map_err(shape_err)?,
        op_b,
        beta,
        c: MatMut::new(c, c_shape.0, c_shape.1).map_err(shape_err)?,
    })
}

/// The forward pass of `batch` samples `x` (`[B, inputs]`): fills the workspace and
/// the class scores `ws.logits[..B·classes]`.
pub(crate) fn forward(
    backend: &dyn Backend,
    shape: &Shape,
    weights: &[Vec<f32>],
    x: &[f32],
    batch: usize,
    ws: &mut Workspace,
) -> Result<(), BackendError> {
    let (t_steps, b) = (shape.steps, batch);
    let last = shape.layers() - 1;
    for l in 0..shape.layers() {
        let (n_in, n_out) = (shape.sizes[l], shape.sizes[l + 1]);
        let (below, rest) = ws.layers.split_at_mut(l);
        let buf = &mut rest[0];
        let rows = if l == 0 { b } else { t_steps * b };
        let input = &mut buf.input[..rows * n_out];
        if l == 0 {
            gemm(
                backend,
                (x, (b, n_in), Op::N),
                (&weights[0], (n_in, n_out), Op::N),
                0.0,
                (input, (b, n_out)),
            )?;
        } else {
            let spikes_below = &below[l - 1].spikes[..t_steps * b * n_in];
            gemm(
                backend,
                (spikes_below, (t_steps * b, n_in), Op::N),
                (&weights[l], (n_in, n_out), Op::N),
                0.0,
                (input, (t_steps * b, n_out)),
            )?;
        }
        let v = &mut buf.v[..b * n_out];
        v.fill(0.0);
        let per_step = b * n_out;
        if l == last && shape.readout == Readout::Membrane {
            // Leaky integrators: u_t = β·u_{t−1} + I_t; score = mean_t u_t.
            let logits = &mut ws.logits[..per_step];
            logits.fill(0.0);
            for t in 0..t_steps {
                let i_t = &input[t * per_step..(t + 1) * per_step];
                for ((u, &i), s) in v.iter_mut().zip(i_t).zip(logits.iter_mut()) {
                    *u = shape.out_beta * *u + i;
                    *s += *u;
                }
            }
            let inv = 1.0 / t_steps as f32;
            logits.iter_mut().for_each(|s| *s *= inv);
            continue;
        }
        for t in 0..t_steps {
            let i_t = if l == 0 {
                &input[..per_step]
            } else {
                &input[t * per_step..(t + 1) * per_step]
            };
            let range = t * per_step..(t + 1) * per_step;
            backend.lif_forward(
                shape.lif,
                LifForward {
                    input: i_t,
                    v: &mut *v,
                    v_pre: &mut buf.v_pre[range.clone()],
                    spikes: &mut buf.spikes[range],
                },
            )?;
        }
        if l == last {
            // Spike counts.
            let logits = &mut ws.logits[..per_step];
            logits.fill(0.0);
            for t in 0..t_steps {
                for (s, &k) in logits
                    .iter_mut()
                    .zip(&buf.spikes[t * per_step..(t + 1) * per_step])
                {
                    *s += k;
                }
            }
        }
    }
    Ok(())
}

/// Softmax cross-entropy of the scores against `labels`: writes ∂L/∂scores (mean
/// over the batch) and returns `(summed loss, correct predictions)`.
#[cfg(test)]
pub(crate) fn cross_entropy(classes: usize, labels: &[u32], ws: &mut Workspace) -> (f64, usize) {
    let (scores, grad) = ws.scores_and_grad(labels.len());
    cross_entropy_of(classes, labels, scores, grad)
}

/// `softmax(z / temperature)` into `out`.
pub(crate) fn softmax(z: &[f32], temperature: f32, out: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (o, &z) in out.iter_mut().zip(z) {
        *o = ((z - max) / temperature).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// [`cross_entropy`] on explicit score and gradient buffers (`[B, classes]`).
pub(crate) fn cross_entropy_of(
    classes: usize,
    labels: &[u32],
    scores: &[f32],
    grad: &mut [f32],
) -> (f64, usize) {
    let b = labels.len();
    let inv_b = 1.0 / b as f32;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (i, &y) in labels.iter().enumerate() {
        let z = &scores[i * classes..(i + 1) * classes];
        let g = &mut grad[i * classes..(i + 1) * classes];
        softmax(z, 1.0, g);
        loss -= f64::from(g[y as usize].max(1e-30).ln());
        if argmax(z) == y as usize {
            correct += 1;
        }
        g[y as usize] -= 1.0;
        g.iter_mut().for_each(|g| *g *= inv_b);
    }
    (loss, correct)
}

/// Index of the largest value; the first one on ties (the rule of every readout).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The backward pass after [`forward`] and [`cross_entropy`] on the same batch:
/// writes every layer's weight gradient into `grads` (overwriting).
pub(crate) fn backward(
    backend: &dyn Backend,
    shape: &Shape,
    weights: &[Vec<f32>],
    x: &[f32],
    batch: usize,
    ws: &mut Workspace,
    grads: &mut [Vec<f32>],
) -> Result<(), BackendError> {
    let (t_steps, b) = (shape.steps, batch);
    let last = shape.layers() - 1;
    let classes = shape.sizes[last + 1];
    // ∂L/∂(output input current) per step.
    {
        let buf = &mut ws.layers[last];
        let per_step = b * classes;
        let gl = &ws.grad_logits[..per_step];
        match shape.readout {
            Readout::Membrane => {
                // score = mean_t u_t, u_t = β u_{t−1} + I_t ⇒ g_t = gl/T + β g_{t+1}.
                let inv = 1.0 / t_steps as f32;
                let carry = &mut buf.carry[..per_step];
                carry.fill(0.0);
                for t in (0..t_steps).rev() {
                    let gi = &mut buf.grad_input[t * per_step..(t + 1) * per_step];
                    for ((g, c), &d) in gi.iter_mut().zip(carry.iter_mut()).zip(gl) {
                        *g = d * inv + *c;
                        *c = shape.out_beta * *g;
                    }
                }
            }
            Readout::Count => {
                for t in 0..t_steps {
                    buf.grad_spikes[t * per_step..(t + 1) * per_step].copy_from_slice(gl);
                }
            }
        }
    }
    for l in (0..=last).rev() {
        let (n_in, n_out) = (shape.sizes[l], shape.sizes[l + 1]);
        let per_step = b * n_out;
        let (below, rest) = ws.layers.split_at_mut(l);
        let buf = &mut rest[0];
        let spiking = !(l == last && shape.readout == Readout::Membrane);
        if spiking {
            let carry = &mut buf.carry[..per_step];
            carry.fill(0.0);
            for t in (0..t_steps).rev() {
                let range = t * per_step..(t + 1) * per_step;
                backend.lif_backward(
                    shape.lif,
                    LifBackward {
                        v_pre: &buf.v_pre[range.clone()],
                        spikes: &buf.spikes[range.clone()],
                        grad_spikes: &buf.grad_spikes[range.clone()],
                        carry: &mut *carry,
                        grad_input: &mut buf.grad_input[range],
                    },
                )?;
            }
        }
        let grad_input = &buf.grad_input[..t_steps * per_step];
        if l == 0 {
            // The input current is the same every step: its gradient is the sum.
            let g0 = &mut ws.grad_input0[..per_step];
            g0.copy_from_slice(&grad_input[..per_step]);
            for t in 1..t_steps {
                for (g, &d) in g0
                    .iter_mut()
                    .zip(&grad_input[t * per_step..(t + 1) * per_step])
                {
                    *g += d;
                }
            }
            gemm(
                backend,
                (x, (b, n_in), Op::T),
                (g0, (b, n_out), Op::N),
                0.0,
                (&mut grads[0], (n_in, n_out)),
            )?;
        } else {
            let below = &mut below[l - 1];
            let spikes_below = &below.spikes[..t_steps * b * n_in];
            gemm(
                backend,
                (spikes_below, (t_steps * b, n_in), Op::T),
                (grad_input, (t_steps * b, n_out), Op::N),
                0.0,
                (&mut grads[l], (n_in, n_out)),
            )?;
            gemm(
                backend,
                (grad_input, (t_steps * b, n_out), Op::N),
                (&weights[l], (n_in, n_out), Op::T),
                0.0,
                (
                    &mut below.grad_spikes[..t_steps * b * n_in],
                    (t_steps * b, n_in),
                ),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_compute::{CpuBackend, Surrogate};

    fn shape(readout: Readout) -> Shape {
        Shape {
            sizes: vec![5, 6, 4, 3],
            steps: 7,
            lif: LifDense {
                beta: 0.9,
                threshold: 1.0,
                surrogate: Surrogate::FastSigmoid { slope: 5.0 },
            },
            out_beta: 0.8,
            readout,
        }
    }

    fn pseudo(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    /// With the surrogate standing in for the step function, the loss is piecewise
    /// smooth: a small weight change that flips no spike changes the loss as the
    /// analytic gradient says. The spiking layers' gradients are checked through
    /// the output layer's, where the surrogate plays no part, and through the
    /// gradient of a smooth network (a threshold no neuron reaches).
    #[test]
    fn output_layer_gradients_match_finite_differences() {
        let backend = CpuBackend::single_threaded();
        for readout in [Readout::Membrane, Readout::Count] {
            let s = shape(readout);
            let batch = 4;
            let weights: Vec<Vec<f32>> = (0..s.layers())
                .map(|l| pseudo(s.sizes[l] * s.sizes[l + 1], l as u64 + 1, 1.2))
                .collect();
            let x = pseudo(batch * 5, 99, 1.0)
                .iter()
                .map(|v| v.abs())
                .collect::<Vec<_>>();
            let labels = [0u32, 1, 2, 1];
            let loss_at = |w: &[Vec<f32>]| {
                let mut ws = Workspace::new(&s, batch);
                forward(&backend, &s, w, &x, batch, &mut ws).unwrap();
                cross_entropy(3, &labels, &mut ws).0 / batch as f64
            };
            let mut ws = Workspace::new(&s, batch);
            forward(&backend, &s, &weights, &x, batch, &mut ws).unwrap();
            cross_entropy(3, &labels, &mut ws);
            let mut grads: Vec<Vec<f32>> = weights.iter().map(|w| vec![0.0; w.len()]).collect();
            backward(&backend, &s, &weights, &x, batch, &mut ws, &mut grads).unwrap();
            if readout == Readout::Count {
                // The count readout's loss is flat between spikes: only check that the
                // gradient is finite and reaches every layer.
                for g in &grads {
                    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
                }
                continue;
            }
            let last = s.layers() - 1;
            let eps = 1e-3f32;
            for k in 0..weights[last].len() {
                let mut plus = weights.clone();
                plus[last][k] += eps;
                let mut minus = weights.clone();
                minus[last][k] -= eps;
                let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
                let analytic = f64::from(grads[last][k]);
                assert!(
                    (numeric - analytic).abs() < 1e-3 + 1e-2 * analytic.abs(),
                    "weight {k}: numeric {numeric} analytic {analytic}"
                );
            }
        }
    }

    /// The batched engine against a plain scalar transcription of the equations in
    /// the module docs (one sample, one hidden layer): every weight gradient,
    /// including the surrogate path through the hidden layer, must agree.
    #[test]
    fn hidden_layer_gradients_match_a_scalar_reference() {
        let backend = CpuBackend::with_threads(2).unwrap();
        let s = Shape {
            sizes: vec![4, 5, 3],
            ..shape(Readout::Membrane)
        };
        let (n, h, o, steps) = (4, 5, 3, s.steps);
        let w0 = pseudo(n * h, 3, 1.5);
        let w1 = pseudo(h * o, 4, 1.5);
        let x = [0.9f32, 0.2, 0.7, 0.5];
        let y = 1usize;
        // Reference forward.
        let mut i0 = vec![0.0f32; h];
        for j in 0..h {
            i0[j] = (0..n).map(|i| x[i] * w0[i * h + j]).sum();
        }
        let (mut v, mut u) = (vec![0.0f32; h], vec![0.0f32; o]);
        let (mut v_pre, mut spk) = (vec![vec![0.0f32; h]; steps], vec![vec![0.0f32; h]; steps]);
        let mut logits = vec![0.0f32; o];
        for t in 0..steps {
            for j in 0..h {
                let p = s.lif.beta * v[j] + i0[j];
                v_pre[t][j] = p;
                spk[t][j] = if p >= 1.0 { 1.0 } else { 0.0 };
                v[j] = if p >= 1.0 { 0.0 } else { p };
            }
            for k in 0..o {
                let i1: f32 = (0..h).map(|j| spk[t][j] * w1[j * o + k]).sum();
                u[k] = s.out_beta * u[k] + i1;
                logits[k] += u[k] / steps as f32;
            }
        }
        assert!(
            spk.iter().flatten().any(|&v| v > 0.0),
            "the reference must spike"
        );
        // Reference backward.
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
        let gl: Vec<f32> = (0..o)
            .map(|k| (logits[k] - max).exp() / z - if k == y { 1.0 } else { 0.0 })
            .collect();
        let (mut g_out, mut dw1) = (vec![0.0f32; o], vec![0.0f32; h * o]);
        let mut ds = vec![vec![0.0f32; h]; steps];
        for t in (0..steps).rev() {
            for k in 0..o {
                g_out[k] = gl[k] / steps as f32 + s.out_beta * g_out[k];
            }
            for j in 0..h {
                for k in 0..o {
                    dw1[j * o + k] += spk[t][j] * g_out[k];
                }
                ds[t][j] = (0..o).map(|k| w1[j * o + k] * g_out[k]).sum();
            }
        }
        let (mut carry, mut di_sum) = (vec![0.0f32; h], vec![0.0f32; h]);
        for t in (0..steps).rev() {
            for j in 0..h {
                let dv = ds[t][j] * s.lif.surrogate.grad(v_pre[t][j] - 1.0)
                    + carry[j] * (1.0 - spk[t][j]);
                di_sum[j] += dv;
                carry[j] = s.lif.beta * dv;
            }
        }
        let dw0: Vec<f32> = (0..n * h).map(|ij| x[ij / h] * di_sum[ij % h]).collect();
        // The engine.
        let weights = vec![w0, w1];
        let mut ws = Workspace::new(&s, 1);
        forward(&backend, &s, &weights, &x, 1, &mut ws).unwrap();
        cross_entropy(o, &[y as u32], &mut ws);
        let mut grads: Vec<Vec<f32>> = weights.iter().map(|w| vec![0.0; w.len()]).collect();
        backward(&backend, &s, &weights, &x, 1, &mut ws, &mut grads).unwrap();
        for (got, want) in [(&grads[0], &dw0), (&grads[1], &dw1)] {
            for (a, b) in got.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
            }
        }
        assert!(
            dw0.iter().any(|&g| g != 0.0),
            "the surrogate path must carry gradient"
        );
    }
}
