//! The LEARNING family: learners that train a network on a data set.
//!
//! A [`LearningPlugin`] is a factory of [`Learner`]s, as a NEURON plugin is a
//! factory of layers. A learner is built from a [`LearnerSpec`] (the shape of the
//! data, the classes, its own parameters and a seed); it decides the network it
//! trains ([`Learner::network`], a [`NetworkSpec`] of layers of NEURON plugins) and
//! then trains it one epoch at a time in mini-batches ([`Learner::train_epoch`]),
//! calling back after every batch with [`Progress`]; the callback returns
//! [`Control::Stop`] to cancel between batches. Its whole state — weights, optimizer
//! moments, where it is in the epoch — is a [`Checkpoint`] it can save and resume
//! from, and its trained parameters are [`Tensor`]s named `layers.<name>.weight`
//! with the PyTorch `[out, in]` layout.
//!
//! The network a learner trains is the one NEURON plugins step at inference: a
//! model's layers name the plugin and its parameters, so trained weights run
//! unchanged in layer nodes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Params, Plugin, PluginError};

/// How samples enter the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderDef {
    /// ENCODER plugin name (`CurrentEncoder`: the scaled value is the input current every step).
    pub plugin: String,
    /// Its parameters (for `CurrentEncoder`: `scale`, what raw values are multiplied by).
    #[serde(default)]
    pub params: Params,
}

/// One layer of a feed-forward network: a population of a NEURON plugin, fully
/// connected from the layer before it (or from the input).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDef {
    /// Name, unique in the network (`hidden`, `output`); weights are `layers.<name>.weight`.
    pub name: String,
    /// NEURON plugin (`LIFNeuron`, `LeakyIntegrator`).
    pub neuron: String,
    /// Neurons.
    pub size: usize,
    /// The plugin's parameters.
    #[serde(default)]
    pub params: Params,
}

/// How the output layer's activity becomes class scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// The output neurons' membrane (`state("v")`), summed over the steps.
    #[default]
    Membrane,
    /// The output neurons' spikes, counted over the steps.
    SpikeCount,
}

/// The network a learner trains and a model carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Values per sample.
    pub input_size: usize,
    /// Their shape (`[28, 28]` for an image; `[n]` otherwise).
    pub input_shape: Vec<usize>,
    /// How samples become input.
    pub encoder: EncoderDef,
    /// Time step in ms.
    pub dt_ms: f32,
    /// Steps each sample is presented for.
    pub steps_per_sample: u32,
    /// Layers from input to output; the last one's neurons are the classes.
    pub layers: Vec<LayerDef>,
    /// How the last layer's activity becomes class scores (the largest wins; the
    /// first on ties).
    pub readout: Readout,
    /// Class names, one per output neuron.
    pub classes: Vec<String>,
}

impl NetworkSpec {
    /// Checks sizes and names: at least one layer, no empty layer, unique names,
    /// one class per output neuron, a positive time step.
    pub fn validate(&self) -> Result<(), String> {
        if self.input_size == 0 || self.input_shape.iter().product::<usize>() != self.input_size {
            return Err(format!(
                "input_shape {:?} does not hold input_size {}",
                self.input_shape, self.input_size
            ));
        }
        if !(self.dt_ms > 0.0 && self.dt_ms.is_finite()) {
            return Err(format!("dt_ms must be > 0, got {}", self.dt_ms));
        }
        if self.steps_per_sample == 0 {
            return Err("steps_per_sample must be > 0".into());
        }
        let Some(last) = self.layers.last() else {
            return Err("a network needs at least one layer".into());
        };
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.size == 0 {
                return Err(format!("layer `{}` has no neurons", layer.name));
            }
            if self.layers[..i].iter().any(|l| l.name == layer.name) {
                return Err(format!("two layers are named `{}`", layer.name));
            }
        }
        if last.size != self.classes.len() {
            return Err(format!(
                "the output layer `{}` has {} neurons but there are {} classes",
                last.name,
                last.size,
                self.classes.len()
            ));
        }
        Ok(())
    }

    /// `(inputs, outputs)` of every layer, in order.
    pub fn layer_shapes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let ins = std::iter::once(self.input_size).chain(self.layers.iter().map(|l| l.size));
        ins.zip(self.layers.iter().map(|l| l.size))
    }
}

/// A data set in memory: `len` samples of `num_inputs` values, with labels or not.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    inputs: &'a [f32],
    num_inputs: usize,
    labels: Option<&'a [u32]>,
    num_classes: usize,
}

impl<'a> Dataset<'a> {
    /// Checks that `inputs` holds whole samples, that there is one label per sample
    /// and that every label is below `num_classes`.
    pub fn new(
        inputs: &'a [f32],
        num_inputs: usize,
        labels: Option<&'a [u32]>,
        num_classes: usize,
    ) -> Result<Self, String> {
        if num_inputs == 0 || inputs.len() % num_inputs != 0 {
            return Err(format!(
                "{} values do not make whole samples of {num_inputs}",
                inputs.len()
            ));
        }
        let len = inputs.len() / num_inputs;
        if let Some(labels) = labels {
            if labels.len() != len {
                return Err(format!("{} labels for {len} samples", labels.len()));
            }
            if let Some((i, l)) = labels
                .iter()
                .enumerate()
                .find(|(_, &l)| l as usize >= num_classes)
            {
                return Err(format!(
                    "sample {i} has label {l}, but there are {num_classes} classes"
                ));
            }
        }
        Ok(Self {
            inputs,
            num_inputs,
            labels,
            num_classes,
        })
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.inputs.len() / self.num_inputs
    }

    /// `true` without samples.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Values per sample.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs
    }

    /// Classes the labels range over.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Sample `i`'s values.
    pub fn sample(&self, i: usize) -> &'a [f32] {
        &self.inputs[i * self.num_inputs..(i + 1) * self.num_inputs]
    }

    /// Every sample's values, one after the other.
    pub fn inputs(&self) -> &'a [f32] {
        self.inputs
    }

    /// The labels, if the data set has them.
    pub fn labels(&self) -> Option<&'a [u32]> {
        self.labels
    }
}

/// What a learner is built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnerSpec {
    /// Values per sample.
    pub input_size: usize,
    /// Their shape (`[28, 28]` for MNIST).
    pub input_shape: Vec<usize>,
    /// Class names (the output layer has one neuron per class).
    pub classes: Vec<String>,
    /// The learner's own parameters (`hidden`, `lr`, `epochs`, …); unknown keys are errors.
    #[serde(default)]
    pub params: Params,
    /// Seed of every random choice (initial weights, shuffling, augmentation).
    #[serde(default)]
    pub seed: u64,
}

/// Progress after one mini-batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epoch being trained, from 0.
    pub epoch: u32,
    /// Batch just finished, from 0.
    pub batch: u32,
    /// Batches in this epoch.
    pub batches: u32,
    /// Mean loss over the epoch so far.
    pub loss: f32,
    /// Training accuracy over the epoch so far (NaN for unlabelled learning).
    pub accuracy: f32,
    /// Samples per second over the epoch so far.
    pub samples_per_s: f32,
}

/// What a progress callback tells the learner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this batch (the epoch is left unfinished and can be resumed).
    Stop,
}

/// The result of [`Learner::train_epoch`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The epoch, from 0.
    pub epoch: u32,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (NaN for unlabelled learning).
    pub accuracy: f32,
    /// Samples trained on in this call.
    pub samples: usize,
    /// Samples per second.
    pub samples_per_s: f32,
    /// `false` when a callback stopped the epoch early.
    pub completed: bool,
}

/// A named tensor of `f32`s, row-major.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Name (`layers.hidden.weight`, `adam.m.layers.hidden.weight`).
    pub name: String,
    /// Shape; the product is `data.len()`.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// A learner's whole state: enough to resume training exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which learner wrote it (a checkpoint only resumes the same learner).
    pub learner: String,
    /// The spec the learner was built from.
    pub spec: LearnerSpec,
    /// Epochs completed.
    pub epoch: u32,
    /// Batches of the current epoch completed (0 at an epoch boundary).
    pub batch: u32,
    /// Everything else the learner needs (optimizer step count, running sums, …).
    pub state: serde_json::Value,
    /// Weights and optimizer moments.
    pub tensors: Vec<Tensor>,
}

/// A network being trained; built by a [`LearningPlugin`].
pub trait Learner: Send + fmt::Debug {
    /// The network this learner trains.
    fn network(&self) -> &NetworkSpec;

    /// The resolved hyperparameters (defaults filled in), for provenance.
    fn hyperparameters(&self) -> Params;

    /// `(epochs completed, batches of the current epoch completed)`.
    fn position(&self) -> (u32, u32);

    /// Trains the rest of the current epoch on `data`, calling `progress` after every
    /// batch; stops early when it returns [`Control::Stop`].
    fn train_epoch(
        &mut self,
        data: &Dataset<'_>,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<EpochReport, PluginError>;

    /// The predicted class of every sample of `data` with the current weights.
    fn predict(&mut self, data: &Dataset<'_>) -> Result<Vec<u32>, PluginError>;

    /// The trained parameters, `layers.<name>.weight` as `[out, in]`.
    fn weights(&self) -> Vec<Tensor>;

    /// The whole state.
    fn checkpoint(&self) -> Checkpoint;

    /// Continues from `checkpoint` (written by the same learner with the same spec).
    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), PluginError>;
}

/// A LEARNING plugin: a factory of [`Learner`]s.
pub trait LearningPlugin: Plugin {
    /// Builds a learner; a bad spec or parameter is an error naming it.
    fn create_learner(&self, spec: &LearnerSpec) -> Result<Box<dyn Learner>, PluginError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NetworkSpec {
        NetworkSpec {
            input_size: 4,
            input_shape: vec![2, 2],
            encoder: EncoderDef {
                plugin: "CurrentEncoder".into(),
                params: Params::new(),
            },
            dt_ms: 1.0,
            steps_per_sample: 10,
            layers: vec![
                LayerDef {
                    name: "hidden".into(),
                    neuron: "LIFNeuron".into(),
                    size: 3,
                    params: Params::new(),
                },
                LayerDef {
                    name: "output".into(),
                    neuron: "LeakyIntegrator".into(),
                    size: 2,
                    params: Params::new(),
                },
            ],
            classes: vec!["a".into(), "b".into()],
            readout: Readout::Membrane,
        }
    }

    #[test]
    fn network_specs_are_checked() {
        assert_eq!(spec().validate(), Ok(()));
        assert_eq!(spec().layer_shapes().collect::<Vec<_>>(), [(4, 3), (3, 2)]);
        let mut bad = spec();
        bad.classes.pop();
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("2 neurons but there are 1 classes"));
        let mut bad = spec();
        bad.layers[1].name = "hidden".into();
        assert!(bad.validate().unwrap_err().contains("two layers are named"));
        let mut bad = spec();
        bad.input_shape = vec![3];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn datasets_check_lengths_and_labels() {
        let x = [0.0; 6];
        assert_eq!(Dataset::new(&x, 3, Some(&[0, 1]), 2).unwrap().len(), 2);
        assert!(Dataset::new(&x, 4, None, 2).is_err());
        assert!(Dataset::new(&x, 3, Some(&[0]), 2).is_err());
        let err = Dataset::new(&x, 3, Some(&[0, 2]), 2).unwrap_err();
        assert!(err.contains("sample 1 has label 2"), "{err}");
    }
}
