//! One training step split in two: the **gradient** of a mini-batch at the current
//! weights, and the optimizer **step** that applies it.
//!
//! [`SurrogateGradient::train_epoch_from`] runs the one epoch loop every front end
//! shares (batch order, learning-rate schedule, Adam, progress, stop) and asks a
//! [`GradientSource`] for each batch's gradient. In one process the source is
//! [`Local`]: [`SurrogateGradient::shard_gradient`] on the whole batch. A
//! data-parallel coordinator is another source: it hands the weights to worker
//! processes, each of which runs the same `shard_gradient` on its shard of the
//! same [`BatchPlan`], and averages what they send back, weighted by shard size.
//!
//! A [`BatchPlan`] is a pure function of the seed, the epoch and the batch number
//! (the shuffled order, then every sample's random shift drawn in batch order), so
//! any process that has the data computes exactly the samples and shifts the
//! single-process loop would, and a shard of it is just a range of rows.

use std::ops::Range;

use evospike_plugin_api::{Dataset, PluginError};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{sub_seed, BatchLoss, SurrogateGradient};

/// The samples of one mini-batch and the shift each is presented with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// The epoch (from 0).
    pub epoch: u32,
    /// The batch within the epoch (from 0).
    pub batch: u32,
    /// Indices into the training set, in batch order.
    pub indices: Vec<usize>,
    /// `(dy, dx)` per sample; empty when the batch is not augmented.
    pub shifts: Vec<(i64, i64)>,
}

impl BatchPlan {
    /// An empty plan with room for `batch` samples.
    pub fn with_capacity(batch: usize) -> BatchPlan {
        BatchPlan {
            indices: Vec::with_capacity(batch),
            shifts: Vec::with_capacity(batch),
            ..BatchPlan::default()
        }
    }

    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The rows of shard `k` of `of` (contiguous, sizes differing by at most one;
    /// empty when there are more shards than rows).
    pub fn shard(&self, k: usize, of: usize) -> Range<usize> {
        let n = self.len();
        let of = of.max(1);
        (k * n / of)..((k + 1) * n / of)
    }
}

/// The training set's order in epoch `epoch` for seed `seed`.
pub fn epoch_order(seed: u64, epoch: u32, samples: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..samples).collect();
    order.shuffle(&mut StdRng::seed_from_u64(sub_seed(
        seed,
        &[1, u64::from(epoch)],
    )));
    order
}

/// Draws a batch's shifts in `[-max, max]²` into `out`, one pair per sample in
/// order (the same sequence whoever draws it).
pub(crate) fn draw_shifts(
    seed: u64,
    epoch: u32,
    batch: u32,
    rows: usize,
    max: u32,
    out: &mut Vec<(i64, i64)>,
) {
    let mut rng = StdRng::seed_from_u64(sub_seed(seed, &[2, u64::from(epoch), u64::from(batch)]));
    let k = i64::from(max);
    out.extend((0..rows).map(|_| (rng.random_range(-k..=k), rng.random_range(-k..=k))));
}

/// What one gradient computation saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradientStats {
    /// The loss summed over the rows.
    pub loss: f64,
    /// Rows predicted right.
    pub correct: usize,
    /// Rows the gradient is the mean over.
    pub rows: usize,
}

/// Where a training step's gradient comes from.
pub trait GradientSource {
    /// Leaves in `learner`'s gradient buffers the mean gradient over the samples
    /// of `plan` at `learner`'s current weights (with
    /// [`SurrogateGradient::shard_gradient`] or
    /// [`SurrogateGradient::set_gradient`]) and says what it was computed on.
    /// `rows` may be fewer than the plan's when part of it could not be computed
    /// (a data-parallel worker that died); it must not be 0.
    fn gradient(
        &mut self,
        learner: &mut SurrogateGradient,
        data: &Dataset<'_>,
        plan: &BatchPlan,
    ) -> Result<GradientStats, PluginError>;
}

/// The whole batch in this process, with a loss hook.
pub(crate) struct Local<'h>(pub(crate) &'h mut dyn BatchLoss);

impl GradientSource for Local<'_> {
    fn gradient(
        &mut self,
        learner: &mut SurrogateGradient,
        data: &Dataset<'_>,
        plan: &BatchPlan,
    ) -> Result<GradientStats, PluginError> {
        learner.shard_gradient_with(data, plan, 0..plan.len(), self.0)
    }
}
