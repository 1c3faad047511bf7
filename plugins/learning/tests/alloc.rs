//! Allocations of a training step after warm-up: evospike's own buffers are all
//! made when the learner is built; what remains per batch is the GEMM crate's
//! packing buffers (`matrixmultiply` takes one per product call). This test pins
//! that: the count per batch is small, fixed, and does not grow with the batch or
//! the number of steps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use evospike_learning::surrogate::SurrogateGradient;
use evospike_plugin_api::{Control, Dataset, Learner, LearnerSpec};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted: only the training thread's
    /// (with `threads: 1` the step runs on it), not those of a thread the test
    /// harness or a library happens to start meanwhile (CI once counted 4 such).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per batch over one epoch of `batches` batches, after a warm-up epoch.
fn per_batch(batch: usize, steps: usize, batches: usize) -> f64 {
    let spec = LearnerSpec {
        input_size: 64,
        input_shape: vec![8, 8],
        classes: (0..10).map(|c| c.to_string()).collect(),
        params:
            serde_json::json!({"hidden": [96, 32], "steps": steps, "batch": batch, "threads": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        seed: 0,
    };
    let n = batch * batches;
    let x: Vec<f32> = (0..n * 64)
        .map(|i| ((i * 7919) % 101) as f32 / 100.0)
        .collect();
    let y: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    let data = Dataset::new(&x, 64, Some(&y), 10).unwrap();
    let mut learner = SurrogateGradient::new(&spec).unwrap();
    learner
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTED.with(|counted| counted.set(true));
    learner
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    COUNTED.with(|counted| counted.set(false));
    let epoch = ALLOCATIONS.load(Ordering::Relaxed) - before;
    // The epoch itself allocates its shuffled order once.
    (epoch as f64 - 1.0) / batches as f64
}

#[test]
fn a_training_step_allocates_only_the_gemm_packing_buffers() {
    let small = per_batch(16, 5, 8);
    let large = per_batch(64, 20, 8);
    // Two hidden layers and an output: 3 forward products, 5 backward ones.
    assert!(small <= 8.0, "{small} allocations per batch");
    assert_eq!(
        small, large,
        "allocations must not grow with the batch or the steps"
    );
}
