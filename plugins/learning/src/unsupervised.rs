//! `STDPUnsupervised`: unsupervised digit learning with STDP (Diehl & Cook 2015),
//! built from the NEURON, ENCODER and PLASTICITY plugins' models.
//!
//! # Training (no labels)
//!
//! Each sample is presented for `steps` ms as Poisson spike trains (the
//! `RateEncoder`, `mode: poisson`; pixel value 1 fires at `max_rate_hz`) to an
//! excitatory layer of `LIFNeuron`s (`tau_ms`, `t_ref_ms`, rest and reset 0,
//! threshold 1, delta synapses) through a dense `Projection`. Three mechanisms
//! make the neurons compete and specialise:
//!
//! * **lateral inhibition** (direct, winner-take-all): every spike of a neuron
//!   lowers the membrane of every other neuron by `inhibition` on the next step;
//! * **adaptive thresholds**: the `Homeostasis` rule's θ (`theta_plus` per spike,
//!   decaying with `tau_theta_ms`) is added to each neuron's threshold, so a neuron
//!   that wins often must match better to win again;
//! * **STDP** on the input weights: the `STDP` rule (additive, `a_plus`,
//!   `a_minus`, τ± 20 ms, weights in \[0, 1\]), its traces reset between samples in
//!   place of a rest period, followed after every sample by **weight
//!   normalisation**: each neuron's input weights are scaled to sum to `w_sum`.
//!
//! If the layer fires fewer than `min_spikes` spikes, the sample is shown again
//! with the rate raised by `boost_hz` (at most `max_retries` times), as in the paper.
//!
//! # Class assignment and the model
//!
//! After each epoch the network is run on the training set **as the model runs**
//! — the pipeline of layer nodes, with STDP off — and every neuron is assigned to
//! the class for which its mean spike count is highest (the only use of labels).
//! A class's score is the mean count of its neurons.
//!
//! The model is an ordinary two-layer network that `evospike eval` runs:
//!
//! * `excitatory` — the `LIFNeuron` layer, driven by the sample as a constant
//!   current (`CurrentEncoder`): the Poisson input's expected value. The learned
//!   thresholds are folded into the weights: with rest and reset at 0, a neuron
//!   with threshold `1 + θ_k` and input weights `w_·k` fires exactly as one with
//!   threshold 1 and weights `w_·k / (1 + θ_k)`. The weights are also scaled by a
//!   gain: a multiple (one of `gains`, the one whose vote is best on the training
//!   set) of the reference gain at which the median training sample's most driven
//!   neuron just reaches threshold. Without lateral inhibition in the pipeline the
//!   gain decides how many neurons answer a sample: near the reference only the
//!   best-matching ones;
//! * `output` — `LeakyIntegrator`s with a 1 µs time constant, which on a 1 ms step
//!   forget everything but the current step, so the summed membrane is exactly
//!   `Σ_k count_k · W_kc` with `W_kc = 1/n_c` for the `n_c` neurons assigned to
//!   class `c`: the class vote of the paper.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `hidden` | `[400]` | excitatory neurons (one layer) |
//! | `steps` | 150 | ms each sample is presented for in training |
//! | `eval_steps` | 300 | steps each sample runs in the model (more steps, finer counts) |
//! | `epochs` | 10 | passes over the training data |
//! | `batch` | 100 | samples between progress reports (and checkpoints when stopped) |
//! | `max_rate_hz` | 63.75 | Poisson rate of a pixel of value 1 |
//! | `min_spikes`, `boost_hz`, `max_retries` | 5, 32, 3 | re-presentation of samples that fire too little |
//! | `tau_ms`, `t_ref_ms` | 100, 5 | excitatory membrane time constant and refractory period |
//! | `inhibition` | 1.5 | lateral inhibition per spike, in thresholds |
//! | `theta_plus`, `tau_theta_ms` | 0.05, 1e7 | adaptive threshold increment per spike and its decay |
//! | `a_plus`, `a_minus` | 0.002, 0.0001 | STDP potentiation and depression |
//! | `w_sum` | from the data | each neuron's summed input weight after normalisation; by default set on the first batch so that a neuron with uniform weights is driven toward 12 thresholds by the mean sample (`6.4` for the 8×8 digits), whatever the input size |
//! | `gains` | `[1, 1.1, 1.25, 1.5, 2]` | candidate model gains, in units of the reference gain |

use std::time::Instant;

use evospike_compute::{spikes, CpuBackend, DenseWeights, Op, Projection, Target, Weights};
use evospike_encoder::{RateEncoder, RateMode, RateParams};
use evospike_neuron::{LifLayer, LifParams};
use evospike_plasticity::{Homeostasis, HomeostasisParams, Stdp, StdpMode, StdpParams};
use evospike_plugin_api::{
    Checkpoint, Control, Dataset, Encoder, EncoderDef, EpochReport, LayerDef, Learner, LearnerSpec,
    NetworkSpec, NeuronLayer, Params, PlasticityRule, PluginError, Progress, Readout, Tensor,
    WeightsMut,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::infer::InferenceNet;
use crate::model::{weight_name, Manifest, Model, Provenance, SCHEMA_VERSION};
use crate::surrogate::engine::{argmax, gemm};
use crate::surrogate::{param_name, sub_seed, transpose};

/// The plugin and learner name.
pub const NAME: &str = "STDPUnsupervised";

/// Time step (ms).
const DT_MS: f32 = 1.0;
/// The membrane level, in thresholds, that the mean sample drives a neuron with
/// uniform weights toward when `w_sum` is set from the data.
const DRIVE_THRESHOLDS: f32 = 12.0;
/// The output integrators' time constant: nothing survives one step.
const OUTPUT_TAU_MS: f32 = 1e-3;

/// The learner's parameters; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdpConfig {
    /// Excitatory neurons (one layer).
    pub hidden: Vec<usize>,
    /// Training presentation in steps (ms).
    pub steps: u32,
    /// Model steps per sample.
    pub eval_steps: u32,
    /// Epochs.
    pub epochs: u32,
    /// Samples between progress reports.
    pub batch: usize,
    /// Poisson rate of value 1.
    pub max_rate_hz: f32,
    /// Fewest spikes a presentation must give.
    pub min_spikes: u32,
    /// Rate added per re-presentation.
    pub boost_hz: f32,
    /// Re-presentations at most.
    pub max_retries: u32,
    /// Membrane time constant.
    pub tau_ms: f32,
    /// Refractory period.
    pub t_ref_ms: f32,
    /// Lateral inhibition per spike.
    pub inhibition: f32,
    /// Adaptive threshold increment.
    pub theta_plus: f32,
    /// Its decay time constant.
    pub tau_theta_ms: f32,
    /// STDP potentiation amplitude.
    pub a_plus: f32,
    /// STDP depression amplitude.
    pub a_minus: f32,
    /// Summed input weight per neuron (default: from the data, see the module docs).
    pub w_sum: Option<f32>,
    /// Candidate model gains, in units of the rate per step.
    pub gains: Vec<f32>,
}

impl Default for StdpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![400],
            steps: 150,
            eval_steps: 300,
            epochs: 10,
            batch: 100,
            max_rate_hz: 63.75,
            min_spikes: 5,
            boost_hz: 32.0,
            max_retries: 3,
            tau_ms: 100.0,
            t_ref_ms: 5.0,
            inhibition: 1.5,
            theta_plus: 0.05,
            tau_theta_ms: 1e7,
            a_plus: 0.002,
            a_minus: 0.0001,
            w_sum: None,
            gains: vec![1.0, 1.1, 1.25, 1.5, 2.0],
        }
    }
}

impl StdpConfig {
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
        for (key, v) in [
            ("steps", self.steps),
            ("eval_steps", self.eval_steps),
            ("epochs", self.epochs),
        ] {
            if v == 0 {
                return bad(key, "must be > 0".into());
            }
        }
        if self.batch == 0 {
            return bad("batch", "must be > 0".into());
        }
        let positive = [
            ("max_rate_hz", self.max_rate_hz),
            ("tau_ms", self.tau_ms),
            ("tau_theta_ms", self.tau_theta_ms),
        ];
        for (key, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                return bad(key, format!("must be > 0, got {v}"));
            }
        }
        let non_negative = [
            ("boost_hz", self.boost_hz),
            ("t_ref_ms", self.t_ref_ms),
            ("inhibition", self.inhibition),
            ("theta_plus", self.theta_plus),
            ("a_plus", self.a_plus),
            ("a_minus", self.a_minus),
        ];
        for (key, v) in non_negative {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, format!("must be >= 0, got {v}"));
            }
        }
        if let Some(w) = self.w_sum {
            if !(w > 0.0 && w.is_finite()) {
                return bad("w_sum", format!("must be > 0, got {w}"));
            }
        }
        if self.gains.is_empty() || self.gains.iter().any(|g| !(*g > 0.0 && g.is_finite())) {
            return bad(
                "gains",
                format!("needs at least one gain, each > 0; got {:?}", self.gains),
            );
        }
        Ok(())
    }

    fn lif(&self) -> LifParams {
        LifParams {
            tau_ms: self.tau_ms,
            v_rest: 0.0,
            v_reset: 0.0,
            v_threshold: 1.0,
            t_ref_ms: self.t_ref_ms,
            ..LifParams::default()
        }
    }
}

fn failed(e: impl std::fmt::Display) -> PluginError {
    PluginError::failed(NAME, e.to_string())
}

/// Running sums of a (possibly interrupted) epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Running {
    /// Σ (1 − cosine(winner's weights, sample)).
    loss: f64,
    seen: u64,
    seconds: f64,
}

/// What the last calibration chose (module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ClassVote {
    /// The model gain, absolute (current per unit of pixel value and weight).
    gain: f32,
    /// The class of every neuron (`None`: it never fired).
    assignment: Vec<Option<u32>>,
    /// The vote's accuracy on the training set.
    train_accuracy: f64,
}

/// The `STDPUnsupervised` learner; see the module docs.
pub struct StdpUnsupervised {
    spec: LearnerSpec,
    config: StdpConfig,
    network: NetworkSpec,
    n: usize,
    w_sum: f32,
    layer: LifLayer,
    projection: Projection,
    stdp: Stdp,
    homeostasis: Homeostasis,
    readout: ClassVote,
    epoch: u32,
    batch: u32,
    running: Running,
    // Step buffers.
    exc: Vec<f32>,
    inh: Vec<f32>,
    pre: Vec<u64>,
    post: Vec<u64>,
    counts: Vec<u32>,
    values: Vec<f32>,

    backend: CpuBackend,
}

impl std::fmt::Debug for StdpUnsupervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdpUnsupervised")
            .field("neurons", &self.n)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl StdpUnsupervised {
    /// A fresh learner: seeded random weights, normalised; θ = 0.
    pub fn new(spec: &LearnerSpec) -> Result<Self, PluginError> {
        let config = StdpConfig::from_params(&spec.params)?;
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
        let (inputs, n) = (spec.input_size, config.hidden[0]);
        // Until the data is seen (the first batch), D&C's 0.1 per input.
        let w_sum = config.w_sum.unwrap_or(0.1 * inputs as f32);
        let layer = LifLayer::new(n, DT_MS, config.lif(), 0)
            .map_err(|e| PluginError::invalid_parameter(NAME, e.param, e.reason))?;
        let mut rng = StdRng::seed_from_u64(sub_seed(spec.seed, &[0]));
        let values: Vec<f32> = (0..inputs * n)
            .map(|_| rng.random_range(0.003..0.3))
            .collect();
        let dense = DenseWeights::new(inputs, n, values).map_err(failed)?;
        let projection = Projection::new(dense.into(), Target::Excitatory, 0).map_err(failed)?;
        let stdp = Stdp::new(
            inputs,
            n,
            DT_MS,
            StdpParams {
                a_plus: config.a_plus,
                a_minus: config.a_minus,
                tau_plus_ms: 20.0,
                tau_minus_ms: 20.0,
                w_min: 0.0,
                w_max: 1.0,
                mode: StdpMode::Additive,
            },
        );
        let homeostasis = Homeostasis::new(
            n,
            DT_MS,
            HomeostasisParams {
                theta_plus: config.theta_plus,
                tau_theta_ms: config.tau_theta_ms,
                target_rate_hz: 5.0,
                eta_per_s: 0.0,
                tau_rate_ms: 1000.0,
                scaling_interval_steps: 1,
                w_min: 0.0,
                w_max: 1.0,
            },
        );
        let mut learner = Self {
            network: network_spec(spec, &config),
            spec: spec.clone(),
            n,
            w_sum,
            layer,
            projection,
            stdp,
            homeostasis,
            readout: ClassVote {
                gain: 1.0,
                assignment: vec![None; n],
                train_accuracy: 0.0,
            },
            epoch: 0,
            batch: 0,
            running: Running::default(),
            exc: vec![0.0; n],
            inh: vec![0.0; n],
            pre: vec![0; spikes::spike_words_len(inputs)],
            post: vec![0; spikes::spike_words_len(n)],
            counts: vec![0; n],
            values: vec![0.0; inputs],

            backend: CpuBackend::single_threaded(),
            config,
        };
        learner.normalise();
        Ok(learner)
    }

    fn weights_dense(&self) -> &[f32] {
        match self.projection.weights() {
            Weights::Dense(d) => d.values(),
            Weights::Csr(_) => unreachable!("the projection is built dense"),
        }
    }

    /// The `w_sum` at which the mean sample drives a neuron with uniform weights
    /// (`w_sum / inputs` each) toward `DRIVE_THRESHOLDS` thresholds: its mean input
    /// per step is `rate · Σx · w_sum / inputs`, and the membrane settles at `τ`
    /// times that.
    fn data_w_sum(&self, data: &Dataset<'_>) -> f32 {
        let mean_ink =
            data.inputs().iter().map(|&x| f64::from(x)).sum::<f64>() / data.len().max(1) as f64;
        let rate = f64::from(self.config.max_rate_hz * DT_MS / 1000.0);
        let per_weight =
            rate * mean_ink / self.spec.input_size as f64 * f64::from(self.config.tau_ms);
        if per_weight > 0.0 {
            (f64::from(DRIVE_THRESHOLDS) / per_weight) as f32
        } else {
            self.w_sum
        }
    }

    /// Scales every neuron's input weights to sum to `w_sum`.
    fn normalise(&mut self) {
        let (n, target) = (self.n, self.w_sum);
        if let WeightsMut::Dense { values, .. } = self.projection.weights_mut() {
            let mut sums = vec![0.0f32; n];
            for row in values.chunks_exact(n) {
                for (s, &w) in sums.iter_mut().zip(row) {
                    *s += w;
                }
            }
            for s in &mut sums {
                *s = if *s > 0.0 { target / *s } else { 1.0 };
            }
            for row in values.chunks_exact_mut(n) {
                for (w, &f) in row.iter_mut().zip(&sums) {
                    *w = (*w * f).min(1.0);
                }
            }
        }
    }

    /// One presentation of `values` (already scaled to the encoder's cap) with
    /// plasticity on; returns the excitatory spikes and leaves per-neuron counts in
    /// `self.counts`.
    fn present(&mut self, encoder: &mut RateEncoder) -> u32 {
        self.layer.reset();
        self.stdp.reset_traces();
        self.counts.fill(0);
        self.inh.fill(0.0);
        encoder.set_sample(&self.values);
        let mut total = 0u32;
        for t in 0..self.config.steps {
            encoder.encode_step(t, &mut self.pre);
            self.exc.fill(0.0);
            // Shapes are fixed at construction: propagation cannot fail.
            let _ = self
                .projection
                .step(&self.backend, &self.pre, &mut self.exc);
            self.layer
                .threshold_offsets_mut()
                .copy_from_slice(self.homeostasis.threshold_offsets().unwrap_or(&[]));
            self.layer.step_split(&self.exc, &self.inh, &mut self.post);
            self.stdp
                .update(&self.pre, &self.post, self.projection.weights_mut());
            self.homeostasis
                .update(&self.pre, &self.post, self.projection.weights_mut());
            // Direct lateral inhibition for the next step: every spike inhibits all
            // other neurons.
            let fired = spikes::count(&self.post) as f32;
            let w_inh = self.config.inhibition;
            for (k, inh) in self.inh.iter_mut().enumerate() {
                let own = spikes::get(&self.post, k);
                *inh = -w_inh * (fired - f32::from(u8::from(own)));
            }
            for k in spikes::ones(&self.post).take_while(|&k| k < self.n) {
                self.counts[k] += 1;
                total += 1;
            }
        }
        total
    }

    /// `1 − cos` between the most active neuron's weights and the sample.
    fn quantisation_error(&self, sample: &[f32]) -> f64 {
        let winner = (0..self.n).max_by_key(|&k| (self.counts[k], std::cmp::Reverse(k)));
        let Some(k) = winner else { return 1.0 };
        let w = self.weights_dense();
        let (mut dot, mut ww, mut xx) = (0.0f64, 0.0f64, 0.0f64);
        for (j, &x) in sample.iter().enumerate() {
            let wk = f64::from(w[j * self.n + k]);
            dot += wk * f64::from(x);
            ww += wk * wk;
            xx += f64::from(x) * f64::from(x);
        }
        if ww == 0.0 || xx == 0.0 {
            return 1.0;
        }
        1.0 - dot / (ww.sqrt() * xx.sqrt())
    }

    /// The model's first-layer weights `[in, n]` for gain `gain`: θ folded in.
    fn folded(&self, gain: f32) -> Vec<f32> {
        let theta = self.homeostasis.threshold_offsets().unwrap_or(&[]);
        let scale: Vec<f32> = theta.iter().map(|t| gain / (1.0 + t)).collect();
        self.weights_dense()
            .chunks_exact(self.n)
            .flat_map(|row| row.iter().zip(&scale).map(|(w, s)| w * s))
            .collect()
    }

    /// Runs the training set as the model runs it for every candidate gain, and
    /// keeps the gain and assignment whose vote is best on the training labels.
    fn calibrate(&mut self, data: &Dataset<'_>) -> Result<(), PluginError> {
        let labels = data.labels().ok_or_else(|| {
            PluginError::invalid_parameter(
                NAME,
                "data",
                "assigning neurons to classes needs labels",
            )
        })?;
        let (n, inputs, len) = (self.n, self.spec.input_size, data.len());
        let classes = self.spec.classes.len();
        let unit = self.folded(1.0);
        let mut currents = vec![0.0f32; len * n];
        gemm(
            &self.backend,
            (data.inputs(), (len, inputs), Op::N),
            (&unit, (inputs, n), Op::N),
            0.0,
            (&mut currents, (len, n)),
        )
        .map_err(failed)?;
        let mut layer = LifLayer::new(n, DT_MS, self.config.lif(), 0).map_err(failed)?;
        let mut counts = vec![0u32; len * n];
        let mut input = vec![0.0f32; n];
        let mut post = vec![0u64; spikes::spike_words_len(n)];
        let base = reference_gain(&currents, n, &self.config);
        let mut best: Option<ClassVote> = None;
        for &g in &self.config.gains {
            let gain = g * base;
            for (row, out) in currents.chunks_exact(n).zip(counts.chunks_exact_mut(n)) {
                NeuronLayer::reset(&mut layer);
                for (i, &c) in input.iter_mut().zip(row) {
                    *i = c * gain;
                }
                out.fill(0);
                for _ in 0..self.config.eval_steps {
                    NeuronLayer::step(&mut layer, &input, &mut post);
                    for k in spikes::ones(&post).take_while(|&k| k < n) {
                        out[k] += 1;
                    }
                }
            }
            let assignment = assign(&counts, labels, n, classes);
            let votes = vote_weights(&assignment, classes);
            let mut right = 0usize;
            let mut scores = vec![0.0f32; classes];
            for (out, &y) in counts.chunks_exact(n).zip(labels) {
                scores.fill(0.0);
                for (k, &c) in out.iter().enumerate() {
                    if let Some(class) = assignment[k] {
                        scores[class as usize] += c as f32 * votes[class as usize];
                    }
                }
                right += usize::from(argmax(&scores) == y as usize);
            }
            let accuracy = right as f64 / len.max(1) as f64;
            if best.as_ref().is_none_or(|b| accuracy > b.train_accuracy) {
                best = Some(ClassVote {
                    gain,
                    assignment,
                    train_accuracy: accuracy,
                });
            }
        }
        if let Some(best) = best {
            self.readout = best;
        }
        Ok(())
    }

    /// The model as it stands.
    fn model(&self) -> Model {
        Model {
            manifest: Manifest {
                schema_version: SCHEMA_VERSION,
                network: self.network.clone(),
                provenance: Provenance::default(),
                metrics: Default::default(),
                files: Default::default(),
            },
            weights: self.weights(),
        }
    }
}

/// A neuron per class: the class with the highest mean count (none if it never fired).
fn assign(counts: &[u32], labels: &[u32], n: usize, classes: usize) -> Vec<Option<u32>> {
    let mut sums = vec![0.0f64; classes * n];
    let mut per_class = vec![0usize; classes];
    for (out, &y) in counts.chunks_exact(n).zip(labels) {
        per_class[y as usize] += 1;
        for (s, &c) in sums[y as usize * n..(y as usize + 1) * n]
            .iter_mut()
            .zip(out)
        {
            *s += f64::from(c);
        }
    }
    (0..n)
        .map(|k| {
            let mut best: Option<(u32, f64)> = None;
            for c in 0..classes {
                if per_class[c] == 0 {
                    continue;
                }
                let mean = sums[c * n + k] / per_class[c] as f64;
                if mean > 0.0 && best.is_none_or(|(_, m)| mean > m) {
                    best = Some((c as u32, mean));
                }
            }
            best.map(|(c, _)| c)
        })
        .collect()
}

/// `1 / n_c` per class (0 for a class without neurons).
fn vote_weights(assignment: &[Option<u32>], classes: usize) -> Vec<f32> {
    let mut n_c = vec![0u32; classes];
    for c in assignment.iter().flatten() {
        n_c[*c as usize] += 1;
    }
    n_c.iter()
        .map(|&n| if n == 0 { 0.0 } else { 1.0 / n as f32 })
        .collect()
}

/// The gain at which the median sample's best-driven neuron just reaches its
/// threshold by the last of the model's steps.
/// `currents` are the unit-gain currents, `[samples, n]`.
fn reference_gain(currents: &[f32], n: usize, config: &StdpConfig) -> f32 {
    let mut best: Vec<f32> = currents
        .chunks_exact(n)
        .map(|row| row.iter().copied().fold(0.0, f32::max))
        .collect();
    best.sort_by(f32::total_cmp);
    let median = best.get(best.len() / 2).copied().unwrap_or(0.0);
    let beta = evospike_neuron::membrane_decay(DT_MS, config.tau_ms);
    // From rest, a constant current I reaches I·(1 − β^T)/(1 − β) in T steps.
    let reach = (1.0 - beta.powi(config.eval_steps as i32)) / (1.0 - beta);
    if median > 0.0 {
        1.0 / (reach * median)
    } else {
        1.0
    }
}

fn network_spec(spec: &LearnerSpec, config: &StdpConfig) -> NetworkSpec {
    let lif = config.lif();
    let as_map = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    NetworkSpec {
        input_size: spec.input_size,
        input_shape: spec.input_shape.clone(),
        encoder: EncoderDef {
            plugin: "CurrentEncoder".into(),
            params: Params::new(),
        },
        dt_ms: DT_MS,
        steps_per_sample: config.eval_steps,
        layers: vec![
            LayerDef {
                name: "excitatory".into(),
                neuron: "LIFNeuron".into(),
                size: config.hidden[0],
                params: as_map(json!({
                    "tau_ms": lif.tau_ms, "v_rest": 0.0, "v_reset": 0.0,
                    "v_threshold": 1.0, "t_ref_ms": lif.t_ref_ms,
                })),
            },
            LayerDef {
                name: "output".into(),
                neuron: "LeakyIntegrator".into(),
                size: spec.classes.len(),
                params: as_map(json!({ "tau_ms": OUTPUT_TAU_MS })),
            },
        ],
        readout: Readout::Membrane,
        classes: spec.classes.clone(),
    }
}

impl Learner for StdpUnsupervised {
    fn network(&self) -> &NetworkSpec {
        &self.network
    }

    fn hyperparameters(&self) -> Params {
        let mut p = serde_json::to_value(&self.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        p.insert("w_sum".into(), json!(self.w_sum));
        p.insert("model_gain".into(), json!(self.readout.gain));
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
        if data.labels().is_none() {
            return Err(PluginError::invalid_parameter(
                NAME,
                "data",
                "assigning neurons to classes needs labels (STDP itself does not use them)",
            ));
        }
        let len = data.len();
        if self.config.w_sum.is_none() && self.epoch == 0 && self.batch == 0 {
            self.w_sum = self.data_w_sum(data);
            self.normalise();
        }
        let b = self.config.batch;
        let batches = len.div_ceil(b) as u32;
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut StdRng::seed_from_u64(sub_seed(
            self.spec.seed,
            &[1, u64::from(self.epoch)],
        )));
        // The encoder's cap leaves room for every boost; values are scaled under it.
        let cap_hz =
            self.config.max_rate_hz + self.config.boost_hz * self.config.max_retries as f32;
        let params = RateParams {
            max_rate_hz: cap_hz,
            mode: RateMode::Poisson,
        };
        let trained_before = self.running.seen;
        let mut completed = true;
        while self.batch < batches {
            let started = Instant::now();
            let bi = self.batch as usize;
            let mut encoder = RateEncoder::new(
                self.spec.input_size,
                DT_MS,
                params.clone(),
                sub_seed(self.spec.seed, &[2, u64::from(self.epoch), bi as u64]),
            );
            for &i in &order[bi * b..((bi + 1) * b).min(len)] {
                let sample = data.sample(i);
                let mut rate = self.config.max_rate_hz;
                for attempt in 0..=self.config.max_retries {
                    let scale = rate / cap_hz;
                    for (v, &x) in self.values.iter_mut().zip(sample) {
                        *v = x * scale;
                    }
                    let fired = self.present(&mut encoder);
                    if fired >= self.config.min_spikes || attempt == self.config.max_retries {
                        break;
                    }
                    rate += self.config.boost_hz;
                }
                self.normalise();
                self.running.loss += self.quantisation_error(sample);
                self.running.seen += 1;
            }
            self.running.seconds += started.elapsed().as_secs_f64();
            self.batch += 1;
            let report = Progress {
                epoch: self.epoch,
                batch: self.batch - 1,
                batches,
                loss: (self.running.loss / self.running.seen.max(1) as f64) as f32,
                accuracy: f32::NAN,
                samples_per_s: (self.running.seen as f64 / self.running.seconds.max(1e-9)) as f32,
            };
            if progress(&report) == Control::Stop && self.batch < batches {
                completed = false;
                break;
            }
        }
        let r = self.running;
        let mut report = EpochReport {
            epoch: self.epoch,
            loss: (r.loss / r.seen.max(1) as f64) as f32,
            accuracy: f32::NAN,
            samples: (r.seen - trained_before) as usize,
            samples_per_s: (r.seen as f64 / r.seconds.max(1e-9)) as f32,
            completed,
        };
        if completed {
            self.calibrate(data)?;
            report.accuracy = self.readout.train_accuracy as f32;
            self.epoch += 1;
            self.batch = 0;
            self.running = Running::default();
        }
        Ok(report)
    }

    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError> {
        let model = self.model();
        let plugins = evospike_neuron::builtin_plugins();
        let mut net =
            InferenceNet::new(&model, Box::new(CpuBackend::single_threaded()), |def, s| {
                plugins
                    .iter()
                    .filter(|p| p.metadata().name == def.neuron)
                    .find_map(|p| p.as_neuron())
                    .ok_or_else(|| failed(format!("no built-in NEURON plugin `{}`", def.neuron)))?
                    .create_layer(s)
            })
            .map_err(failed)?;
        (0..data.len())
            .map(|i| net.classify(data.sample(i)).map_err(failed))
            .collect()
    }

    fn weights(&self) -> Vec<Tensor> {
        let (inputs, n, classes) = (self.spec.input_size, self.n, self.spec.classes.len());
        let votes = vote_weights(&self.readout.assignment, classes);
        let mut out = vec![0.0f32; classes * n];
        for (k, c) in self.readout.assignment.iter().enumerate() {
            if let Some(c) = c {
                out[*c as usize * n + k] = votes[*c as usize];
            }
        }
        vec![
            Tensor {
                name: weight_name("excitatory"),
                shape: vec![n, inputs],
                data: transpose(&self.folded(self.readout.gain), inputs, n),
            },
            Tensor {
                name: weight_name("output"),
                shape: vec![classes, n],
                data: out,
            },
        ]
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            learner: NAME.into(),
            spec: self.spec.clone(),
            epoch: self.epoch,
            batch: self.batch,
            state: json!({ "running": self.running, "readout": self.readout, "w_sum": self.w_sum }),
            tensors: vec![
                Tensor {
                    name: "weight".into(),
                    shape: vec![self.spec.input_size, self.n],
                    data: self.weights_dense().to_vec(),
                },
                Tensor {
                    name: "theta".into(),
                    shape: vec![self.n],
                    data: self.homeostasis.threshold_offsets().unwrap_or(&[]).to_vec(),
                },
            ],
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
            running: Running,
            readout: ClassVote,
            w_sum: f32,
        }
        let state: State = match serde_json::from_value(c.state.clone()) {
            Ok(s) => s,
            Err(e) => return bad(format!("state: {e}")),
        };
        let find = |name: &str, len: usize| match c.tensors.iter().find(|t| t.name == name) {
            Some(t) if t.data.len() == len => Ok(&t.data),
            Some(t) => Err(PluginError::invalid_parameter(
                NAME,
                "checkpoint",
                format!("tensor {name} has shape {:?}", t.shape),
            )),
            None => Err(PluginError::invalid_parameter(
                NAME,
                "checkpoint",
                format!("has no tensor {name}"),
            )),
        };
        let weight = find("weight", self.spec.input_size * self.n)?;
        let theta = find("theta", self.n)?;
        if state.readout.assignment.len() != self.n {
            return bad("its class assignment is for another layer size".into());
        }
        if let WeightsMut::Dense { values, .. } = self.projection.weights_mut() {
            values.copy_from_slice(weight);
        }
        self.homeostasis
            .threshold_offsets_mut()
            .copy_from_slice(theta);
        self.readout = state.readout;
        self.w_sum = state.w_sum;
        self.running = state.running;
        self.epoch = c.epoch;
        self.batch = c.batch;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
