//! Networks that learn: LEARNING plugins, data sets, the model artifact and
//! in-process inference.
//!
//! # Concepts
//!
//! * A **learner** ([`Learner`](evospike_plugin_api::Learner), built by a LEARNING
//!   plugin from a [`LearnerSpec`](evospike_plugin_api::LearnerSpec)) trains a
//!   network of NEURON-plugin layers in epochs and mini-batches, reports progress
//!   through a callback, stops between batches when asked, and checkpoints its
//!   whole state. [`surrogate::SurrogateGradient`] is the built-in supervised one:
//!   backpropagation through time with a surrogate spike derivative, on the compute
//!   backend's dense operations. Built on the same engine through its loss hook:
//!   [`distill::Distillation`] (a teacher model teaches a smaller student) and
//!   [`ssl::Ssl`] (contrastive self-supervision on spike counts, then a linear
//!   probe). [`unsupervised::StdpUnsupervised`] learns without gradients: Diehl &
//!   Cook's STDP network from the NEURON, ENCODER and PLASTICITY plugins' models.
//!   Every learner is a LEARNING plugin ([`builtin_plugins`]) chosen by name.
//! * [`fit::fit`] is the loop every front end shares: epochs, test accuracy,
//!   checkpoints, cancellation; [`fit::model_of`] turns the result into a
//!   [`model::Model`].
//! * A **model** ([`model`]) is a directory: `model.json` (network, provenance,
//!   metrics, file digests) and `weights.safetensors`; loading verifies all of it.
//! * [`data`] loads CSV and MNIST-format IDX files (gzipped or not) into memory.
//! * [`infer::InferenceNet`] runs a model step by step through the NEURON plugins
//!   and projections, exactly as a pipeline of layer nodes does, so
//!   `evospike eval` and a launched pipeline predict the same classes.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use evospike_learning::{data::Data, fit, surrogate::SurrogateGradient};
//! use evospike_plugin_api::{Learner, LearnerSpec};
//!
//! // Two classes: bright left half or bright right half of a 2x2 image.
//! let x = vec![1.0, 0.0, 1.0, 0.0,  0.0, 1.0, 0.0, 1.0].repeat(16);
//! let y = vec![0, 1].repeat(16);
//! let data = Data::from_parts(x, vec![2, 2], Some(y)).unwrap();
//! let spec = LearnerSpec {
//!     input_size: 4,
//!     input_shape: vec![2, 2],
//!     classes: vec!["left".into(), "right".into()],
//!     params: serde_json::from_str(r#"{"hidden": [16], "steps": 10, "batch": 8, "lr": 0.01, "threads": 1}"#).unwrap(),
//!     seed: 1,
//! };
//! let mut learner = SurrogateGradient::new(&spec)?;
//! let train = data.view(2).unwrap();
//! let done = fit::fit(&mut learner, &train, Some(&train), 20, None, &AtomicBool::new(false), |_| {})?;
//! assert_eq!(done.history.last().unwrap().test_accuracy, Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod data;
pub mod distill;
pub mod fit;
pub mod infer;
pub mod model;
mod plugin;
pub mod ssl;
pub mod surrogate;
pub mod unsupervised;

pub use plugin::{builtin_plugins, surrogate_gradient_plugin, BuiltinLearner};
