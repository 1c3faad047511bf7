//! Built-in ENCODER plugins: `RateEncoder`, `LatencyEncoder`, `TASEncoder`,
//! `CurrentEncoder`.
//!
//! # Concepts
//!
//! An encoder turns analog samples into spike trains over a presentation window of
//! `num_steps` steps ([`Encoder`]): `set_sample(values)` starts a sample,
//! `encode_step(t, spikes)` writes the spikes of step `t` (never allocating).
//!
//! * [`RateEncoder`] ([`rate`]): each value is a firing probability per step,
//!   Bernoulli or Poisson, from a seeded generator.
//! * [`LatencyEncoder`] ([`latency`]): each value spikes once, earlier when larger;
//!   linear or logarithmic (RC-charging) latency.
//! * [`TasEncoder`] ([`tas`]): Temporal Analog Spike coding — threshold-adaptive
//!   step-forward delta coding with +1/−1 spikes (two outputs per input) and the
//!   matching [`TasDecoder`].
//! * [`CurrentEncoder`] ([`current`]): each value is an input current on every
//!   step (graded output): the encoder of networks trained by `SurrogateGradient`.
//!
//! The plugin objects ([`BuiltinEncoder`]: the generic factory plugin around each
//! [`EncoderModel`]) are registered through [`builtin_plugins`].
//!
//! # Example
//!
//! ```
//! use evospike_encoder::{TasDecoder, TasEncoder, TasParams};
//! use evospike_plugin_api::{spike_words_len, Encoder};
//!
//! let params = TasParams { theta: 0.05, theta_min: 0.01, theta_max: 0.4, grow: 2.0, shrink: 0.5 };
//! let mut enc = TasEncoder::new(2, params.clone());
//! let mut dec = TasDecoder::new(2, params);
//! enc.set_sample(&[0.8, -0.3]);
//! let mut spikes = vec![0u64; spike_words_len(enc.num_outputs())];
//! for t in 0..30 {
//!     enc.encode_step(t, &mut spikes);
//!     dec.decode_step(&spikes);
//! }
//! assert!((dec.values()[0] - 0.8).abs() < 0.05);
//! assert!((dec.values()[1] + 0.3).abs() < 0.05);
//! ```

pub mod current;
pub mod latency;
mod plugins;
pub mod rate;
pub mod tas;

pub use current::{CurrentEncoder, CurrentParams};
pub use evospike_plugin_api::{Encoder, EncoderPlugin};
pub use latency::{LatencyEncoder, LatencyMode, LatencyParams};
pub use plugins::{builtin_plugins, BuiltinEncoder, EncoderModel};
pub use rate::{RateEncoder, RateMode, RateParams};
pub use tas::{TasDecoder, TasEncoder, TasParams};
