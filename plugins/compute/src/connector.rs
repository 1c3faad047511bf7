//! Seeded random connectivity.
//!
//! [`FixedProbability`] connects every (pre, post) pair independently with
//! probability `p`, like Brian2's `connect(p=...)` or PyNN's
//! `FixedProbabilityConnector`. It walks the `rows x cols` pairs with geometric
//! skips, so building a sparse matrix costs O(connections), not O(pairs).

use rand::{rngs::SmallRng, Rng, SeedableRng};
use rand_distr::{Distribution, Geometric};

use crate::{CsrWeights, ShapeError};

/// How the weights of new connections are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightInit {
    /// Every connection gets this weight.
    Constant(f32),
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound (exclusive).
        high: f32,
    },
}

/// Connects each pair independently with probability `p`, reproducibly from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedProbability {
    p: f64,
    seed: u64,
    autapses: bool,
}

impl FixedProbability {
    /// A connector with probability `p` in `[0, 1]`.
    pub fn new(p: f64, seed: u64) -> Result<Self, ShapeError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(ShapeError::Probability(p));
        }
        Ok(Self {
            p,
            seed,
            autapses: true,
        })
    }

    /// Skip pairs with `pre == post` (for a projection from a layer onto itself).
    pub fn without_autapses(mut self) -> Self {
        self.autapses = false;
        self
    }

    /// Builds a `rows x cols` sparse matrix.
    pub fn connect(
        &self,
        rows: usize,
        cols: usize,
        init: WeightInit,
    ) -> Result<CsrWeights, ShapeError> {
        if let WeightInit::Uniform { low, high } = init {
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(ShapeError::Value {
                    what: "uniform weight range",
                    reason: format!("[{low}, {high}) is empty or not finite"),
                });
            }
        }
        let pairs = (rows as u64).saturating_mul(cols as u64);
        if pairs > u64::from(u32::MAX) && self.p > 0.0 {
            // indices are u32; more than 4G stored connections cannot be addressed.
            let expected = pairs as f64 * self.p;
            if expected > f64::from(u32::MAX) {
                return Err(ShapeError::Value {
                    what: "connection count",
                    reason: format!("{expected:.0} expected connections exceed u32 indexing"),
                });
            }
        }
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut indptr = Vec::with_capacity(rows + 1);
        let expected = (pairs as f64 * self.p * 1.05) as usize + 16;
        let mut indices = Vec::with_capacity(expected);
        let mut values = Vec::with_capacity(expected);
        indptr.push(0u32);
        // `gap` = number of pairs skipped before the next connection.
        let geometric = (self.p > 0.0 && self.p < 1.0)
            .then(|| Geometric::new(self.p).expect("p checked to be in (0, 1)"));
        let draw_gap = |rng: &mut SmallRng| -> u64 {
            match &geometric {
                Some(g) => g.sample(rng),
                None if self.p >= 1.0 => 0,
                None => u64::MAX,
            }
        };
        let mut next = draw_gap(&mut rng);
        for r in 0..rows as u64 {
            let row_start = r * cols as u64;
            let row_end = row_start + cols as u64;
            while next < row_end {
                let c = (next - row_start) as usize;
                if self.autapses || c as u64 != r {
                    indices.push(c as u32);
                    values.push(match init {
                        WeightInit::Constant(w) => w,
                        WeightInit::Uniform { low, high } => rng.random_range(low..high),
                    });
                }
                next = next.saturating_add(1).saturating_add(draw_gap(&mut rng));
            }
            indptr.push(indices.len() as u32);
        }
        CsrWeights::new(rows, cols, indptr, indices, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_count_is_binomial() {
        let (rows, cols, p) = (400, 500, 0.02);
        let w = FixedProbability::new(p, 7)
            .unwrap()
            .connect(rows, cols, WeightInit::Constant(1.0))
            .unwrap();
        let n = (rows * cols) as f64;
        let sd = (n * p * (1.0 - p)).sqrt();
        let got = w.nnz() as f64;
        assert!((got - n * p).abs() < 5.0 * sd, "{got} vs {}", n * p);
    }

    #[test]
    fn same_seed_same_matrix_other_seed_other_matrix() {
        let c = |seed| {
            FixedProbability::new(0.1, seed)
                .unwrap()
                .connect(
                    50,
                    60,
                    WeightInit::Uniform {
                        low: 0.0,
                        high: 1.0,
                    },
                )
                .unwrap()
        };
        assert_eq!(c(1), c(1));
        assert_ne!(c(1), c(2));
    }

    #[test]
    fn extremes_and_autapses() {
        let full = FixedProbability::new(1.0, 0)
            .unwrap()
            .connect(3, 3, WeightInit::Constant(2.0))
            .unwrap();
        assert_eq!(full.nnz(), 9);
        let no_self = FixedProbability::new(1.0, 0)
            .unwrap()
            .without_autapses()
            .connect(3, 3, WeightInit::Constant(2.0))
            .unwrap();
        assert_eq!(no_self.nnz(), 6);
        assert!((0..3).all(|r| !no_self.row(r).0.contains(&(r as u32))));
        let none = FixedProbability::new(0.0, 0)
            .unwrap()
            .connect(10, 10, WeightInit::Constant(1.0))
            .unwrap();
        assert_eq!(none.nnz(), 0);
    }

    #[test]
    fn bad_probability_and_range_are_errors() {
        assert_eq!(
            FixedProbability::new(1.5, 0),
            Err(ShapeError::Probability(1.5))
        );
        let err = FixedProbability::new(0.5, 0)
            .unwrap()
            .connect(
                2,
                2,
                WeightInit::Uniform {
                    low: 1.0,
                    high: 1.0,
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("uniform weight range"), "{err}");
    }
}
