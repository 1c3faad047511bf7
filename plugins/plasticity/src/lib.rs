//! Built-in PLASTICITY plugins: `STDP`, `MetaPlasticity`, `Homeostasis`.
//!
//! # Concepts
//!
//! A plasticity rule ([`PlasticityRule`]) belongs to one projection. After the
//! postsynaptic layer has stepped, the runtime calls
//! `update(pre_spikes, post_spikes, weights)` with a mutable view of the
//! projection's weights (dense or CSR; the structure is fixed, values change).
//! Rules keep their own traces and never allocate per step.
//!
//! * [`Stdp`] ([`stdp`]): trace-based pair STDP (A+, A−, τ+, τ−, weight bounds,
//!   additive or multiplicative); [`Stdp::meta`] is the `MetaPlasticity` variant
//!   whose depression follows a slow postsynaptic rate (BCM-style sliding threshold).
//! * [`Homeostasis`] ([`homeostasis`]): adaptive thresholds (Diehl & Cook 2015),
//!   exposed through [`PlasticityRule::threshold_offsets`], and multiplicative
//!   synaptic scaling toward a target rate.
//!
//! The plugin objects ([`BuiltinRule`]: the generic factory plugin around each
//! [`RuleModel`]) are registered through [`builtin_plugins`].
//!
//! # Example
//!
//! ```
//! use evospike_plasticity::{Stdp, StdpParams, StdpMode};
//! use evospike_plugin_api::{PlasticityRule, WeightsMut};
//!
//! let params = StdpParams { a_plus: 0.01, a_minus: 0.012, tau_plus_ms: 20.0, tau_minus_ms: 20.0,
//!                           w_min: 0.0, w_max: 1.0, mode: StdpMode::Additive };
//! let mut rule = Stdp::new(1, 1, 1.0, params);
//! let mut w = vec![0.5f32];
//! // pre at t = 0 ms, post at t = 10 ms: potentiation by 0.01·e^{−10/20}.
//! for t in 0..=10u64 {
//!     let (pre, post) = ([u64::from(t == 0)], [u64::from(t == 10)]);
//!     rule.update(&pre, &post, WeightsMut::Dense { rows: 1, cols: 1, values: &mut w });
//! }
//! assert!((w[0] - (0.5 + 0.01 * (-0.5f32).exp())).abs() < 1e-6);
//! ```

pub mod homeostasis;
mod plugins;
pub mod stdp;

pub use evospike_plugin_api::{PlasticityPlugin, PlasticityRule};
pub use homeostasis::{Homeostasis, HomeostasisParams};
pub use plugins::{builtin_plugins, BuiltinRule, RuleModel};
pub use stdp::{MetaParams, Stdp, StdpMode, StdpParams};
