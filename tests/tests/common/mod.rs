//! Helpers shared by the data-parallel tests (a subdirectory: not a test of its own).

use evospike_learning::model::Model;

/// The largest absolute difference between two models' weights, which must have
/// the same tensors (names and shapes) in the same order.
pub(crate) fn largest_weight_difference(a: &Model, b: &Model) -> f32 {
    assert_eq!(a.weights.len(), b.weights.len());
    let mut largest = 0.0f32;
    for (x, y) in a.weights.iter().zip(&b.weights) {
        assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
        for (u, v) in x.data.iter().zip(&y.data) {
            largest = largest.max((u - v).abs());
        }
    }
    eprintln!("largest weight difference {largest}");
    largest
}
