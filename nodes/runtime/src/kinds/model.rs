//! Nodes that run a trained model: the `model` parameter names a model directory
//! (`model.json` + `weights.safetensors`, see [`evospike_learning::model`]); the
//! node takes from it what the model fixes (the encoder and its window, a layer's
//! neurons and weights, the class names and readout), and a parameter that would
//! contradict it is an error rather than silently overridden.

use evospike_learning::model::Model;

use crate::node::Node;
use crate::NodeError;

/// The model named by the `model` parameter, loaded and verified, if there is one.
pub(crate) fn load(node: &Node) -> Result<Option<Model>, NodeError> {
    let Some(dir) = node.param::<Option<String>>("model", None)? else {
        return Ok(None);
    };
    let model = Model::load(std::path::Path::new(&dir)).map_err(|e| NodeError::Param {
        name: "model".into(),
        reason: e.to_string(),
    })?;
    Ok(Some(model))
}

/// An error when parameter `key` is set although the model fixes it.
pub(crate) fn refuse_with_model(node: &Node, key: &str) -> Result<(), NodeError> {
    if node.params().contains_key(key) {
        return Err(NodeError::Param {
            name: key.into(),
            reason: "is fixed by the model; remove it (the `model` parameter sets it)".into(),
        });
    }
    Ok(())
}
