//! `Distillation`: a trained model (the teacher) teaches a smaller student.
//!
//! The student is a [`SurrogateGradient`] network — fewer hidden neurons or fewer
//! time steps than the teacher — trained by the same engine with the
//! distillation loss of Hinton et al. (2015) in place of cross-entropy:
//!
//! ```text
//! L = (1 − α)·CE(softmax(z_s), y) + α·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ))
//! ∂L/∂z_s = (1 − α)·(softmax(z_s) − onehot(y)) + α·τ·(softmax(z_s/τ) − softmax(z_t/τ))
//! ```
//!
//! The teacher is any evospike model directory. It runs through the NEURON plugins
//! step by step ([`InferenceNet`], as `evospike eval` runs it) on exactly the batch
//! the student sees — with `shift` > 0 that is randomly shifted copies of the
//! training images, so the teacher labels augmented data the labels never cover.
//! Its scores are put on the scale the student is trained on: the membrane readout's
//! sum over steps is divided by the teacher's steps (the student's score is the
//! mean), a spike-count readout is taken as it is.
//!
//! Parameters: `teacher` (required: the model directory), `alpha` (default 0.5, in
//! \[0, 1\]), `temperature` (default 1, > 0: the scores of spiking networks are
//! mean membranes of a few units, already soft; the τ = 4 of networks with large
//! logits flattens them toward uniform), and every `SurrogateGradient`
//! parameter for the student (`hidden` defaults to `[100]` here).
//!
//! The teacher's layers are built from the built-in NEURON plugins; a teacher
//! whose layers use an external plugin is refused with an error naming it.

use std::path::Path;

use evospike_compute::CpuBackend;
use evospike_plugin_api::{
    Checkpoint, Control, Dataset, EpochReport, Learner, LearnerSpec, NetworkSpec, Params,
    PluginError, Progress, Readout, Tensor,
};
use serde_json::{json, Value};

use crate::infer::InferenceNet;
use crate::model::Model;
use crate::surrogate::engine::softmax;
use crate::surrogate::{BatchLoss, LossBatch, SurrogateGradient, NAME as STUDENT};

/// The plugin and learner name.
pub const NAME: &str = "Distillation";

/// Hidden layer of the student when `hidden` is not given.
const DEFAULT_STUDENT_HIDDEN: usize = 100;

/// The distillation settings (the rest of the parameters configure the student).
#[derive(Clone, Debug, PartialEq)]
pub struct DistillConfig {
    /// The teacher's model directory.
    pub teacher: String,
    /// Weight of the teacher's term.
    pub alpha: f32,
    /// Softmax temperature τ.
    pub temperature: f32,
}

impl DistillConfig {
    /// Takes `teacher`, `alpha` and `temperature` out of `params` and checks them.
    fn take(params: &mut Params) -> Result<Self, PluginError> {
        let bad = |param: &str, reason: String| PluginError::invalid_parameter(NAME, param, reason);
        let teacher = match params.remove("teacher") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(other) => {
                return Err(bad(
                    "teacher",
                    format!("must be a model directory (a string), got {other}"),
                ))
            }
            None => {
                return Err(bad(
                    "teacher",
                    "is required: the directory of a trained evospike model (--teacher MODEL)"
                        .into(),
                ))
            }
        };
        let mut number = |key: &str, default: f32| -> Result<f32, PluginError> {
            match params.remove(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| bad(key, format!("must be a number, got {v}"))),
            }
        };
        let alpha = number("alpha", 0.5)?;
        let temperature = number("temperature", 1.0)?;
        if !(0.0..=1.0).contains(&alpha) {
            return Err(bad("alpha", format!("must be in [0, 1], got {alpha}")));
        }
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(bad(
                "temperature",
                format!("must be > 0, got {temperature}"),
            ));
        }
        Ok(Self {
            teacher,
            alpha,
            temperature,
        })
    }
}

/// The teacher: one [`InferenceNet`] per thread and the factor that puts its
/// scores on the student's scale.
struct Teacher {
    nets: Vec<InferenceNet>,
    scale: f32,
    inputs: usize,
    classes: usize,
}

impl std::fmt::Debug for Teacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Teacher")
            .field("threads", &self.nets.len())
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl Teacher {
    fn load(dir: &str, spec: &LearnerSpec, threads: usize) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::invalid_parameter(NAME, "teacher", reason);
        let model = Model::load(Path::new(dir)).map_err(|e| bad(e.to_string()))?;
        let net = &model.manifest.network;
        if net.input_size != spec.input_size {
            return Err(bad(format!(
                "{dir} takes {} inputs ({:?}) but the data has {} ({:?})",
                net.input_size, net.input_shape, spec.input_size, spec.input_shape
            )));
        }
        if net.classes.len() != spec.classes.len() {
            return Err(bad(format!(
                "{dir} has {} classes but the data {}",
                net.classes.len(),
                spec.classes.len()
            )));
        }
        let plugins = evospike_neuron::builtin_plugins();
        let nets = (0..threads.max(1))
            .map(|_| {
                InferenceNet::new(
                    &model,
                    Box::new(CpuBackend::single_threaded()),
                    |def, layer| {
                        plugins
                            .iter()
                            .filter(|p| p.metadata().name == def.neuron)
                            .find_map(|p| p.as_neuron())
                            .ok_or_else(|| {
                                PluginError::invalid_parameter(
                                    NAME,
                                    "teacher",
                                    format!(
                                        "layer `{}` uses NEURON plugin `{}`, which is not built in",
                                        def.name, def.neuron
                                    ),
                                )
                            })?
                            .create_layer(layer)
                    },
                )
                .map_err(|e| bad(format!("{dir}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scale = match net.readout {
            Readout::Membrane => 1.0 / net.steps_per_sample as f32,
            Readout::SpikeCount => 1.0,
        };
        Ok(Self {
            nets,
            scale,
            inputs: net.input_size,
            classes: net.classes.len(),
        })
    }

    /// The teacher's scores of `rows` samples `x` into `out` (`[rows, classes]`).
    fn scores(&mut self, x: &[f32], out: &mut [f32]) -> Result<(), PluginError> {
        let (n, c, scale) = (self.inputs, self.classes, self.scale);
        let run = |net: &mut InferenceNet, x: &[f32], out: &mut [f32]| {
            for (sample, row) in x.chunks_exact(n).zip(out.chunks_exact_mut(c)) {
                let s = net
                    .scores(sample)
                    .map_err(|e| PluginError::failed(NAME, format!("teacher: {e}")))?;
                for (o, &v) in row.iter_mut().zip(s) {
                    *o = v * scale;
                }
            }
            Ok::<(), PluginError>(())
        };
        let rows = x.len() / n;
        if self.nets.len() == 1 || rows < 2 * self.nets.len() {
            return run(&mut self.nets[0], x, out);
        }
        let per = rows.div_ceil(self.nets.len());
        std::thread::scope(|scope| {
            let jobs: Vec<_> = self
                .nets
                .iter_mut()
                .zip(x.chunks(per * n).zip(out.chunks_mut(per * c)))
                .map(|(net, (x, out))| scope.spawn(move || run(net, x, out)))
                .collect();
            jobs.into_iter().try_for_each(|j| {
                j.join()
                    .map_err(|_| PluginError::failed(NAME, "a teacher thread panicked"))?
            })
        })
    }
}

/// The distillation loss hook (module docs), with its buffers.
#[derive(Debug)]
struct DistillLoss {
    config: DistillConfig,
    teacher: Teacher,
    teacher_scores: Vec<f32>,
    p_teacher: Vec<f32>,
    p_student: Vec<f32>,
}

impl BatchLoss for DistillLoss {
    fn loss(&mut self, b: LossBatch<'_>) -> Result<(f64, usize), PluginError> {
        let rows = b.labels.len();
        let teacher = &mut self.teacher_scores[..rows * b.classes];
        self.teacher.scores(b.x, teacher)?;
        Ok(distillation_loss(
            (self.config.alpha, self.config.temperature),
            b.labels,
            b.scores,
            teacher,
            b.grad,
            (&mut self.p_teacher, &mut self.p_student),
        ))
    }
}

/// The loss of the module docs for a batch of student scores `z` and teacher
/// scores `z_t` (both `[B, classes]`): writes ∂L/∂z (divided by B) into `grad`
/// and returns `(summed loss, correct predictions)`. `p` is two buffers of
/// `classes` values.
fn distillation_loss(
    (alpha, tau): (f32, f32),
    labels: &[u32],
    z: &[f32],
    z_t: &[f32],
    grad: &mut [f32],
    (p_t, p_s): (&mut [f32], &mut [f32]),
) -> (f64, usize) {
    let c = p_t.len();
    let inv_b = 1.0 / labels.len() as f32;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (i, &y) in labels.iter().enumerate() {
        let z = &z[i * c..(i + 1) * c];
        let g = &mut grad[i * c..(i + 1) * c];
        // Hard part: (1 − α)·(softmax(z) − onehot).
        softmax(z, 1.0, g);
        let ce = -f64::from(g[y as usize].max(1e-30).ln());
        g[y as usize] -= 1.0;
        // Soft part: α·τ·(softmax(z/τ) − softmax(z_t/τ)); the KL for the report.
        softmax(&z_t[i * c..(i + 1) * c], tau, p_t);
        softmax(z, tau, p_s);
        let mut kl = 0.0f64;
        for ((g, &pt), &ps) in g.iter_mut().zip(p_t.iter()).zip(p_s.iter()) {
            *g = ((1.0 - alpha) * *g + alpha * tau * (ps - pt)) * inv_b;
            if pt > 0.0 {
                kl += f64::from(pt) * (f64::from(pt).ln() - f64::from(ps.max(1e-30)).ln());
            }
        }
        loss += f64::from(1.0 - alpha) * ce + f64::from(alpha * tau * tau) * kl;
        correct += usize::from(crate::infer::argmax(z) == y as usize);
    }
    (loss, correct)
}

/// The `Distillation` learner: a [`SurrogateGradient`] student and a teacher.
pub struct Distillation {
    spec: LearnerSpec,
    student: SurrogateGradient,
    loss: DistillLoss,
}

impl std::fmt::Debug for Distillation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distillation")
            .field("student", &self.student)
            .field("teacher", &self.loss.config.teacher)
            .finish_non_exhaustive()
    }
}

/// A student error under this learner's name.
fn renamed(e: PluginError) -> PluginError {
    match e {
        PluginError::InvalidParameter { param, reason, .. } => {
            PluginError::invalid_parameter(NAME, param, reason)
        }
        PluginError::Failed { reason, .. } => PluginError::failed(NAME, reason),
        other => other,
    }
}

impl Distillation {
    /// Loads the teacher and builds the student.
    pub fn new(spec: &LearnerSpec) -> Result<Self, PluginError> {
        let mut params = spec.params.clone();
        let config = DistillConfig::take(&mut params)?;
        params
            .entry("hidden")
            .or_insert_with(|| json!([DEFAULT_STUDENT_HIDDEN]));
        let student_spec = LearnerSpec {
            params,
            ..spec.clone()
        };
        // The student's parameters are checked before the teacher is loaded.
        let student = SurrogateGradient::new(&student_spec).map_err(renamed)?;
        let threads = match student.threads() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let teacher = Teacher::load(&config.teacher, spec, threads)?;
        let capacity = student.batch_capacity() * spec.classes.len();
        Ok(Self {
            spec: spec.clone(),
            student,
            loss: DistillLoss {
                config,
                teacher,
                teacher_scores: vec![0.0; capacity],
                p_teacher: vec![0.0; spec.classes.len()],
                p_student: vec![0.0; spec.classes.len()],
            },
        })
    }
}

impl Learner for Distillation {
    fn network(&self) -> &NetworkSpec {
        self.student.network()
    }

    fn hyperparameters(&self) -> Params {
        let mut p = self.student.hyperparameters();
        let c = &self.loss.config;
        p.insert("teacher".into(), json!(c.teacher));
        p.insert("alpha".into(), json!(c.alpha));
        p.insert("temperature".into(), json!(c.temperature));
        p
    }

    fn position(&self) -> (u32, u32) {
        self.student.position()
    }

    fn train_epoch(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<EpochReport, PluginError> {
        self.student
            .train_epoch_with(data, progress, &mut self.loss)
            .map_err(renamed)
    }

    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError> {
        self.student.predict(data).map_err(renamed)
    }

    fn weights(&self) -> Vec<Tensor> {
        self.student.weights()
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            learner: NAME.into(),
            spec: self.spec.clone(),
            ..self.student.checkpoint()
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
        let inner = Checkpoint {
            learner: STUDENT.into(),
            spec: self.student.spec().clone(),
            ..c.clone()
        };
        self.student.restore(&inner).map_err(renamed)
    }
}

#[cfg(test)]
mod tests;
