//! Nodes that run a trained model: the `model` parameter names a model directory
//! (`model.json` + `weights.safetensors`, see [`evospike_learning::model`]); the
//! node takes from it what the model fixes (the encoder and its window, a layer's
//! neurons and weights, the class names and readout), and a parameter that would
//! contradict it is an error rather than silently overridden.
//!
//! The directory is not checked with the parameters: a launch file's `train`
//! node may write it only once the launch runs.

use evospike_learning::model::Model;
use serde::Serialize;

use crate::params::Check;
use crate::NodeError;

/// The model in directory `dir`, loaded and verified.
pub(crate) fn load(dir: &str) -> Result<Model, NodeError> {
    Model::load(std::path::Path::new(dir)).map_err(|err| NodeError::Model {
        model: dir.to_owned(),
        problem: "cannot be loaded".to_owned(),
        source: Some(Box::new(err)),
    })
}

/// Reports `key` when it is given although a `model` fixes it.
pub(crate) fn fixed_by_model<T: Serialize>(check: &mut Check<'_>, key: &str, value: &Option<T>) {
    if let Some(value) = value {
        check.fail(
            key,
            serde_json::to_value(value).unwrap_or_default(),
            "is fixed by the `model`: leave it out",
        );
    }
}

/// One layer of a model, as a layer node runs it.
pub(crate) struct ModelLayer {
    pub(crate) size: usize,
    pub(crate) neuron: String,
    pub(crate) neuron_params: evospike_plugin_api::Params,
    /// The layer's input projection, with the trained weights.
    pub(crate) projection: evospike_compute::Projection,
    /// The model's window: a layer starts each sample from rest.
    pub(crate) steps_per_sample: u64,
    /// Whether this is the output layer of a model read out by membrane.
    pub(crate) membrane_out: bool,
}

/// Layer `name` of the model in directory `dir`.
pub(crate) fn layer(dir: &str, name: &str) -> Result<ModelLayer, NodeError> {
    let model = load(dir)?;
    let net = &model.manifest.network;
    let Some(index) = net.layers.iter().position(|l| l.name == name) else {
        let names: Vec<&str> = net.layers.iter().map(|l| l.name.as_str()).collect();
        return Err(NodeError::model(
            dir,
            format!("has no layer `{name}` (it has: {})", names.join(", ")),
        ));
    };
    let def = &net.layers[index];
    let projection = evospike_learning::infer::layer_projection(&model, name).map_err(|err| {
        NodeError::Model {
            model: dir.to_owned(),
            problem: format!("cannot build the input projection of layer `{name}`"),
            source: Some(Box::new(err)),
        }
    })?;
    Ok(ModelLayer {
        size: def.size,
        neuron: def.neuron.clone(),
        neuron_params: def.params.clone(),
        projection,
        steps_per_sample: u64::from(net.steps_per_sample),
        membrane_out: index + 1 == net.layers.len()
            && net.readout == evospike_plugin_api::Readout::Membrane,
    })
}
