//! A worker: computes its shard of every batch the coordinator publishes.
//!
//! It says hello (a gradients message of version 0) once the coordinator listens,
//! and again whenever it has waited [`NUDGE`] without parameters; then for each
//! parameters message — the newest one when several queued up — it
//! sets the weights, works out the batch from the seed ([`SurrogateGradient::plan`],
//! the same plan the coordinator and a single process use), computes the gradient
//! of its rows with [`SurrogateGradient::shard_gradient`], and publishes it. It
//! ends when the coordinator says training is over.

use std::time::{Duration, Instant};

use evospike_bus::{Bus, BusError};
use evospike_learning::surrogate::{step::epoch_order, SurrogateGradient};
use evospike_plugin_api::{Dataset, PluginError};

use crate::wire::{self, GRADS_HEADER};

/// How long a worker waits for parameters before it says hello again. A
/// publication that reaches a subscriber only once routes have settled can be
/// lost right after a worker (re)joins; the repeated hello makes the coordinator
/// send the current weights again instead of waiting out its step timeout.
const NUDGE: Duration = Duration::from_secs(1);

/// Worker failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The bus failed.
    #[error("data-parallel worker {index}: {source}")]
    Bus {
        /// The worker.
        index: usize,
        /// What failed.
        #[source]
        source: BusError,
    },
    /// The gradient could not be computed.
    #[error("data-parallel worker {index}: {source}")]
    Learner {
        /// The worker.
        index: usize,
        /// What failed.
        #[source]
        source: PluginError,
    },
    /// No coordinator listened, or it went silent.
    #[error("data-parallel worker {index}: no coordinator for {waited:?}")]
    NoCoordinator {
        /// The worker.
        index: usize,
        /// How long it waited.
        waited: Duration,
    },
}

/// Worker `index` of `workers` in job `job`.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The job.
    pub job: String,
    /// This worker's index, `0..workers`.
    pub index: usize,
    /// Workers in the job (the batch is split in this many shards).
    pub workers: usize,
    /// Give up when no parameters come for this long.
    pub idle_timeout: Duration,
}

/// Runs a worker until the coordinator says training is over (or `stop` returns
/// true, checked between messages). `fingerprint` is [`wire::fingerprint`] of
/// `learner`'s spec and `data`.
///
/// # Errors
/// The bus failed, a gradient could not be computed, or no coordinator was heard
/// for `idle_timeout`.
pub async fn run(
    bus: &Bus,
    settings: &WorkerSettings,
    learner: &mut SurrogateGradient,
    data: &Dataset<'_>,
    fingerprint: &str,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<u64, WorkerError> {
    let index = settings.index;
    let bus_err = |source| WorkerError::Bus { index, source };
    let subscriber = bus
        .spike_subscriber(&wire::params_topic(&settings.job))
        .map_err(bus_err)?;
    let mut publisher = bus
        .spike_publisher(&wire::grads_topic(&settings.job, index))
        .map_err(bus_err)?;
    if !publisher
        .wait_for_subscribers(settings.idle_timeout)
        .await
        .map_err(bus_err)?
    {
        return Err(WorkerError::NoCoordinator {
            index,
            waited: settings.idle_timeout,
        });
    }
    let source = format!("{index}/{fingerprint}");
    let mut hello = wire::analog(&source, GRADS_HEADER);
    publisher.publish(&mut hello).map_err(bus_err)?;
    tracing::info!(worker = index, job = %settings.job, "ready");
    let mut out = wire::analog(&source, GRADS_HEADER);
    let mut said = Instant::now();

    let p = learner.parameter_count();
    let mut order: Option<(u32, Vec<usize>)> = None;
    let mut computed = 0u64;
    let mut last_version = 0u64;
    let mut heard = Instant::now();
    while !stop() {
        // The newest parameters: older ones queued behind a slow step are moot.
        let mut newest = None;
        let wait = Duration::from_millis(100);
        while let Some(msg) = subscriber
            .recv_timeout(if newest.is_some() {
                Duration::ZERO
            } else {
                wait
            })
            .map_err(bus_err)?
        {
            newest = Some(msg);
        }
        let Some(msg) = newest else {
            if heard.elapsed() > settings.idle_timeout {
                return Err(WorkerError::NoCoordinator {
                    index,
                    waited: settings.idle_timeout,
                });
            }
            if said.elapsed() >= NUDGE {
                // Idle: say hello again, so a coordinator whose weights never
                // reached this worker sends them again.
                publisher.publish(&mut hello).map_err(bus_err)?;
                said = Instant::now();
            }
            continue;
        };
        heard = Instant::now();
        let Some(params) = wire::read_params(msg.view()) else {
            tracing::warn!(
                key = msg.key(),
                "a message that is not parameters was dropped"
            );
            continue;
        };
        if params.done {
            tracing::info!(worker = index, computed, "training is over");
            return Ok(computed);
        }
        let (version, epoch, batch) = (params.version, params.epoch, params.batch);
        if version <= last_version {
            // Published again for a worker that joined late: computed already.
            if version == last_version {
                publisher.publish(&mut out).map_err(bus_err)?;
                said = Instant::now();
            }
            continue;
        }
        let started = Instant::now();
        let learn_err = |source| WorkerError::Learner { index, source };
        learner.set_weights(params.weights).map_err(learn_err)?;
        // The weights are copied: let the transport have its buffer back.
        drop(msg);
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, epoch_order(learner.spec().seed, epoch, data.len())));
        }
        let epoch_order = order
            .as_ref()
            .map(|(_, o)| o.as_slice())
            .unwrap_or_default();
        let plan = learner.plan(epoch_order, epoch, batch);
        let shard = plan.shard(index, settings.workers);
        if shard.is_empty() {
            wire::resize(&mut out, GRADS_HEADER);
            wire::values_mut(&mut out).fill(0.0);
        } else {
            let stats = learner
                .shard_gradient(data, &plan, shard)
                .map_err(learn_err)?;
            wire::resize(&mut out, GRADS_HEADER + p);
            let values = wire::values_mut(&mut out);
            learner
                .copy_gradient_to(&mut values[GRADS_HEADER..])
                .map_err(learn_err)?;
            values[0] = stats.loss as f32;
            values[1] = stats.correct as f32;
            values[2] = stats.rows as f32;
            values[3] = started.elapsed().as_secs_f32();
        }
        out.header.step = version;
        publisher.publish(&mut out).map_err(bus_err)?;
        said = Instant::now();
        last_version = version;
        computed += 1;
    }
    Ok(computed)
}
