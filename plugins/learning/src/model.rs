//! The model artifact: a directory with `model.json` and `weights.safetensors`.
//!
//! `model.json` ([`Manifest`]) records the schema version, the network (input
//! shape, encoder, layers with their NEURON plugin and parameters, dt, steps per
//! sample, class names), provenance (data digest, learner and hyperparameters,
//! seed, evospike version), the measured metrics, and the sha256 of every other
//! file. The weights are `layers.<name>.weight` tensors of shape `[out, in]` in
//! `safetensors` (so `torch.nn.Linear(in, out, bias=False)` loads them as they are).
//!
//! [`Model::load`] checks everything before anything runs: the schema version,
//! each file's digest, every tensor's presence, dtype and shape, and the network's
//! consistency. Writes are crash-safe: each file goes to a temporary name, is
//! synced and renamed, and the manifest — which names the digests — comes last, so a
//! directory whose manifest exists holds complete files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use evospike_plugin_api::{Checkpoint, NetworkSpec, Params, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::data::sha256_hex;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "model.json";
/// The weights' file name.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The newest manifest schema this build reads and the one it writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A model that could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `model.json` is not a valid manifest.
    #[error("{path}: not a valid model manifest: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the line, column and field).
        #[source]
        source: serde_json::Error,
    },
    /// The manifest is newer than this build understands.
    #[error(
        "{path}: schema version {found} is newer than this evospike reads ({supported}); upgrade evospike"
    )]
    NewerSchema {
        /// The manifest.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// A file's content does not match the digest the manifest records.
    #[error("{path}: sha256 {actual} does not match the manifest's {expected}; the file was changed or damaged")]
    Digest {
        /// The file.
        path: PathBuf,
        /// Recorded.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The weights file is not valid safetensors, or lacks or misshapes a tensor.
    #[error("{path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The network the manifest describes is inconsistent.
    #[error("{path}: network: {reason}")]
    Network {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where a model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The training data: its file name(s).
    pub data_source: String,
    /// sha256 of the training data.
    pub data_digest: String,
    /// Training samples.
    pub samples: usize,
    /// The LEARNING plugin.
    pub learner: String,
    /// Its resolved hyperparameters.
    pub hyperparameters: Params,
    /// The seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: u32,
    /// The evospike version that trained it.
    pub evospike_version: String,
    /// Seconds since the Unix epoch when it was written.
    pub created_unix_s: u64,
}

/// `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest schema.
    pub schema_version: u32,
    /// The network.
    pub network: NetworkSpec,
    /// Where it came from.
    pub provenance: Provenance,
    /// Measured metrics (`test_accuracy`, `train_loss`, …).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// sha256 of every other file in the directory, by name.
    pub files: BTreeMap<String, String>,
}

/// A trained network: manifest and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The manifest (its `files` are filled in by [`Model::save`]).
    pub manifest: Manifest,
    /// `layers.<name>.weight`, `[out, in]`.
    pub weights: Vec<Tensor>,
}

/// The name of a layer's weight tensor.
pub fn weight_name(layer: &str) -> String {
    format!("layers.{layer}.weight")
}

impl Model {
    /// The weights of layer `name` as `[out, in]` values, if present.
    pub fn layer_weights(&self, name: &str) -> Option<&Tensor> {
        let wanted = weight_name(name);
        self.weights.iter().find(|t| t.name == wanted)
    }

    /// Writes `dir/weights.safetensors` then `dir/model.json`, each atomically.
    pub fn save(&mut self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
        let path = dir.join(WEIGHTS_FILE);
        let bytes =
            tensors_to_safetensors(&self.weights).map_err(|reason| ModelError::Weights {
                path: path.clone(),
                reason,
            })?;
        write_atomic(&path, &bytes)?;
        self.manifest.schema_version = SCHEMA_VERSION;
        self.manifest.files = BTreeMap::from([(WEIGHTS_FILE.to_owned(), sha256_hex(&bytes))]);
        let path = dir.join(MANIFEST_FILE);
        let json =
            serde_json::to_vec_pretty(&self.manifest).map_err(|source| ModelError::Manifest {
                path: path.clone(),
                source,
            })?;
        write_atomic(&path, &json)
    }

    /// Reads and checks a model directory (see the module docs).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&manifest_path).map_err(|source| io(&manifest_path, source))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        Self::parse(&manifest_path, &text, &weights_path, || {
            std::fs::read(&weights_path)
                .map(std::borrow::Cow::Owned)
                .map_err(|source| io(&weights_path, source))
        })
    }

    /// Checks a model given as the contents of its two files (fetched from a
    /// registry, say), as [`Model::load`] checks a directory; errors name the
    /// files by their plain names.
    pub fn from_bytes(manifest: &[u8], weights: &[u8]) -> Result<Self, ModelError> {
        Self::parse(
            Path::new(MANIFEST_FILE),
            manifest,
            Path::new(WEIGHTS_FILE),
            || Ok(std::borrow::Cow::Borrowed(weights)),
        )
    }

    fn parse<'w>(
        manifest_path: &Path,
        text: &[u8],
        weights_path: &Path,
        read_weights: impl FnOnce() -> Result<std::borrow::Cow<'w, [u8]>, ModelError>,
    ) -> Result<Self, ModelError> {
        let manifest_error = |source| ModelError::Manifest {
            path: manifest_path.to_path_buf(),
            source,
        };
        // The version first, so a newer manifest says "upgrade" rather than "unknown field".
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let version: Version = serde_json::from_slice(text).map_err(manifest_error)?;
        if version.schema_version > SCHEMA_VERSION {
            return Err(ModelError::NewerSchema {
                path: manifest_path.to_path_buf(),
                found: version.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_slice(text).map_err(manifest_error)?;
        manifest
            .network
            .validate()
            .map_err(|reason| ModelError::Network {
                path: manifest_path.to_path_buf(),
                reason,
            })?;
        let Some(expected) = manifest.files.get(WEIGHTS_FILE) else {
            return Err(ModelError::Network {
                path: manifest_path.to_path_buf(),
                reason: format!("`files` does not list {WEIGHTS_FILE}"),
            });
        };
        let bytes = read_weights()?;
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(ModelError::Digest {
                path: weights_path.to_path_buf(),
                expected: expected.clone(),
                actual,
            });
        }
        let weights_error = |reason: String| ModelError::Weights {
            path: weights_path.to_path_buf(),
            reason,
        };
        let tensors = safetensors_to_tensors(&bytes).map_err(weights_error)?;
        let mut weights = Vec::with_capacity(manifest.network.layers.len());
        for (layer, (n_in, n_out)) in manifest
            .network
            .layers
            .iter()
            .zip(manifest.network.layer_shapes())
        {
            let name = weight_name(&layer.name);
            let Some(t) = tensors.iter().find(|t| t.name == name) else {
                return Err(weights_error(format!(
                    "has no tensor `{name}` for layer `{}`",
                    layer.name
                )));
            };
            if t.shape != [n_out, n_in] {
                return Err(weights_error(format!(
                    "tensor `{name}` has shape {:?}; layer `{}` needs [{n_out}, {n_in}]",
                    t.shape, layer.name
                )));
            }
            if let Some(bad) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(weights_error(format!(
                    "tensor `{name}` holds a non-finite value at {bad}"
                )));
            }
            weights.push(t.clone());
        }
        Ok(Self { manifest, weights })
    }
}

fn io(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one,
/// never a part: a temporary file in the same directory, synced, renamed over
/// `path`, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|source| io(dir, source))?;
    tmp.write_all(bytes).map_err(|source| io(path, source))?;
    tmp.as_file()
        .sync_all()
        .map_err(|source| io(path, source))?;
    tmp.persist(path).map_err(|e| io(path, e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Make the rename itself durable; not every filesystem supports it.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Little-endian f32 tensors as a safetensors file.
pub fn tensors_to_safetensors(tensors: &[Tensor]) -> Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format!("tensor `{}`: {e}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, None).map_err(|e| e.to_string())
}

/// Every tensor of a safetensors file; only f32 tensors are accepted.
pub fn safetensors_to_tensors(bytes: &[u8]) -> Result<Vec<Tensor>, String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let view = st
                .tensor(&name)
                .map_err(|e| format!("tensor `{name}`: {e}"))?;
            if view.dtype() != Dtype::F32 {
                return Err(format!(
                    "tensor `{name}` is {:?}; only F32 is supported",
                    view.dtype()
                ));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(Tensor {
                name,
                shape: view.shape().to_vec(),
                data,
            })
        })
        .collect()
}

/// The checkpoint's metadata file: it names the tensors file, so writing it is
/// what commits a checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// The tensors of a checkpoint whose metadata names no `tensors_file` (written
/// by an earlier evospike).
pub const CHECKPOINT_TENSORS: &str = "checkpoint.safetensors";

/// Beside a checkpoint (written by `evospike train`): every finished epoch's
/// summary ([`crate::fit::EpochSummary`] plus `train_samples`), one JSON line
/// each. A line is written and synced before its epoch's checkpoint, so the file
/// covers every epoch a resumed run skips; an epoch trained again after an
/// interruption appears twice, and the later line counts.
pub const EPOCHS_FILE: &str = "epochs.jsonl";

/// `checkpoint-<sha256 prefix>.safetensors`: the name of a checkpoint's tensors.
fn tensors_file_name(sha256: &str) -> String {
    format!("checkpoint-{}.safetensors", &sha256[..16.min(sha256.len())])
}

/// Writes a learner's checkpoint into `dir` so that a crash at any point leaves
/// the previous checkpoint or this one, whole: the tensors go to a file of their
/// own (named by their digest), then the metadata naming it replaces the old
/// metadata atomically, then the previous tensors file is removed.
pub fn save_checkpoint(dir: &Path, checkpoint: &Checkpoint) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
    let bytes =
        tensors_to_safetensors(&checkpoint.tensors).map_err(|reason| ModelError::Weights {
            path: dir.join(CHECKPOINT_TENSORS),
            reason,
        })?;
    let sha256 = sha256_hex(&bytes);
    let tensors_file = tensors_file_name(&sha256);
    write_atomic(&dir.join(&tensors_file), &bytes)?;
    let meta = serde_json::json!({
        "learner": checkpoint.learner,
        "spec": checkpoint.spec,
        "epoch": checkpoint.epoch,
        "batch": checkpoint.batch,
        "state": checkpoint.state,
        "tensors_file": tensors_file,
        "tensors_sha256": sha256,
    });
    let path = dir.join(CHECKPOINT_FILE);
    let json = serde_json::to_vec_pretty(&meta).map_err(|source| ModelError::Manifest {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, &json)?;
    // Tensors no metadata names any more (the previous checkpoint's, or those of
    // a save a crash cut short) go now.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name != tensors_file
                && (name == CHECKPOINT_TENSORS
                    || (name.starts_with("checkpoint-") && name.ends_with(".safetensors")));
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Reads a checkpoint written by [`save_checkpoint`], checking the tensors' digest.
pub fn load_checkpoint(dir: &Path) -> Result<Checkpoint, ModelError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = std::fs::read(&path).map_err(|source| io(&path, source))?;
    #[derive(Deserialize)]
    struct Meta {
        learner: String,
        spec: evospike_plugin_api::LearnerSpec,
        epoch: u32,
        batch: u32,
        state: serde_json::Value,
        #[serde(default)]
        tensors_file: Option<String>,
        tensors_sha256: String,
    }
    let meta: Meta = serde_json::from_slice(&text).map_err(|source| ModelError::Manifest {
        path: path.clone(),
        source,
    })?;
    let tensors_file = meta
        .tensors_file
        .unwrap_or_else(|| CHECKPOINT_TENSORS.to_owned());
    if tensors_file.contains(['/', '\\']) || tensors_file.starts_with('.') {
        return Err(ModelError::Weights {
            path: path.clone(),
            reason: format!(
                "tensors_file `{tensors_file}` must be a file name in the checkpoint's folder"
            ),
        });
    }
    let tensors_path = dir.join(tensors_file);
    let bytes = std::fs::read(&tensors_path).map_err(|source| io(&tensors_path, source))?;
    let actual = sha256_hex(&bytes);
    if actual != meta.tensors_sha256 {
        return Err(ModelError::Digest {
            path: tensors_path,
            expected: meta.tensors_sha256,
            actual,
        });
    }
    let tensors = safetensors_to_tensors(&bytes).map_err(|reason| ModelError::Weights {
        path: tensors_path,
        reason,
    })?;
    Ok(Checkpoint {
        learner: meta.learner,
        spec: meta.spec,
        epoch: meta.epoch,
        batch: meta.batch,
        state: meta.state,
        tensors,
    })
}

#[cfg(test)]
mod tests;
