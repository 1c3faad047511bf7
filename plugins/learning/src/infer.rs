//! Running a trained model in one process, step by step, exactly as a pipeline of
//! layer nodes runs it.
//!
//! [`InferenceNet`] builds each layer from its NEURON plugin (through a factory the
//! caller gives, normally the plugin registry) and each layer's input from a
//! [`Projection`] holding the model's weights, then steps them as the nodes do: the
//! first layer's projection takes the sample's values as graded input
//! ([`Projection::step_analog`], the `CurrentEncoder`'s output), deeper ones the
//! spikes of the layer below ([`Projection::step`]); every layer starts each sample
//! from its reset state; the class scores are the output layer's membrane summed
//! over the steps (or its spike counts), and the largest wins, the first on ties.
//! Because these are the same functions on the same numbers in the same order, a
//! pipeline's readout predicts what `evospike eval` predicts.

use evospike_compute::{spikes, Backend, DenseWeights, Projection, Target};
use evospike_plugin_api::{LayerDef, LayerSpec, NeuronLayer, PluginError, Readout};

use crate::model::Model;
pub use crate::surrogate::engine::argmax;

/// A model that cannot be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// A layer's NEURON plugin refused to build it (unknown plugin, bad parameter).
    #[error("layer `{layer}`: {source}")]
    Layer {
        /// The layer.
        layer: String,
        /// The plugin's error.
        #[source]
        source: PluginError,
    },
    /// Weights, sizes or the input do not fit.
    #[error("{0}")]
    Shape(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] evospike_compute::BackendError),
}

struct Stage {
    name: String,
    layer: Box<dyn NeuronLayer>,
    projection: Projection,
    current: Vec<f32>,
    spikes: Vec<u64>,
}

/// A model ready to classify samples; see the module docs.
pub struct InferenceNet {
    stages: Vec<Stage>,
    steps: u32,
    readout: Readout,
    /// The first layer's input current for the current sample (the same every step).
    first_current: Vec<f32>,
    scores: Vec<f32>,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for InferenceNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceNet")
            .field(
                "layers",
                &self.stages.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// A layer's weights as a projection's `[pre, post]` dense matrix.
pub fn layer_projection(model: &Model, layer: &str) -> Result<Projection, InferError> {
    let t = model.layer_weights(layer).ok_or_else(|| {
        InferError::Shape(format!("the model has no weights for layer `{layer}`"))
    })?;
    let [n_out, n_in] = t.shape[..] else {
        return Err(InferError::Shape(format!(
            "weights of `{layer}` are not a matrix"
        )));
    };
    let values = crate::surrogate::transpose(&t.data, n_out, n_in);
    let dense =
        DenseWeights::new(n_in, n_out, values).map_err(|e| InferError::Shape(e.to_string()))?;
    Projection::new(dense.into(), Target::Excitatory, 0)
        .map_err(|e| InferError::Shape(e.to_string()))
}

/// The [`LayerSpec`] a layer node builds for layer `def` of a model.
pub fn layer_spec(model: &Model, def: &LayerDef) -> LayerSpec {
    LayerSpec {
        num_neurons: def.size,
        dt_ms: model.manifest.network.dt_ms,
        params: def.params.clone(),
        seed: 0,
    }
}

impl InferenceNet {
    /// Builds every layer with `make_layer(def, spec)` (normally the NEURON plugin
    /// named by `def.neuron`, from the registry).
    pub fn new(
        model: &Model,
        backend: Box<dyn Backend>,
        mut make_layer: impl FnMut(&LayerDef, &LayerSpec) -> Result<Box<dyn NeuronLayer>, PluginError>,
    ) -> Result<Self, InferError> {
        let net = &model.manifest.network;
        let mut stages = Vec::with_capacity(net.layers.len());
        for def in &net.layers {
            let layer =
                make_layer(def, &layer_spec(model, def)).map_err(|source| InferError::Layer {
                    layer: def.name.clone(),
                    source,
                })?;
            if layer.len() != def.size {
                return Err(InferError::Shape(format!(
                    "layer `{}` has {} neurons, the model says {}",
                    def.name,
                    layer.len(),
                    def.size
                )));
            }
            stages.push(Stage {
                name: def.name.clone(),
                projection: layer_projection(model, &def.name)?,
                current: vec![0.0; def.size],
                spikes: vec![0; spikes::spike_words_len(def.size)],
                layer,
            });
        }
        let last = stages
            .last()
            .ok_or_else(|| InferError::Shape("the model has no layers".into()))?;
        if net.readout == Readout::Membrane && last.layer.state("v").is_none() {
            return Err(InferError::Shape(format!(
                "the readout is the membrane, but the output layer's plugin `{}` has no state `v`",
                net.layers[net.layers.len() - 1].neuron
            )));
        }
        Ok(Self {
            first_current: vec![0.0; net.layers[0].size],
            scores: vec![0.0; net.classes.len()],
            stages,
            steps: net.steps_per_sample,
            readout: net.readout,
            backend,
        })
    }

    /// The class scores of one sample (`input_size` values in \[0, 1\]).
    pub fn scores(&mut self, sample: &[f32]) -> Result<&[f32], InferError> {
        self.scores.fill(0.0);
        for stage in &mut self.stages {
            stage.layer.reset();
            stage.projection.reset();
        }
        // The input is constant over the presentation: its current is computed once
        // (the same call a layer node makes every step, so the same numbers).
        self.first_current.fill(0.0);
        self.stages[0].projection.step_analog(
            self.backend.as_ref(),
            sample,
            &mut self.first_current,
        )?;
        let last = self.stages.len() - 1;
        for _ in 0..self.steps {
            for l in 0..self.stages.len() {
                let (below, rest) = self.stages.split_at_mut(l);
                let stage = &mut rest[0];
                if l == 0 {
                    stage.current.copy_from_slice(&self.first_current);
                } else {
                    stage.current.fill(0.0);
                    stage.projection.step(
                        self.backend.as_ref(),
                        &below[l - 1].spikes,
                        &mut stage.current,
                    )?;
                }
                stage.layer.step(&stage.current, &mut stage.spikes);
                if l == last {
                    accumulate(self.readout, stage, &mut self.scores);
                }
            }
        }
        Ok(&self.scores)
    }

    /// The predicted class of one sample.
    pub fn classify(&mut self, sample: &[f32]) -> Result<u32, InferError> {
        let scores = self.scores(sample)?;
        Ok(argmax(scores) as u32)
    }
}

/// Adds one step of the output layer to the class scores.
pub fn accumulate_scores(
    readout: Readout,
    layer: &dyn NeuronLayer,
    spikes_out: &[u64],
    scores: &mut [f32],
) {
    match readout {
        Readout::Membrane => {
            if let Some(v) = layer.state("v") {
                for (s, &v) in scores.iter_mut().zip(v) {
                    *s += v;
                }
            }
        }
        Readout::SpikeCount => {
            for (i, s) in scores.iter_mut().enumerate() {
                if spikes::get(spikes_out, i) {
                    *s += 1.0;
                }
            }
        }
    }
}

fn accumulate(readout: Readout, stage: &Stage, scores: &mut [f32]) {
    accumulate_scores(readout, stage.layer.as_ref(), &stage.spikes, scores);
}

/// Accuracy and confusion matrix of predictions against labels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Samples.
    pub samples: usize,
    /// Fraction predicted right.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    /// Scores `predicted` against `labels` over `classes` classes.
    pub fn new(predicted: &[u32], labels: &[u32], classes: usize) -> Self {
        let mut confusion = vec![vec![0u64; classes]; classes];
        let mut right = 0usize;
        for (&p, &y) in predicted.iter().zip(labels) {
            if let Some(row) = confusion.get_mut(y as usize) {
                if let Some(c) = row.get_mut(p as usize) {
                    *c += 1;
                }
            }
            right += usize::from(p == y);
        }
        Self {
            samples: labels.len(),
            accuracy: if labels.is_empty() {
                0.0
            } else {
                right as f64 / labels.len() as f64
            },
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn the_first_of_equal_scores_wins() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[-3.0, -1.0]), 1);
    }
}
