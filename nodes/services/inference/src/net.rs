//! [`BatchNet`]: a model's forward pass for a batch of samples stepped together.
//!
//! It computes, for every sample, exactly what
//! [`InferenceNet`](evospike_learning::infer::InferenceNet) computes for that
//! sample alone — the same numbers in the same order, so `evospike eval`, a
//! pipeline of layer nodes and this service give bit-identical scores, whatever
//! else shares the batch:
//!
//! - each sample has its own layer instances (built by the NEURON plugin, reset
//!   before the sample), stepped one after the other;
//! - the input projection of the value samples — the one dense product, computed
//!   once per sample since its input is constant — runs for the whole batch at
//!   once ([`Backend::propagate_analog_batch`]): a weight row is read once per
//!   group of samples, and each sample's sums get their terms in row order, as
//!   [`Projection`](evospike_compute::Projection) adds them one sample at a time;
//! - spikes (of a layer, or of a spike-train sample at the input) travel as
//!   they do in a layer node, through [`Backend::propagate`] of the rows of the
//!   neurons that fired, sample by sample: event-driven, that is already cheap.
//!
//! A spike-train sample drives the first layer with its spikes instead of a
//! constant current (see [`crate::input`]).

use std::sync::Arc;

use evospike_compute::{spikes, Backend, BackendError, Weights};
use evospike_learning::infer::{accumulate_scores, layer_projection, layer_spec, InferError};
use evospike_learning::model::Model;
use evospike_plugin_api::{LayerDef, LayerSpec, NeuronLayer, PluginError, Readout};

use crate::input::Sample;

/// Builds a layer from its definition (normally through the NEURON plugin).
pub type LayerFactory<'a> =
    dyn FnMut(&LayerDef, &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> + 'a;

struct Stage {
    weights: Weights,
    sign: f32,
    pre: usize,
    size: usize,
    /// One layer per batch slot.
    layers: Vec<Box<dyn NeuronLayer>>,
    /// `[capacity, size]` input current of this step.
    current: Vec<f32>,
    /// Spike words per slot.
    spikes: Vec<Vec<u64>>,
}

/// A model ready to run batches of up to `capacity` samples.
pub struct BatchNet {
    stages: Vec<Stage>,
    readout: Readout,
    classes: usize,
    capacity: usize,
    backend: Arc<dyn Backend>,
    /// `[capacity, inputs]`: the batch's values, then its input spikes of a step.
    input: Vec<f32>,
    /// `[capacity, first layer]`: the constant current of the value samples.
    first_current: Vec<f32>,
    /// The active presynaptic neurons of one sample (reused).
    active: Vec<u32>,
}

impl std::fmt::Debug for BatchNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNet")
            .field("layers", &self.stages.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl BatchNet {
    /// A net for batches of up to `capacity` samples of `model`, its layers built
    /// by `make_layer`.
    ///
    /// # Errors
    /// A layer cannot be built or does not fit the model.
    pub fn new(
        model: &Model,
        backend: Arc<dyn Backend>,
        capacity: usize,
        make_layer: &mut LayerFactory<'_>,
    ) -> Result<BatchNet, InferError> {
        let capacity = capacity.max(1);
        let net = &model.manifest.network;
        let mut stages = Vec::with_capacity(net.layers.len());
        let mut widest = 0;
        for (def, (pre, size)) in net.layers.iter().zip(net.layer_shapes()) {
            let projection = layer_projection(model, &def.name)?;
            let mut layers = Vec::with_capacity(capacity);
            for _ in 0..capacity {
                let layer = make_layer(def, &layer_spec(model, def)).map_err(|source| {
                    InferError::Layer {
                        layer: def.name.clone(),
                        source,
                    }
                })?;
                if layer.len() != size {
                    return Err(InferError::Shape(format!(
                        "layer `{}` has {} neurons, the model says {size}",
                        def.name,
                        layer.len()
                    )));
                }
                layers.push(layer);
            }
            widest = widest.max(pre);
            stages.push(Stage {
                sign: projection.target().sign(),
                weights: projection.weights().clone(),
                pre,
                size,
                layers,
                current: vec![0.0; capacity * size],
                spikes: vec![vec![0; spikes::spike_words_len(size)]; capacity],
            });
        }
        let last = stages
            .last()
            .ok_or_else(|| InferError::Shape("the model has no layers".into()))?;
        if net.readout == Readout::Membrane && last.layers[0].state("v").is_none() {
            return Err(InferError::Shape(format!(
                "the readout is the membrane, but the output layer's plugin `{}` has no state `v`",
                net.layers[net.layers.len() - 1].neuron
            )));
        }
        Ok(BatchNet {
            first_current: vec![0.0; capacity * stages[0].size],
            input: vec![0.0; capacity * net.input_size],
            active: Vec::with_capacity(widest),
            stages,
            readout: net.readout,
            classes: net.classes.len(),
            capacity,
            backend,
        })
    }

    /// Most samples in one batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The class scores of every sample, simulating `steps` steps (a spike-train
    /// sample has as many steps as its train; it must equal `steps`).
    ///
    /// # Errors
    /// More samples than the capacity, a sample of the wrong size, or a backend failure.
    pub fn scores(&mut self, samples: &[&Sample], steps: u32) -> Result<Vec<Vec<f32>>, InferError> {
        let n = samples.len();
        if n > self.capacity {
            return Err(InferError::Shape(format!(
                "{n} samples in a batch of at most {}",
                self.capacity
            )));
        }
        let inputs = self.stages[0].pre;
        let backend = self.backend.clone();
        for stage in &mut self.stages {
            for layer in &mut stage.layers[..n] {
                layer.reset();
            }
        }
        // The value samples' current, once: it is the same every step.
        let any_spikes = self.load_values(samples, inputs)?;
        self.first_current[..n * self.stages[0].size].fill(0.0);
        {
            let first = &self.stages[0];
            backend.propagate_analog_batch(
                &first.weights,
                &self.input[..n * inputs],
                n,
                first.sign,
                &mut self.first_current[..n * first.size],
            )?;
        }
        let mut scores = vec![vec![0.0f32; self.classes]; n];
        let last = self.stages.len() - 1;
        for t in 0..steps as usize {
            for l in 0..self.stages.len() {
                if l == 0 {
                    self.first_layer_input(samples, t, any_spikes)?;
                } else {
                    self.deeper_layer_input(l, n)?;
                }
                let stage = &mut self.stages[l];
                for (b, layer) in stage.layers[..n].iter_mut().enumerate() {
                    layer.step(
                        &stage.current[b * stage.size..(b + 1) * stage.size],
                        &mut stage.spikes[b],
                    );
                    if l == last {
                        accumulate_scores(
                            self.readout,
                            layer.as_ref(),
                            &stage.spikes[b],
                            &mut scores[b],
                        );
                    }
                }
            }
        }
        Ok(scores)
    }

    /// Writes the value samples into `input` (zeros for spike trains); whether
    /// any sample is a spike train.
    fn load_values(&mut self, samples: &[&Sample], inputs: usize) -> Result<bool, InferError> {
        let mut any_spikes = false;
        for (b, sample) in samples.iter().enumerate() {
            let row = &mut self.input[b * inputs..(b + 1) * inputs];
            match sample {
                Sample::Values(values) if values.len() == inputs => row.copy_from_slice(values),
                Sample::Values(values) => {
                    return Err(InferError::Shape(format!(
                        "a sample has {} values; the model takes {inputs}",
                        values.len()
                    )))
                }
                Sample::Spikes(_) => {
                    row.fill(0.0);
                    any_spikes = true;
                }
            }
        }
        Ok(any_spikes)
    }

    /// The first layer's input at step `t`: the constant current, plus the
    /// spikes of the spike-train samples at `t`.
    fn first_layer_input(
        &mut self,
        samples: &[&Sample],
        t: usize,
        any_spikes: bool,
    ) -> Result<(), BackendError> {
        let n = samples.len();
        let first = &mut self.stages[0];
        first.current[..n * first.size].copy_from_slice(&self.first_current[..n * first.size]);
        if !any_spikes {
            return Ok(());
        }
        for (b, sample) in samples.iter().enumerate() {
            if let Sample::Spikes(by_step) = sample {
                let active = by_step.get(t).map_or(&[][..], Vec::as_slice);
                if !active.is_empty() {
                    self.backend.propagate(
                        &first.weights,
                        active,
                        first.sign,
                        &mut first.current[b * first.size..(b + 1) * first.size],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Layer `l`'s input: the spikes of layer `l - 1` through its weights.
    fn deeper_layer_input(&mut self, l: usize, n: usize) -> Result<(), BackendError> {
        let (below, rest) = self.stages.split_at_mut(l);
        let below = &below[l - 1];
        let stage = &mut rest[0];
        let current = &mut stage.current[..n * stage.size];
        current.fill(0.0);
        for (b, words) in below.spikes[..n].iter().enumerate() {
            spikes::collect_below(words, stage.pre, &mut self.active);
            if !self.active.is_empty() {
                self.backend.propagate(
                    &stage.weights,
                    &self.active,
                    stage.sign,
                    &mut current[b * stage.size..(b + 1) * stage.size],
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicBool;

    use evospike_compute::CpuBackend;
    use evospike_learning::data::Data;
    use evospike_learning::fit;
    use evospike_learning::infer::InferenceNet;
    use evospike_learning::model::Provenance;
    use evospike_learning::surrogate::SurrogateGradient;
    use evospike_plugin_api::LearnerSpec;

    use super::*;

    /// A small two-layer model trained for a few epochs on bright-left/right images.
    pub(crate) fn tiny_model() -> Model {
        let x = [1.0, 0.2, 0.9, 0.0, 0.1, 1.0, 0.0, 0.8].repeat(8);
        let y = [0, 1].repeat(8);
        let data = Data::from_parts(x, vec![2, 2], Some(y)).unwrap();
        let spec = LearnerSpec {
            input_size: 4,
            input_shape: vec![2, 2],
            classes: vec!["left".into(), "right".into()],
            params: serde_json::from_str(
                r#"{"hidden": [12], "steps": 8, "batch": 4, "lr": 0.02, "threads": 1}"#,
            )
            .unwrap(),
            seed: 3,
        };
        let mut learner = SurrogateGradient::new(&spec).unwrap();
        let train = data.view(2).unwrap();
        fit::fit(
            &mut learner,
            &train,
            None,
            3,
            None,
            &AtomicBool::new(false),
            |_| {},
        )
        .unwrap();
        fit::model_of(&learner, Provenance::default(), [])
    }

    fn layers() -> impl FnMut(&LayerDef, &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError> {
        let neurons = crate::neurons::Neurons::new::<&str>(&[]).unwrap();
        move |def, spec| neurons.layer(def, spec)
    }

    #[test]
    fn a_batch_scores_each_sample_as_inference_net_does_alone() {
        let model = tiny_model();
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::single_threaded());
        let mut make = layers();
        let mut reference =
            InferenceNet::new(&model, Box::new(CpuBackend::single_threaded()), &mut make).unwrap();
        let mut net = BatchNet::new(&model, backend, 5, &mut make).unwrap();
        let samples: Vec<Sample> = (0..5)
            .map(|i| {
                Sample::Values(
                    (0..4)
                        .map(|j| ((i * 7 + j * 3) % 11) as f32 / 10.0)
                        .collect(),
                )
            })
            .collect();
        let steps = model.manifest.network.steps_per_sample;
        for n in [1, 3, 5] {
            let batch: Vec<&Sample> = samples[..n].iter().collect();
            let scores = net.scores(&batch, steps).unwrap();
            for (b, sample) in batch.iter().enumerate() {
                let Sample::Values(v) = sample else {
                    unreachable!()
                };
                let alone = reference.scores(v).unwrap();
                let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&scores[b]), bits(alone), "batch of {n}, sample {b}");
            }
        }
        assert!(net
            .scores(&samples.iter().chain(&samples).collect::<Vec<_>>(), steps)
            .is_err());
    }

    #[test]
    fn a_spike_train_drives_the_first_layer() {
        let model = tiny_model();
        let backend: Arc<dyn Backend> = Arc::new(CpuBackend::single_threaded());
        let mut net = BatchNet::new(&model, backend, 2, &mut layers()).unwrap();
        let silent = Sample::Spikes(vec![vec![]; 8]);
        let busy = Sample::Spikes(vec![vec![0, 2]; 8]);
        let values = Sample::Values(vec![1.0, 0.0, 1.0, 0.0]);
        let scores = net.scores(&[&silent, &busy], 8).unwrap();
        assert_ne!(scores[0], scores[1]);
        // A mixed batch leaves each sample's answer as it is alone.
        let mixed = net.scores(&[&values, &busy], 8).unwrap();
        assert_eq!(mixed[1], scores[1]);
        assert_eq!(mixed[0], net.scores(&[&values], 8).unwrap()[0]);
    }
}
