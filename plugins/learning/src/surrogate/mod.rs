//! `SurrogateGradient`: supervised training of LIF networks by backpropagation
//! through time with a surrogate spike derivative.
//!
//! The network is `inputs → LIF hidden layers → output`, fully connected, driven
//! by the scaled sample as a constant input current every step (the
//! `CurrentEncoder`). The output is a layer of leaky integrators whose mean
//! membrane is the class score (`loss: membrane`, the default) or LIF neurons
//! whose spike count is (`loss: count`); the loss is softmax cross-entropy. The
//! neurons are exactly the `LIFNeuron` / `LeakyIntegrator` plugins' models
//! (`v_rest = v_reset = 0`, threshold `threshold`, no refractory period, the decay
//! computed by [`evospike_neuron::membrane_decay`]), so a trained model steps the
//! same numbers in layer nodes.
//!
//! Parameters (all optional; unknown keys are errors):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `hidden` | `[800]` | hidden layer sizes |
//! | `steps` | 25 | steps each sample is presented for |
//! | `beta` | 0.95 | membrane decay per step (τ = −dt / ln β) |
//! | `threshold` | 1.0 | firing threshold |
//! | `surrogate` | `fast_sigmoid` | or `arctan` |
//! | `slope` | 25 (fast sigmoid), 2 (arctan) | surrogate steepness |
//! | `loss` | `membrane` | or `count` |
//! | `epochs` | 30 | epochs the learning-rate schedule spans |
//! | `batch` | 128 | mini-batch size |
//! | `lr` | 0.002 | Adam learning rate |
//! | `weight_decay` | 0.0001 | decoupled weight decay |
//! | `schedule` | `cosine` | or `constant` |
//! | `shift` | side / 14 (8×8: 0, 28×28: 2) | random shift augmentation in pixels (images only; 0 = off) |
//! | `threads` | 0 | CPU threads (0: every core, or `DEVICE`'s ArrayFire device) |

pub(crate) mod adam;
pub(crate) mod engine;
pub mod step;

use std::ops::Range;
use std::time::Instant;

use evospike_compute::{backend_from_env, Backend, CpuBackend, LifDense, Surrogate};
use evospike_plugin_api::{
    Checkpoint, Control, Dataset, EncoderDef, EpochReport, LayerDef, Learner, LearnerSpec,
    NetworkSpec, Params, PluginError, Progress, Tensor,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::adam::{Adam, Moments};
use self::engine::{Readout, Shape, Workspace};
use self::step::{epoch_order, Local};
pub use self::step::{BatchPlan, GradientSource, GradientStats};

/// The plugin and learner name.
pub const NAME: &str = "SurrogateGradient";

/// The spike derivative used in the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurrogateKind {
    /// `1/(1 + slope·|x|)²`.
    FastSigmoid,
    /// `(α/2)/(1 + (π/2·α·x)²)`.
    Arctan,
}

/// What the loss is computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean membrane of a leaky-integrator output layer.
    Membrane,
    /// Spike counts of a LIF output layer.
    Count,
}

/// How the learning rate changes over the epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Half a cosine from `lr` down to 0 over `epochs`.
    Cosine,
    /// `lr` throughout.
    Constant,
}

/// The learner's parameters; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Steps per sample.
    pub steps: u32,
    /// Membrane decay per step.
    pub beta: f32,
    /// Firing threshold.
    pub threshold: f32,
    /// Surrogate derivative.
    pub surrogate: SurrogateKind,
    /// Its steepness (default by kind).
    pub slope: Option<f32>,
    /// What the loss sees.
    pub loss: LossKind,
    /// Epochs the schedule spans.
    pub epochs: u32,
    /// Mini-batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Shift augmentation in pixels (default: image side / 14).
    pub shift: Option<u32>,
    /// CPU threads (0: all).
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hidden: vec![800],
            steps: 25,
            beta: 0.95,
            threshold: 1.0,
            surrogate: SurrogateKind::FastSigmoid,
            slope: None,
            loss: LossKind::Membrane,
            epochs: 30,
            batch: 128,
            lr: 2e-3,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            shift: None,
            threads: 0,
        }
    }
}

impl Config {
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
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("needs at least one layer, each > 0; got {:?}", self.hidden),
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
        if let Some(s) = self.slope {
            if !(s > 0.0 && s.is_finite()) {
                return bad("slope", format!("must be > 0, got {s}"));
            }
        }
        if self.epochs == 0 || self.batch == 0 {
            return bad("epochs", "epochs and batch must be > 0".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be > 0, got {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        Ok(())
    }

    fn surrogate(&self) -> Surrogate {
        match self.surrogate {
            SurrogateKind::FastSigmoid => Surrogate::FastSigmoid {
                slope: self.slope.unwrap_or(25.0),
            },
            SurrogateKind::Arctan => Surrogate::Arctan {
                alpha: self.slope.unwrap_or(2.0),
            },
        }
    }
}

/// The key a serde error is about (`unknown field `x``), for the error's `param`.
pub(crate) fn param_name(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split('`').nth(1).unwrap_or("params").to_owned()
}

/// The time step every trained network uses (ms).
pub(crate) const DT_MS: f32 = 1.0;

/// Running sums of a (possibly interrupted) epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Running {
    loss: f64,
    correct: u64,
    seen: u64,
    seconds: f64,
}

/// One batch as the loss hook sees it.
pub(crate) struct LossBatch<'a> {
    /// The (augmented) inputs the network saw, `[B, inputs]`.
    pub(crate) x: &'a [f32],
    /// Their labels.
    pub(crate) labels: &'a [u32],
    /// The network's class scores, `[B, classes]`.
    pub(crate) scores: &'a [f32],
    /// ∂L/∂scores to write, `[B, classes]`, already divided by B.
    pub(crate) grad: &'a mut [f32],
    /// Classes.
    pub(crate) classes: usize,
}

/// The loss of a batch: the hook by which learners built on this engine change
/// what is minimised (cross-entropy here, the distillation loss in
/// [`crate::distill`]) while the forward and backward passes stay the same.
pub(crate) trait BatchLoss {
    /// Writes ∂L/∂scores and returns `(loss summed over the batch, correct predictions)`.
    fn loss(&mut self, batch: LossBatch<'_>) -> Result<(f64, usize), PluginError>;
}

/// Softmax cross-entropy against the labels.
pub(crate) struct CrossEntropy;

impl BatchLoss for CrossEntropy {
    fn loss(&mut self, b: LossBatch<'_>) -> Result<(f64, usize), PluginError> {
        Ok(engine::cross_entropy_of(
            b.classes, b.labels, b.scores, b.grad,
        ))
    }
}

/// The `SurrogateGradient` learner.
pub struct SurrogateGradient {
    spec: LearnerSpec,
    config: Config,
    network: NetworkSpec,
    shape: Shape,
    shift: u32,
    /// `[in, out]` per layer.
    weights: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    moments: Vec<Moments>,
    adam: Adam,
    step: u64,
    epoch: u32,
    batch: u32,
    running: Running,
    /// The current batch's plan, kept so that a training step allocates nothing.
    plan: BatchPlan,
    ws: Workspace,
    x: Vec<f32>,
    labels: Vec<u32>,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for SurrogateGradient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurrogateGradient")
            .field("sizes", &self.shape.sizes)
            .field("epoch", &self.epoch)
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

pub(crate) fn failed(e: impl std::fmt::Display) -> PluginError {
    PluginError::failed(NAME, e.to_string())
}

/// A seed for one purpose: `seed`, mixed with the purpose's numbers.
pub(crate) fn sub_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed ^ 0x9E37_79B9_7F4A_7C15, |h, &p| {
        (h ^ p).wrapping_mul(0x0100_0000_01B3).rotate_left(29) ^ 0xD6E8_FEB8_6659_FD93
    })
}

/// `τ = −dt / ln β`, as `tau_ms` for the plugins.
pub(crate) fn tau_for(beta: f32) -> f32 {
    (-f64::from(DT_MS) / f64::from(beta).ln()) as f32
}

impl SurrogateGradient {
    /// A fresh learner: seeded fan-in-scaled initial weights, zero moments.
    pub fn new(spec: &LearnerSpec) -> Result<Self, PluginError> {
        let config = Config::from_params(&spec.params)?;
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
        let tau = tau_for(config.beta);
        let lif = LifDense {
            beta: evospike_neuron::membrane_decay(DT_MS, tau),
            threshold: config.threshold,
            surrogate: config.surrogate(),
        };
        let mut sizes = vec![spec.input_size];
        sizes.extend(&config.hidden);
        sizes.push(spec.classes.len());
        let readout = match config.loss {
            LossKind::Membrane => Readout::Membrane,
            LossKind::Count => Readout::Count,
        };
        let shape = Shape {
            sizes,
            steps: config.steps as usize,
            lif,
            out_beta: lif.beta,
            readout,
        };
        let network = network_spec(spec, &config, tau, &shape);
        network
            .validate()
            .map_err(|e| PluginError::invalid_parameter(NAME, "spec", e))?;
        let shift = config.shift.unwrap_or_else(|| match spec.input_shape[..] {
            [h, w] => (h.min(w) / 14) as u32,
            _ => 0,
        });
        let mut rng = StdRng::seed_from_u64(sub_seed(spec.seed, &[0]));
        let weights: Vec<Vec<f32>> = (0..shape.layers())
            .map(|l| {
                let (n_in, n_out) = (shape.sizes[l], shape.sizes[l + 1]);
                // PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in).
                let bound = 1.0 / (n_in as f32).sqrt();
                (0..n_in * n_out)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            })
            .collect();
        let grads = weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let moments = weights.iter().map(|w| Moments::zeros(w.len())).collect();
        let ws = Workspace::new(&shape, config.batch);
        let plan = BatchPlan::with_capacity(config.batch);
        Ok(Self {
            x: vec![0.0; config.batch * spec.input_size],
            labels: Vec::with_capacity(config.batch),
            spec: spec.clone(),
            network,
            shift,
            weights,
            grads,
            moments,
            adam: Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: config.weight_decay,
            },
            config,
            shape,
            step: 0,
            epoch: 0,
            batch: 0,
            running: Running::default(),
            plan,
            ws,
            backend,
        })
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &LearnerSpec {
        &self.spec
    }

    /// The `threads` parameter (0: every core).
    pub fn threads(&self) -> usize {
        self.config.threads
    }

    /// The largest batch it trains or predicts at once.
    pub fn batch_capacity(&self) -> usize {
        self.ws.capacity()
    }

    fn learning_rate(&self, batch: u32, batches: u32) -> f32 {
        match self.config.schedule {
            Schedule::Constant => self.config.lr,
            Schedule::Cosine => {
                let done = (f64::from(self.epoch) + f64::from(batch) / f64::from(batches.max(1)))
                    / f64::from(self.config.epochs);
                let done = done.min(1.0);
                (f64::from(self.config.lr) * 0.5 * (1.0 + (std::f64::consts::PI * done).cos()))
                    as f32
            }
        }
    }

    /// Copies the samples `indices` into the batch buffer, each shifted by its
    /// entry of `shifts` when there are shifts (an augmented image batch).
    fn gather(&mut self, data: &Dataset<'_>, indices: &[usize], shifts: &[(i64, i64)]) {
        let n = self.spec.input_size;
        let x = &mut self.x[..indices.len() * n];
        self.labels.clear();
        match &self.spec.input_shape[..] {
            &[h, w] if !shifts.is_empty() => {
                for ((dst, &i), &(dy, dx)) in x.chunks_exact_mut(n).zip(indices).zip(shifts) {
                    shift_image(data.sample(i), dst, h, w, dy, dx);
                }
            }
            _ => {
                for (dst, &i) in x.chunks_exact_mut(n).zip(indices) {
                    dst.copy_from_slice(data.sample(i));
                }
            }
        }
        if let Some(labels) = data.labels() {
            self.labels.extend(indices.iter().map(|&i| labels[i]));
        }
    }

    /// Batch `batch` of epoch `epoch`, given that epoch's [`epoch_order`].
    pub fn plan(&self, order: &[usize], epoch: u32, batch: u32) -> BatchPlan {
        let mut plan = BatchPlan::with_capacity(self.config.batch);
        self.plan_into(order, epoch, batch, &mut plan);
        plan
    }

    /// [`plan`](Self::plan) into `plan`'s buffers (no allocation once they are
    /// large enough).
    fn plan_into(&self, order: &[usize], epoch: u32, batch: u32, plan: &mut BatchPlan) {
        let b = self.config.batch;
        let start = (batch as usize * b).min(order.len());
        plan.epoch = epoch;
        plan.batch = batch;
        plan.indices.clear();
        plan.indices
            .extend_from_slice(&order[start..(start + b).min(order.len())]);
        plan.shifts.clear();
        if self.shift > 0 && self.spec.input_shape.len() == 2 {
            let rows = plan.indices.len();
            step::draw_shifts(
                self.spec.seed,
                epoch,
                batch,
                rows,
                self.shift,
                &mut plan.shifts,
            );
        }
    }

    /// The cross-entropy gradient of the rows `shard` of `plan` at the current
    /// weights, averaged over those rows, into the gradient buffers
    /// ([`copy_gradient_to`](Self::copy_gradient_to) reads them): the one
    /// computation behind single-process training and every data-parallel worker.
    pub fn shard_gradient(
        &mut self,
        data: &Dataset<'_>,
        plan: &BatchPlan,
        shard: Range<usize>,
    ) -> Result<GradientStats, PluginError> {
        self.shard_gradient_with(data, plan, shard, &mut CrossEntropy)
    }

    /// [`shard_gradient`](Self::shard_gradient) with a loss hook.
    pub(crate) fn shard_gradient_with(
        &mut self,
        data: &Dataset<'_>,
        plan: &BatchPlan,
        shard: Range<usize>,
        loss_hook: &mut dyn BatchLoss,
    ) -> Result<GradientStats, PluginError> {
        self.check_data(data)?;
        if shard.is_empty() || shard.end > plan.len() || shard.len() > self.ws.capacity() {
            return Err(failed(format!(
                "shard {shard:?} of a batch of {} (at most {} rows)",
                plan.len(),
                self.ws.capacity()
            )));
        }
        let shifts = plan.shifts.get(shard.clone()).unwrap_or_default();
        self.gather(data, &plan.indices[shard.clone()], shifts);
        let rows = shard.len();
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
        let (scores, grad) = self.ws.scores_and_grad(rows);
        let (loss, correct) = loss_hook.loss(LossBatch {
            x,
            labels: &self.labels,
            scores,
            grad,
            classes: self.spec.classes.len(),
        })?;
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
        Ok(GradientStats {
            loss,
            correct,
            rows,
        })
    }

    /// Trainable parameters (every layer's weights, flattened in layer order).
    pub fn parameter_count(&self) -> usize {
        self.weights.iter().map(Vec::len).sum()
    }

    /// Copies the weights, flattened in layer order, into `out`, which must hold
    /// exactly [`parameter_count`](Self::parameter_count) values.
    pub fn copy_weights_to(&self, out: &mut [f32]) -> Result<(), PluginError> {
        self.check_flat(out.len())?;
        copy_flat(&self.weights, out);
        Ok(())
    }

    /// Sets the weights from a flat copy (as [`copy_weights_to`](Self::copy_weights_to) writes it).
    pub fn set_weights(&mut self, flat: &[f32]) -> Result<(), PluginError> {
        self.check_flat(flat.len())?;
        set_flat(&mut self.weights, flat);
        Ok(())
    }

    /// Copies the last computed gradient, flattened in layer order, into `out`.
    pub fn copy_gradient_to(&self, out: &mut [f32]) -> Result<(), PluginError> {
        self.check_flat(out.len())?;
        copy_flat(&self.grads, out);
        Ok(())
    }

    /// Sets the gradient the next optimizer step applies from a flat copy.
    pub fn set_gradient(&mut self, flat: &[f32]) -> Result<(), PluginError> {
        self.check_flat(flat.len())?;
        set_flat(&mut self.grads, flat);
        Ok(())
    }

    fn check_flat(&self, len: usize) -> Result<(), PluginError> {
        let want = self.parameter_count();
        if len == want {
            Ok(())
        } else {
            Err(failed(format!(
                "a flat parameter vector has {len} values; the network has {want}"
            )))
        }
    }

    /// One epoch (or the rest of one) with `loss` as the loss hook; see [`BatchLoss`].
    pub(crate) fn train_epoch_with(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
        loss_hook: &mut dyn BatchLoss,
    ) -> Result<EpochReport, PluginError> {
        self.train_epoch_from(data, progress, &mut Local(loss_hook))
    }

    /// Trains the rest of the current epoch, each batch's gradient coming from
    /// `source` (see [`step`]): the epoch loop of every way this learner trains.
    pub fn train_epoch_from(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
        source: &mut dyn GradientSource,
    ) -> Result<EpochReport, PluginError> {
        self.check_data(data)?;
        if data.labels().is_none() {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                "supervised training needs labels",
            ));
        }
        let n = data.len();
        let batches = n.div_ceil(self.config.batch) as u32;
        let order = epoch_order(self.spec.seed, self.epoch, n);
        let trained_before = self.running.seen;
        let mut completed = true;
        while self.batch < batches {
            let started = Instant::now();
            let mut plan = std::mem::take(&mut self.plan);
            self.plan_into(&order, self.epoch, self.batch, &mut plan);
            let stats = source.gradient(self, data, &plan);
            self.plan = plan;
            let stats = stats?;
            if stats.rows == 0 {
                return Err(failed(format!(
                    "no gradient for epoch {} batch {}",
                    self.epoch, self.batch
                )));
            }
            self.step += 1;
            let lr = self.learning_rate(self.batch, batches);
            for ((w, g), m) in self
                .weights
                .iter_mut()
                .zip(&self.grads)
                .zip(&mut self.moments)
            {
                self.adam.update(self.step, lr, w, g, m);
            }
            if !stats.loss.is_finite() {
                return Err(failed(format!(
                    "the loss diverged at epoch {} batch {}; lower lr (now {})",
                    self.epoch, self.batch, self.config.lr
                )));
            }
            self.running.loss += stats.loss;
            self.running.correct += stats.correct as u64;
            self.running.seen += stats.rows as u64;
            self.running.seconds += started.elapsed().as_secs_f64();
            self.batch += 1;
            let report = Progress {
                epoch: self.epoch,
                batch: self.batch - 1,
                batches,
                loss: (self.running.loss / self.running.seen as f64) as f32,
                accuracy: (self.running.correct as f64 / self.running.seen as f64) as f32,
                samples_per_s: (self.running.seen as f64 / self.running.seconds.max(1e-9)) as f32,
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
            samples: (r.seen - trained_before) as usize,
            samples_per_s: (r.seen as f64 / r.seconds.max(1e-9)) as f32,
            completed,
        };
        if completed {
            self.epoch += 1;
            self.batch = 0;
            self.running = Running::default();
        }
        Ok(report)
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
}

/// The network this learner's config describes (what a model records).
pub(crate) fn network_spec(
    spec: &LearnerSpec,
    config: &Config,
    tau: f32,
    shape: &Shape,
) -> NetworkSpec {
    let lif_params = json!({
        "tau_ms": tau, "v_rest": 0.0, "v_reset": 0.0,
        "v_threshold": config.threshold, "t_ref_ms": 0.0,
    });
    let as_map = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let mut layers: Vec<LayerDef> = config
        .hidden
        .iter()
        .enumerate()
        .map(|(i, &size)| LayerDef {
            name: if config.hidden.len() == 1 {
                "hidden".into()
            } else {
                format!("hidden{}", i + 1)
            },
            neuron: "LIFNeuron".into(),
            size,
            params: as_map(lif_params.clone()),
        })
        .collect();
    layers.push(LayerDef {
        name: "output".into(),
        neuron: match shape.readout {
            Readout::Membrane => "LeakyIntegrator".into(),
            Readout::Count => "LIFNeuron".into(),
        },
        size: spec.classes.len(),
        params: match shape.readout {
            Readout::Membrane => as_map(json!({ "tau_ms": tau })),
            Readout::Count => as_map(lif_params),
        },
    });
    NetworkSpec {
        input_size: spec.input_size,
        input_shape: spec.input_shape.clone(),
        encoder: EncoderDef {
            plugin: "CurrentEncoder".into(),
            params: Params::new(),
        },
        dt_ms: DT_MS,
        steps_per_sample: config.steps,
        layers,
        classes: spec.classes.clone(),
        readout: match shape.readout {
            Readout::Membrane => evospike_plugin_api::Readout::Membrane,
            Readout::Count => evospike_plugin_api::Readout::SpikeCount,
        },
    }
}

/// Copies an `h x w` image shifted by `(dy, dx)` pixels, filling with zeros.
pub(crate) fn shift_image(src: &[f32], dst: &mut [f32], h: usize, w: usize, dy: i64, dx: i64) {
    dst.fill(0.0);
    for y in 0..h as i64 {
        let sy = y - dy;
        if sy < 0 || sy >= h as i64 {
            continue;
        }
        let (x0, x1) = (dx.max(0), (w as i64 + dx).min(w as i64));
        if x0 >= x1 {
            continue;
        }
        let d = (y as usize) * w;
        let s = (sy as usize) * w;
        dst[d + x0 as usize..d + x1 as usize]
            .copy_from_slice(&src[s + (x0 - dx) as usize..s + (x1 - dx) as usize]);
    }
}

impl Learner for SurrogateGradient {
    fn network(&self) -> &NetworkSpec {
        &self.network
    }

    fn hyperparameters(&self) -> Params {
        let mut p = serde_json::to_value(&self.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        p.insert("shift".into(), self.shift.into());
        p.insert(
            "slope".into(),
            json!(match self.shape.lif.surrogate {
                Surrogate::FastSigmoid { slope } => slope,
                Surrogate::Arctan { alpha } => alpha,
            }),
        );
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
        self.train_epoch_with(data, progress, &mut CrossEntropy)
    }

    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError> {
        self.check_data(data)?;
        let classes = self.spec.classes.len();
        let mut out = Vec::with_capacity(data.len());
        let all: Vec<usize> = (0..data.len()).collect();
        for chunk in all.chunks(self.ws.capacity()) {
            self.gather(data, chunk, &[]);
            let x = &self.x[..chunk.len() * self.spec.input_size];
            engine::forward(
                self.backend.as_ref(),
                &self.shape,
                &self.weights,
                x,
                chunk.len(),
                &mut self.ws,
            )
            .map_err(failed)?;
            out.extend(
                self.ws.logits[..chunk.len() * classes]
                    .chunks_exact(classes)
                    .map(|z| engine::argmax(z) as u32),
            );
        }
        Ok(out)
    }

    fn weights(&self) -> Vec<Tensor> {
        self.network
            .layers
            .iter()
            .zip(&self.weights)
            .zip(self.shape.layer_dims())
            .map(|((layer, w), (n_in, n_out))| Tensor {
                name: format!("layers.{}.weight", layer.name),
                shape: vec![n_out, n_in],
                data: transpose(w, n_in, n_out),
            })
            .collect()
    }

    fn checkpoint(&self) -> Checkpoint {
        let mut tensors = Vec::with_capacity(3 * self.weights.len());
        for (l, ((w, m), (n_in, n_out))) in self
            .weights
            .iter()
            .zip(&self.moments)
            .zip(self.shape.layer_dims())
            .enumerate()
        {
            for (kind, data) in [("weight", w), ("adam_m", &m.m), ("adam_v", &m.v)] {
                tensors.push(Tensor {
                    name: format!("{kind}.{l}"),
                    shape: vec![n_in, n_out],
                    data: data.clone(),
                });
            }
        }
        Checkpoint {
            learner: NAME.into(),
            spec: self.spec.clone(),
            epoch: self.epoch,
            batch: self.batch,
            state: json!({ "step": self.step, "running": self.running }),
            tensors,
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
        let dims: Vec<(usize, usize)> = self.shape.layer_dims().collect();
        for (l, &(n_in, n_out)) in dims.iter().enumerate() {
            for kind in ["weight", "adam_m", "adam_v"] {
                let name = format!("{kind}.{l}");
                let Some(t) = c.tensors.iter().find(|t| t.name == name) else {
                    return bad(format!("has no tensor {name}"));
                };
                if t.shape != [n_in, n_out] || t.data.len() != n_in * n_out {
                    return bad(format!(
                        "tensor {name} is {:?}, expected [{n_in}, {n_out}]",
                        t.shape
                    ));
                }
                let dst = match kind {
                    "weight" => &mut self.weights[l],
                    "adam_m" => &mut self.moments[l].m,
                    _ => &mut self.moments[l].v,
                };
                dst.copy_from_slice(&t.data);
            }
        }
        self.step = state.step;
        self.running = state.running;
        self.epoch = c.epoch;
        self.batch = c.batch;
        Ok(())
    }
}

impl Shape {
    /// `(inputs, outputs)` of every layer.
    fn layer_dims(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.sizes.windows(2).map(|w| (w[0], w[1]))
    }
}

fn copy_flat(layers: &[Vec<f32>], out: &mut [f32]) {
    let mut at = 0;
    for l in layers {
        out[at..at + l.len()].copy_from_slice(l);
        at += l.len();
    }
}

fn set_flat(layers: &mut [Vec<f32>], flat: &[f32]) {
    let mut at = 0;
    for l in layers {
        let n = l.len();
        l.copy_from_slice(&flat[at..at + n]);
        at += n;
    }
}

/// `[rows, cols]` → `[cols, rows]`.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

#[cfg(test)]
pub(crate) mod tests;
