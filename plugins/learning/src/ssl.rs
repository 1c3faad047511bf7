//! `SSL`: self-supervised training of a LIF hidden layer by a contrastive loss on
//! spike counts, then a linear probe.
//!
//! Every sample is shown twice, as two independently augmented views — a random
//! shift of up to `shift` pixels, pixel dropout with probability `dropout`, and
//! independent encoder noise (Gaussian, σ = `noise`, added to the input current and
//! clipped to \[0, 1\]). The hidden layer's spike counts over the presentation are
//! the representation `z`; the loss is NT-Xent (SimCLR, Chen et al. 2020) over
//! the `2B` views of a batch:
//!
//! ```text
//! c_i = z_i − mean_j z_j          (centred over the batch: counts are never negative,
//!                                  so uncentred ones would all point the same way)
//! ẑ_i = c_i / √(‖c_i‖² + 1)      (smooth near c = 0)
//! s_ij = ẑ_i·ẑ_j / τ
//! ℓ_i = −s_{i,p(i)} + log Σ_{j≠i} e^{s_ij}     p(i): the other view of the same sample
//! L   = mean_i ℓ_i
//! ```
//!
//! Its gradient with respect to the counts enters the surrogate-gradient engine
//! through its loss hook, exactly where the cross-entropy gradient enters for
//! supervised training; the forward and backward passes through time are the
//! engine's. No label is used. The progress "accuracy" is the contrastive top-1:
//! the fraction of views whose most similar other view is their pair.
//!
//! After every epoch a **linear probe** is fitted on the frozen layer: softmax
//! regression from the output layer's inputs to the classes, on a seeded
//! `label_fraction` of the labelled training samples. The probe *is* the model's
//! output layer — a `LeakyIntegrator` whose membrane, summed over the steps, is the
//! class score — so the saved model is an ordinary feed-forward model that
//! `evospike eval` and layer nodes run. (Summed over the steps, that membrane is
//! linear in the weights: `score_c = Σ_k W_kc·f_k` with `f_k = Σ_t Σ_{τ≤t} β^{t−τ}
//! s_k,τ`; the probe is fitted on `f`, scaled per feature for the optimizer and
//! folded back into the weights.)
//!
//! With `lr 0` the hidden weights stay at their seeded random initial values: the
//! random-features baseline of the same architecture, probe included.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `hidden` | `[800]` | the hidden layer (exactly one) |
//! | `steps`, `beta`, `threshold`, `slope` | 25, 0.95, 1, 25 | as `SurrogateGradient` (fast-sigmoid surrogate) |
//! | `epochs` | 20 | contrastive epochs |
//! | `batch` | 128 | samples per batch (`2·batch` views) |
//! | `lr` | 0.005 | Adam learning rate, cosine schedule; 0 keeps the random weights |
//! | `weight_decay` | 0 | decoupled weight decay |
//! | `temperature` | 0.5 | NT-Xent τ |
//! | `shift` | max(1, side / 14) | shift augmentation in pixels (images; 0 = off) |
//! | `dropout` | 0.2 | pixel dropout probability |
//! | `noise` | 0.1 | encoder noise σ |
//! | `label_fraction` | 1.0 | fraction of the labels the probe is fitted on, in (0, 1] |
//! | `probe_epochs` | 50 | probe epochs (Adam, batch 256, lr 0.01) |
//! | `head` | 64 | projection head dimensions (0: the loss on the counts directly) |
//! | `threads` | 0 | CPU threads (0: every core) |

use std::time::Instant;

use evospike_compute::{backend_from_env, Backend, CpuBackend, LifDense, Op, Surrogate};
use evospike_plugin_api::{
    Checkpoint, Control, Dataset, EpochReport, Learner, LearnerSpec, NetworkSpec, Params,
    PluginError, Progress, Tensor,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::surrogate::adam::{Adam, Moments};
use crate::surrogate::engine::{self, gemm, Readout, Shape, Workspace};
use crate::surrogate::{self as sg, param_name, shift_image, sub_seed, tau_for, transpose, DT_MS};

/// The plugin and learner name.
pub const NAME: &str = "SSL";

/// The learner's parameters; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslConfig {
    /// The hidden layer size (one layer).
    pub hidden: Vec<usize>,
    /// Steps per sample.
    pub steps: u32,
    /// Membrane decay per step.
    pub beta: f32,
    /// Firing threshold.
    pub threshold: f32,
    /// Fast-sigmoid surrogate steepness.
    pub slope: f32,
    /// Contrastive epochs.
    pub epochs: u32,
    /// Samples per batch.
    pub batch: usize,
    /// Adam learning rate (0: keep the random weights).
    pub lr: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// NT-Xent temperature.
    pub temperature: f32,
    /// Shift augmentation in pixels (default max(1, side / 14)).
    pub shift: Option<u32>,
    /// Pixel dropout probability.
    pub dropout: f32,
    /// Encoder noise σ.
    pub noise: f32,
    /// Fraction of the labels the probe sees.
    pub label_fraction: f64,
    /// Probe epochs.
    pub probe_epochs: u32,
    /// Projection head dimensions (0: the loss on the counts themselves).
    pub head: usize,
    /// CPU threads (0: all).
    pub threads: usize,
}

impl Default for SslConfig {
    fn default() -> Self {
        Self {
            hidden: vec![800],
            steps: 25,
            beta: 0.95,
            threshold: 1.0,
            slope: 25.0,
            epochs: 20,
            batch: 128,
            lr: 5e-3,
            weight_decay: 0.0,
            temperature: 0.5,
            shift: None,
            dropout: 0.2,
            noise: 0.1,
            label_fraction: 1.0,
            probe_epochs: 50,
            head: 64,
            threads: 0,
        }
    }
}

impl SslConfig {
    /// Parses and checks a parameter map.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let config: Self = serde_json::from_value(serde_json::Value::Object(params.clone()))
            .map_err(|e| PluginError::invalid_parameter(NAME, param_name(&e), e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), PluginError> {
        let bad =
            |param: &str, reason: String| Err(PluginError::invalid_parameter(NAME, param, reason));
        if self.hidden.len() != 1 || self.hidden[0] == 0 {
            return bad(
                "hidden",
                format!(
                    "needs exactly one layer of > 0 neurons; got {:?}",
                    self.hidden
                ),
            );
        }
        if self.steps == 0 {
            return bad("steps", "must be > 0".into());
        }
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return bad("beta", format!("must be in (0, 1), got {}", self.beta));
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return bad("threshold", format!("must be > 0, got {}", self.threshold));
        }
        if !(self.slope > 0.0 && self.slope.is_finite()) {
            return bad("slope", format!("must be > 0, got {}", self.slope));
        }
        if self.epochs == 0 {
            return bad("epochs", "must be > 0".into());
        }
        if self.batch < 2 {
            return bad("batch", format!("must be >= 2, got {}", self.batch));
        }
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be >= 0, got {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                format!("must be > 0, got {}", self.temperature),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return bad("noise", format!("must be >= 0, got {}", self.noise));
        }
        if !(self.label_fraction > 0.0 && self.label_fraction <= 1.0) {
            return bad(
                "label_fraction",
                format!("must be in (0, 1], got {}", self.label_fraction),
            );
        }
        if self.probe_epochs == 0 {
            return bad("probe_epochs", "must be > 0".into());
        }
        Ok(())
    }
}

fn failed(e: impl std::fmt::Display) -> PluginError {
    PluginError::failed(NAME, e.to_string())
}

/// Running sums of a (possibly interrupted) epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Running {
    loss: f64,
    correct: u64,
    seen: u64,
    seconds: f64,
}

/// The NT-Xent buffers, sized for `2B` views of `h` counts.
#[derive(Debug)]
struct NtXent {
    mean: Vec<f32>,
    zhat: Vec<f32>,
    norms: Vec<f32>,
    sims: Vec<f32>,
    ghat: Vec<f32>,
}

impl NtXent {
    fn new(views: usize, h: usize) -> Self {
        Self {
            mean: vec![0.0; h],
            zhat: vec![0.0; views * h],
            norms: vec![0.0; views],
            sims: vec![0.0; views * views],
            ghat: vec![0.0; views * h],
        }
    }

    /// The loss of the module docs for `2B` count vectors `z` (`[2B, h]`, view
    /// `i` paired with `i ± B`): writes ∂L/∂z into `grad` and returns
    /// `(loss summed over the views, views whose nearest other view is their pair)`.
    fn loss(
        &mut self,
        backend: &dyn Backend,
        tau: f32,
        z: &[f32],
        grad: &mut [f32],
        h: usize,
    ) -> Result<(f64, usize), PluginError> {
        let n = z.len() / h;
        let half = n / 2;
        let mean = &mut self.mean[..h];
        mean.fill(0.0);
        for row in z.chunks_exact(h) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v / n as f32;
            }
        }
        let zhat = &mut self.zhat[..n * h];
        for ((row, out), norm) in z
            .chunks_exact(h)
            .zip(zhat.chunks_exact_mut(h))
            .zip(&mut self.norms[..n])
        {
            for ((o, &v), &m) in out.iter_mut().zip(row).zip(mean.iter()) {
                *o = v - m;
            }
            *norm = (out.iter().map(|v| v * v).sum::<f32>() + 1.0).sqrt();
            for o in out.iter_mut() {
                *o /= *norm;
            }
        }
        let sims = &mut self.sims[..n * n];
        gemm(
            backend,
            (zhat, (n, h), Op::N),
            (zhat, (n, h), Op::T),
            0.0,
            (sims, (n, n)),
        )
        .map_err(failed)?;
        // Row i becomes G_ij = (P_ij − [j = p(i)]) / n, with G_ii = 0.
        let (mut loss, mut correct) = (0.0f64, 0usize);
        let inv_n = 1.0 / n as f32;
        for i in 0..n {
            let pair = if i < half { i + half } else { i - half };
            let row = &mut sims[i * n..(i + 1) * n];
            let mut max = f32::NEG_INFINITY;
            for (j, s) in row.iter_mut().enumerate() {
                *s /= tau;
                if j != i && *s > max {
                    max = *s;
                }
            }
            // Nearest other view (the first on ties).
            let mut nearest = usize::MAX;
            for (j, &s) in row.iter().enumerate() {
                if j != i && (nearest == usize::MAX || s > row[nearest]) {
                    nearest = j;
                }
            }
            correct += usize::from(nearest == pair);
            let mut sum = 0.0f32;
            for (j, s) in row.iter_mut().enumerate() {
                *s = if j == i { 0.0 } else { (*s - max).exp() };
                sum += *s;
            }
            let positive = row[pair];
            loss += f64::from(sum.ln() - positive.max(1e-30).ln());
            for s in row.iter_mut() {
                *s *= inv_n / sum;
            }
            row[pair] -= inv_n;
        }
        // Symmetrise: ∂L/∂ẑ_i = Σ_j (G_ij + G_ji) ẑ_j / τ.
        for i in 0..n {
            for j in i + 1..n {
                let s = sims[i * n + j] + sims[j * n + i];
                sims[i * n + j] = s;
                sims[j * n + i] = s;
            }
        }
        let ghat = &mut self.ghat[..n * h];
        gemm(
            backend,
            (sims, (n, n), Op::N),
            (zhat, (n, h), Op::N),
            0.0,
            (ghat, (n, h)),
        )
        .map_err(failed)?;
        // Through the normalisation, ∂L/∂c = (g − ẑ(ẑ·g)) / n, then through the
        // centring, ∂L/∂z = ∂L/∂c − mean over the views of ∂L/∂c.
        let mean = &mut self.mean[..h];
        mean.fill(0.0);
        for (((g_out, g), zh), &norm) in grad
            .chunks_exact_mut(h)
            .zip(ghat.chunks_exact(h))
            .zip(zhat.chunks_exact(h))
            .zip(&self.norms[..n])
        {
            let dot: f32 = g.iter().zip(zh).map(|(a, b)| a * b).sum::<f32>() / tau;
            for (((o, &g), &zh), m) in g_out.iter_mut().zip(g).zip(zh).zip(mean.iter_mut()) {
                *o = (g / tau - zh * dot) / norm;
                *m += *o / n as f32;
            }
        }
        for row in grad.chunks_exact_mut(h) {
            for (o, &m) in row.iter_mut().zip(mean.iter()) {
                *o -= m;
            }
        }
        Ok((loss, correct))
    }
}

/// The projection head (SimCLR): the loss is taken on `c·H`, the batch-centred
/// counts projected to `head` dimensions, while the counts stay the
/// representation the probe reads.
#[derive(Debug)]
struct Head {
    /// `[hidden, head]`.
    w: Vec<f32>,
    grad: Vec<f32>,
    moments: Moments,
    centred: Vec<f32>,
    projected: Vec<f32>,
    grad_projected: Vec<f32>,
    mean: Vec<f32>,
}

impl Head {
    fn new(views: usize, h: usize, dims: usize, rng: &mut StdRng) -> Self {
        let bound = 1.0 / (h as f32).sqrt();
        Self {
            w: (0..h * dims)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
            grad: vec![0.0; h * dims],
            moments: Moments::zeros(h * dims),
            centred: vec![0.0; views * h],
            projected: vec![0.0; views * dims],
            grad_projected: vec![0.0; views * dims],
            mean: vec![0.0; h],
        }
    }

    /// NT-Xent on the projected counts `z` (`[n, h]`): writes ∂L/∂z and the head's
    /// own gradient.
    fn loss(
        &mut self,
        backend: &dyn Backend,
        nt: &mut NtXent,
        tau: f32,
        z: &[f32],
        grad_z: &mut [f32],
        h: usize,
    ) -> Result<(f64, usize), PluginError> {
        let n = z.len() / h;
        let d = self.w.len() / h;
        let centred = &mut self.centred[..n * h];
        centre(z, centred, &mut self.mean, h);
        let projected = &mut self.projected[..n * d];
        gemm(
            backend,
            (centred, (n, h), Op::N),
            (&self.w, (h, d), Op::N),
            0.0,
            (projected, (n, d)),
        )
        .map_err(failed)?;
        let grad_p = &mut self.grad_projected[..n * d];
        let result = nt.loss(backend, tau, projected, grad_p, d)?;
        gemm(
            backend,
            (centred, (n, h), Op::T),
            (grad_p, (n, d), Op::N),
            0.0,
            (&mut self.grad, (h, d)),
        )
        .map_err(failed)?;
        gemm(
            backend,
            (grad_p, (n, d), Op::N),
            (&self.w, (h, d), Op::T),
            0.0,
            (grad_z, (n, h)),
        )
        .map_err(failed)?;
        // Through the centring.
        let mean = &mut self.mean[..h];
        mean.fill(0.0);
        for row in grad_z.chunks_exact(h) {
            for (m, &g) in mean.iter_mut().zip(row) {
                *m += g / n as f32;
            }
        }
        for row in grad_z.chunks_exact_mut(h) {
            for (g, &m) in row.iter_mut().zip(mean.iter()) {
                *g -= m;
            }
        }
        Ok(result)
    }
}

/// `out = z − mean over the rows of z` (`[n, h]`); `mean` is a buffer of `h`.
fn centre(z: &[f32], out: &mut [f32], mean: &mut [f32], h: usize) {
    let n = z.len() / h;
    mean.fill(0.0);
    for row in z.chunks_exact(h) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v / n as f32;
        }
    }
    for (row, o) in z.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        for ((o, &v), &m) in o.iter_mut().zip(row).zip(mean.iter()) {
            *o = v - m;
        }
    }
}

/// The `SSL` learner; see the module docs.
pub struct Ssl {
    spec: LearnerSpec,
    config: SslConfig,
    network: NetworkSpec,
    /// `[inputs, hidden]` with a count readout: the contrastive network.
    shape: Shape,
    shift: u32,
    /// `[in, hidden]`.
    weights: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    moments: Vec<Moments>,
    adam: Adam,
    /// The probe folded into output weights, `[hidden, classes]`.
    probe: Vec<f32>,
    step: u64,
    epoch: u32,
    batch: u32,
    running: Running,
    ws: Workspace,
    nt: NtXent,
    head: Option<Head>,
    /// Two views per sample, `[2B, inputs]`.
    x: Vec<f32>,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Ssl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssl")
            .field("sizes", &self.shape.sizes)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Ssl {
    /// A fresh learner: seeded fan-in-scaled initial weights, a zero probe.
    pub fn new(spec: &LearnerSpec) -> Result<Self, PluginError> {
        let config = SslConfig::from_params(&spec.params)?;
        if spec.input_size == 0 || spec.classes.len() < 2 {
            return Err(PluginError::invalid_parameter(
                NAME,
                "spec",
                format!(
                    "needs inputs and at least two classes; got {} inputs, {} classes",
                    spec.input_size,
                    spec.classes.len()
                ),
            ));
        }
        let backend: Box<dyn Backend> = if config.threads == 0 {
            backend_from_env().map_err(failed)?
        } else {
            Box::new(CpuBackend::with_threads(config.threads).map_err(failed)?)
        };
        let hidden = config.hidden[0];
        let tau = tau_for(config.beta);
        let lif = LifDense {
            beta: evospike_neuron::membrane_decay(DT_MS, tau),
            threshold: config.threshold,
            surrogate: Surrogate::FastSigmoid {
                slope: config.slope,
            },
        };
        let shape = Shape {
            sizes: vec![spec.input_size, hidden],
            steps: config.steps as usize,
            lif,
            out_beta: lif.beta,
            readout: Readout::Count,
        };
        // The model: the same hidden layer under a leaky-integrator probe, exactly
        // what SurrogateGradient writes for one hidden layer.
        let as_model = sg::Config {
            hidden: config.hidden.clone(),
            steps: config.steps,
            beta: config.beta,
            threshold: config.threshold,
            ..sg::Config::default()
        };
        let model_shape = Shape {
            sizes: vec![spec.input_size, hidden, spec.classes.len()],
            readout: Readout::Membrane,
            ..shape.clone()
        };
        let network = sg::network_spec(spec, &as_model, tau, &model_shape);
        network
            .validate()
            .map_err(|e| PluginError::invalid_parameter(NAME, "spec", e))?;
        let shift = config.shift.unwrap_or_else(|| match spec.input_shape[..] {
            [h, w] => (h.min(w) / 14).max(1) as u32,
            _ => 0,
        });
        let mut rng = StdRng::seed_from_u64(sub_seed(spec.seed, &[0]));
        let bound = 1.0 / (spec.input_size as f32).sqrt();
        let weights = vec![(0..spec.input_size * hidden)
            .map(|_| rng.random_range(-bound..bound))
            .collect::<Vec<f32>>()];
        let views = 2 * config.batch;
        Ok(Self {
            grads: vec![vec![0.0; spec.input_size * hidden]],
            moments: vec![Moments::zeros(spec.input_size * hidden)],
            adam: Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: config.weight_decay,
            },
            probe: vec![0.0; hidden * spec.classes.len()],
            ws: Workspace::new(&shape, views),
            nt: NtXent::new(views, config.head.max(hidden)),
            head: (config.head > 0).then(|| {
                let mut rng = StdRng::seed_from_u64(sub_seed(spec.seed, &[5]));
                Head::new(views, hidden, config.head, &mut rng)
            }),
            x: vec![0.0; views * spec.input_size],
            spec: spec.clone(),
            network,
            shift,
            weights,
            config,
            shape,
            step: 0,
            epoch: 0,
            batch: 0,
            running: Running::default(),
            backend,
        })
    }

    fn check_data(&self, data: &Dataset<'_>) -> Result<(), PluginError> {
        if data.num_inputs() != self.spec.input_size {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                format!(
                    "samples have {} values but the network takes {}",
                    data.num_inputs(),
                    self.spec.input_size
                ),
            ));
        }
        if data.num_classes() > self.spec.classes.len() {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                format!(
                    "the data has {} classes but the network {}",
                    data.num_classes(),
                    self.spec.classes.len()
                ),
            ));
        }
        Ok(())
    }

    fn learning_rate(&self, batch: u32, batches: u32) -> f32 {
        let done = (f64::from(self.epoch) + f64::from(batch) / f64::from(batches.max(1)))
            / f64::from(self.config.epochs);
        (f64::from(self.config.lr) * 0.5 * (1.0 + (std::f64::consts::PI * done.min(1.0)).cos()))
            as f32
    }

    /// Writes two augmented views of each sample of `indices`: the first views in
    /// rows `0..b`, the second in rows `b..2b`.
    fn views(&mut self, data: &Dataset<'_>, indices: &[usize], rng: &mut StdRng) {
        let n = self.spec.input_size;
        let b = indices.len();
        let (dropout, noise) = (self.config.dropout, self.config.noise);
        let k = i64::from(self.shift);
        for v in 0..2 {
            let rows = &mut self.x[v * b * n..(v + 1) * b * n];
            for (dst, &i) in rows.chunks_exact_mut(n).zip(indices) {
                match self.spec.input_shape[..] {
                    [h, w] if k > 0 => {
                        let (dy, dx) = (rng.random_range(-k..=k), rng.random_range(-k..=k));
                        shift_image(data.sample(i), dst, h, w, dy, dx);
                    }
                    _ => dst.copy_from_slice(data.sample(i)),
                }
                for x in dst.iter_mut() {
                    if dropout > 0.0 && rng.random::<f32>() < dropout {
                        *x = 0.0;
                    } else if noise > 0.0 {
                        let e: f32 = rng.sample(StandardNormal);
                        *x = (*x + noise * e).clamp(0.0, 1.0);
                    }
                }
            }
        }
    }

    /// The probe's features `f` (module docs) of the samples `indices`, `[len, hidden]`.
    fn features(&mut self, data: &Dataset<'_>, indices: &[usize]) -> Result<Vec<f32>, PluginError> {
        let (n, h, steps) = (self.spec.input_size, self.shape.sizes[1], self.shape.steps);
        let beta = self.shape.out_beta;
        let mut features = vec![0.0f32; indices.len() * h];
        let mut u = vec![0.0f32; self.ws.capacity() * h];
        for (chunk, out) in indices
            .chunks(self.ws.capacity())
            .zip(features.chunks_mut(self.ws.capacity() * h))
        {
            let rows = chunk.len();
            for (dst, &i) in self.x.chunks_exact_mut(n).zip(chunk) {
                dst.copy_from_slice(data.sample(i));
            }
            engine::forward(
                self.backend.as_ref(),
                &self.shape,
                &self.weights,
                &self.x[..rows * n],
                rows,
                &mut self.ws,
            )
            .map_err(failed)?;
            let spikes = self.ws.spikes(0, rows, steps);
            let u = &mut u[..rows * h];
            u.fill(0.0);
            for t in 0..steps {
                let s_t = &spikes[t * rows * h..(t + 1) * rows * h];
                for ((u, f), &s) in u.iter_mut().zip(out.iter_mut()).zip(s_t) {
                    *u = beta * *u + s;
                    *f += *u;
                }
            }
        }
        Ok(features)
    }

    /// Fits the linear probe on a seeded `label_fraction` of `data`'s labels.
    fn fit_probe(&mut self, data: &Dataset<'_>) -> Result<(), PluginError> {
        let labels = data.labels().ok_or_else(|| {
            PluginError::invalid_parameter(NAME, "data", "the linear probe needs labels")
        })?;
        let mut indices: Vec<usize> = (0..data.len()).collect();
        indices.shuffle(&mut StdRng::seed_from_u64(sub_seed(self.spec.seed, &[3])));
        let keep =
            ((data.len() as f64 * self.config.label_fraction).ceil() as usize).clamp(1, data.len());
        indices.truncate(keep);
        let features = self.features(data, &indices)?;
        let y: Vec<u32> = indices.iter().map(|&i| labels[i]).collect();
        let h = self.shape.sizes[1];
        let probe = fit_softmax(
            self.backend.as_ref(),
            &features,
            &y,
            (h, self.spec.classes.len()),
            self.config.probe_epochs,
            sub_seed(self.spec.seed, &[4, u64::from(self.epoch)]),
        )?;
        self.probe = probe;
        Ok(())
    }
}

/// Softmax regression without bias from `features` (`[N, h]`) to `labels`, trained
/// with Adam (lr 0.01, batch 256) on features scaled to unit RMS; returns the
/// weights `[h, classes]` for the unscaled features.
fn fit_softmax(
    backend: &dyn Backend,
    features: &[f32],
    labels: &[u32],
    (h, classes): (usize, usize),
    epochs: u32,
    seed: u64,
) -> Result<Vec<f32>, PluginError> {
    let n = labels.len();
    let mut scale = vec![0.0f32; h];
    for row in features.chunks_exact(h) {
        for (s, &f) in scale.iter_mut().zip(row) {
            *s += f * f;
        }
    }
    for s in &mut scale {
        *s = (*s / n as f32).sqrt().max(1e-6);
    }
    let scaled: Vec<f32> = features
        .chunks_exact(h)
        .flat_map(|row| row.iter().zip(&scale).map(|(f, s)| f / s))
        .collect();
    let mut w = vec![0.0f32; h * classes];
    let mut g = vec![0.0f32; h * classes];
    let mut moments = Moments::zeros(h * classes);
    let adam = Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-4,
    };
    const BATCH: usize = 256;
    let (mut xb, mut scores, mut grad) = (
        vec![0.0f32; BATCH * h],
        vec![0.0f32; BATCH * classes],
        vec![0.0f32; BATCH * classes],
    );
    let mut yb = Vec::with_capacity(BATCH);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut step = 0u64;
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        for idx in order.chunks(BATCH) {
            let b = idx.len();
            yb.clear();
            for (dst, &i) in xb.chunks_exact_mut(h).zip(idx) {
                dst.copy_from_slice(&scaled[i * h..(i + 1) * h]);
                yb.push(labels[i]);
            }
            gemm(
                backend,
                (&xb[..b * h], (b, h), Op::N),
                (&w, (h, classes), Op::N),
                0.0,
                (&mut scores[..b * classes], (b, classes)),
            )
            .map_err(failed)?;
            engine::cross_entropy_of(
                classes,
                &yb,
                &scores[..b * classes],
                &mut grad[..b * classes],
            );
            gemm(
                backend,
                (&xb[..b * h], (b, h), Op::T),
                (&grad[..b * classes], (b, classes), Op::N),
                0.0,
                (&mut g, (h, classes)),
            )
            .map_err(failed)?;
            step += 1;
            adam.update(step, 0.01, &mut w, &g, &mut moments);
        }
    }
    for (row, s) in w.chunks_exact_mut(classes).zip(&scale) {
        for v in row {
            *v /= s;
        }
    }
    Ok(w)
}

impl Learner for Ssl {
    fn network(&self) -> &NetworkSpec {
        &self.network
    }

    fn hyperparameters(&self) -> Params {
        let mut p = serde_json::to_value(&self.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        p.insert("shift".into(), self.shift.into());
        p
    }

    fn position(&self) -> (u32, u32) {
        (self.epoch, self.batch)
    }

    fn train_epoch(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<EpochReport, PluginError> {
        self.check_data(data)?;
        if data.labels().is_none() {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                "the linear probe needs labels (the contrastive part does not use them)",
            ));
        }
        let n = data.len();
        if n < 2 {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                "contrastive learning needs at least two samples",
            ));
        }
        let b = self.config.batch;
        let batches = n.div_ceil(b) as u32;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(sub_seed(
            self.spec.seed,
            &[1, u64::from(self.epoch)],
        )));
        let h = self.shape.sizes[1];
        let trained_before = self.running.seen;
        let mut completed = true;
        while self.batch < batches {
            let started = Instant::now();
            let bi = self.batch as usize;
            let mut idx = &order[bi * b..((bi + 1) * b).min(n)];
            if idx.len() < 2 {
                // A last batch of one sample has no negatives: take one more.
                idx = &order[n - 2..];
            }
            let mut rng = StdRng::seed_from_u64(sub_seed(
                self.spec.seed,
                &[2, u64::from(self.epoch), bi as u64],
            ));
            self.views(data, idx, &mut rng);
            let rows = 2 * idx.len();
            let x = &self.x[..rows * self.spec.input_size];
            engine::forward(
                self.backend.as_ref(),
                &self.shape,
                &self.weights,
                x,
                rows,
                &mut self.ws,
            )
            .map_err(failed)?;
            let (counts, grad) = self.ws.scores_and_grad(rows);
            let tau = self.config.temperature;
            let backend = self.backend.as_ref();
            let (loss, correct) = match &mut self.head {
                Some(head) => head.loss(backend, &mut self.nt, tau, counts, grad, h)?,
                None => self.nt.loss(backend, tau, counts, grad, h)?,
            };
            engine::backward(
                self.backend.as_ref(),
                &self.shape,
                &self.weights,
                x,
                rows,
                &mut self.ws,
                &mut self.grads,
            )
            .map_err(failed)?;
            self.step += 1;
            let lr = self.learning_rate(self.batch, batches);
            self.adam.update(
                self.step,
                lr,
                &mut self.weights[0],
                &self.grads[0],
                &mut self.moments[0],
            );
            if let Some(head) = &mut self.head {
                self.adam
                    .update(self.step, lr, &mut head.w, &head.grad, &mut head.moments);
            }
            if !loss.is_finite() {
                return Err(failed(format!(
                    "the loss diverged at epoch {} batch {bi}; lower lr (now {})",
                    self.epoch, self.config.lr
                )));
            }
            self.running.loss += loss;
            self.running.correct += correct as u64;
            self.running.seen += rows as u64;
            self.running.seconds += started.elapsed().as_secs_f64();
            self.batch += 1;
            let report = Progress {
                epoch: self.epoch,
                batch: self.batch - 1,
                batches,
                loss: (self.running.loss / self.running.seen as f64) as f32,
                accuracy: (self.running.correct as f64 / self.running.seen as f64) as f32,
                samples_per_s: (self.running.seen as f64 / 2.0 / self.running.seconds.max(1e-9))
                    as f32,
            };
            if progress(&report) == Control::Stop && self.batch < batches {
                completed = false;
                break;
            }
        }
        let r = self.running;
        let report = EpochReport {
            epoch: self.epoch,
            loss: (r.loss / r.seen.max(1) as f64) as f32,
            accuracy: (r.correct as f64 / r.seen.max(1) as f64) as f32,
            samples: ((r.seen - trained_before) / 2) as usize,
            samples_per_s: (r.seen as f64 / 2.0 / r.seconds.max(1e-9)) as f32,
            completed,
        };
        if completed {
            self.fit_probe(data)?;
            self.epoch += 1;
            self.batch = 0;
            self.running = Running::default();
        }
        Ok(report)
    }

    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError> {
        self.check_data(data)?;
        let all: Vec<usize> = (0..data.len()).collect();
        let features = self.features(data, &all)?;
        let (h, c) = (self.shape.sizes[1], self.spec.classes.len());
        let mut scores = vec![0.0f32; c];
        Ok(features
            .chunks_exact(h)
            .map(|f| {
                scores.fill(0.0);
                for (&fk, row) in f.iter().zip(self.probe.chunks_exact(c)) {
                    for (s, &w) in scores.iter_mut().zip(row) {
                        *s += fk * w;
                    }
                }
                engine::argmax(&scores) as u32
            })
            .collect())
    }

    fn weights(&self) -> Vec<Tensor> {
        let (n, h, c) = (
            self.spec.input_size,
            self.shape.sizes[1],
            self.spec.classes.len(),
        );
        vec![
            Tensor {
                name: crate::model::weight_name(&self.network.layers[0].name),
                shape: vec![h, n],
                data: transpose(&self.weights[0], n, h),
            },
            Tensor {
                name: crate::model::weight_name(&self.network.layers[1].name),
                shape: vec![c, h],
                data: transpose(&self.probe, h, c),
            },
        ]
    }

    fn checkpoint(&self) -> Checkpoint {
        let (n, h, c) = (
            self.spec.input_size,
            self.shape.sizes[1],
            self.spec.classes.len(),
        );
        let t = |name: &str, shape: Vec<usize>, data: &[f32]| Tensor {
            name: name.into(),
            shape,
            data: data.to_vec(),
        };
        Checkpoint {
            learner: NAME.into(),
            spec: self.spec.clone(),
            epoch: self.epoch,
            batch: self.batch,
            state: json!({ "step": self.step, "running": self.running }),
            tensors: vec![
                t("weight.0", vec![n, h], &self.weights[0]),
                t("adam_m.0", vec![n, h], &self.moments[0].m),
                t("adam_v.0", vec![n, h], &self.moments[0].v),
                t("probe", vec![h, c], &self.probe),
            ]
            .into_iter()
            .chain(self.head.iter().flat_map(|head| {
                let d = head.w.len() / h;
                [
                    t("head", vec![h, d], &head.w),
                    t("head_m", vec![h, d], &head.moments.m),
                    t("head_v", vec![h, d], &head.moments.v),
                ]
            }))
            .collect(),
        }
    }

    fn restore(&mut self, c: &Checkpoint) -> Result<(), PluginError> {
        let bad = |reason: String| Err(PluginError::invalid_parameter(NAME, "checkpoint", reason));
        if c.learner != NAME {
            return bad(format!("was written by {}, not {NAME}", c.learner));
        }
        if c.spec != self.spec {
            return bad("was written for another network or other parameters".into());
        }
        #[derive(Deserialize)]
        struct State {
            step: u64,
            running: Running,
        }
        let state: State = match serde_json::from_value(c.state.clone()) {
            Ok(s) => s,
            Err(e) => return bad(format!("state: {e}")),
        };
        let Moments { m, v } = &mut self.moments[0];
        for (name, dst) in [
            ("weight.0", &mut self.weights[0]),
            ("adam_m.0", m),
            ("adam_v.0", v),
            ("probe", &mut self.probe),
        ] {
            match c.tensors.iter().find(|t| t.name == name) {
                Some(t) if t.data.len() == dst.len() => dst.copy_from_slice(&t.data),
                Some(t) => return bad(format!("tensor {name} has shape {:?}", t.shape)),
                None => return bad(format!("has no tensor {name}")),
            }
        }
        if let Some(head) = &mut self.head {
            let Moments { m, v } = &mut head.moments;
            for (name, dst) in [("head", &mut head.w), ("head_m", m), ("head_v", v)] {
                match c.tensors.iter().find(|t| t.name == name) {
                    Some(t) if t.data.len() == dst.len() => dst.copy_from_slice(&t.data),
                    _ => return bad(format!("has no tensor {name} of {} values", dst.len())),
                }
            }
        }
        self.step = state.step;
        self.running = state.running;
        self.epoch = c.epoch;
        self.batch = c.batch;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
