//! Data-parallel training over the bus.
//!
//! One **coordinator** ([`Coordinator`], trained through [`DataParallel`]) and K
//! **workers** ([`worker::run`]) train one `SurrogateGradient` network. Each step
//! the coordinator publishes the weights with a version; every worker computes
//! the gradient of its shard of the batch — the batch and the shards follow from
//! the seed, so nothing but weights and gradients crosses the bus — and
//! publishes it; the coordinator averages them weighted by shard size, takes the
//! optimizer step and publishes the next version. Weights and gradients travel as
//! analog spike tensors ([`wire`]): rkyv archives written straight into the
//! transport's buffer and read in place — shared memory between processes of one
//! host, TCP between hosts.
//!
//! The gradient of a shard is `SurrogateGradient::shard_gradient`, the very
//! computation single-process training runs on the whole batch, and the epoch
//! loop is its `train_epoch_from`: with K workers the trained weights equal
//! single-process ones up to floating-point summation order.
//!
//! `evospike train --workers K` starts the workers itself ([`pool::Pool`]) and
//! starts again any that exits or falls behind; in a launch file the coordinator
//! is a `train` node with `workers: K` and the workers are `train_worker` nodes,
//! on any machine that reaches the bus.
//!
//! ```no_run
//! # async fn example(bus: evospike_bus::Bus, learner: evospike_learning::surrogate::SurrogateGradient, fingerprint: String) -> Result<(), Box<dyn std::error::Error>> {
//! use evospike_dataparallel::{Coordinator, DataParallel, Settings};
//! let mut coordinator = Coordinator::new(bus, Settings::new("digits", 2), fingerprint, None, Box::new(|e| eprintln!("{e}")))?;
//! coordinator.wait_for_workers()?;
//! let learner = DataParallel::new(learner, coordinator); // a Learner: give it to fit::fit
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod coordinator;
pub mod pool;
pub mod wire;
pub mod worker;

pub use coordinator::{
    Coordinator, CoordinatorError, DataParallel, Event, OnEvent, Settings, Stats,
};
