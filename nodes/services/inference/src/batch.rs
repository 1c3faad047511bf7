//! Dynamic batching: a model's requests wait in one queue and are stepped
//! together.
//!
//! The rules, per model:
//!
//! - A request joins the queue unless it already holds [`BatchSettings::max_queue`]
//!   samples; then it is refused at once ([`Full`], a 503 with `Retry-After`).
//! - A worker thread (one per [`BatchNet`], [`BatchSettings`] says how many) takes a
//!   batch at once when no other worker is computing: an idle service never makes
//!   a lone request wait for companions that may not come. While another worker
//!   computes, it takes a batch when the queue holds [`BatchSettings::max_batch`]
//!   samples, or when the *oldest* queued sample has waited
//!   [`BatchSettings::max_delay`] — so no sample waits longer than that for its
//!   batch to start, however slowly others arrive. Under load the queue fills
//!   while every worker computes, so batches grow by themselves.
//! - A batch holds samples of one step count (the oldest sample's): requests for a
//!   different `config.steps` stay queued, in order, for a later batch.
//! - Batching off is `max_batch = 1`: every sample runs alone, as soon as a worker
//!   is free.
//!
//! Workers are plain threads, so the compute never blocks the async runtime;
//! dropping the [`Batcher`] closes the queue and they end after their batch.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::input::Sample;
use crate::net::BatchNet;

/// How a model's queue batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSettings {
    /// Most samples stepped together (1: no batching).
    pub max_batch: usize,
    /// Longest the oldest queued sample waits for a batch to fill.
    pub max_delay: Duration,
    /// Most samples queued; past it requests are refused.
    pub max_queue: usize,
    /// Worker threads per model.
    pub workers: usize,
}

/// A sample's answer: its class scores, and how many samples shared its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// One score per class.
    pub scores: Vec<f32>,
    /// Samples in its batch.
    pub batch_size: u32,
}

/// The queue is full: `queued` samples wait, at most `max` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the model's queue is full ({queued} samples waiting, at most {max}); retry shortly")]
pub struct Full {
    /// Samples queued.
    pub queued: usize,
    /// The limit.
    pub max: usize,
}

struct Job {
    sample: Sample,
    steps: u32,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Answer, String>>,
}

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers computing a batch now.
    busy: usize,
}

struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    settings: BatchSettings,
}

/// A model's queue and its workers.
pub struct Batcher {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("settings", &self.queue.settings)
            .field("queued", &self.queued())
            .finish()
    }
}

impl Batcher {
    /// Starts one worker per net (`name` names their threads). `settings.max_batch`
    /// is capped at the nets' capacity.
    pub fn start(name: &str, nets: Vec<BatchNet>, mut settings: BatchSettings) -> Batcher {
        let capacity = nets.iter().map(BatchNet::capacity).min().unwrap_or(1);
        settings.max_batch = settings.max_batch.clamp(1, capacity);
        settings.workers = nets.len();
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
                busy: 0,
            }),
            wake: Condvar::new(),
            settings,
        });
        for (i, net) in nets.into_iter().enumerate() {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("infer-{name}-{i}"))
                .spawn(move || work(&queue, net));
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start an inference worker thread");
            }
        }
        Batcher { queue }
    }

    /// Samples waiting.
    pub fn queued(&self) -> usize {
        self.lock().jobs.len()
    }

    /// The settings in force.
    pub fn settings(&self) -> BatchSettings {
        self.queue.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.queue.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `samples` (all or none), each to be run for its step count; one
    /// receiver per sample, in order.
    ///
    /// # Errors
    /// [`Full`] when they do not fit in the queue.
    pub fn submit(
        &self,
        samples: Vec<(Sample, u32)>,
    ) -> Result<Vec<oneshot::Receiver<Result<Answer, String>>>, Full> {
        let max = self.queue.settings.max_queue;
        let mut state = self.lock();
        if state.jobs.len() + samples.len() > max {
            return Err(Full {
                queued: state.jobs.len(),
                max,
            });
        }
        let now = Instant::now();
        let receivers = samples
            .into_iter()
            .map(|(sample, steps)| {
                let (reply, rx) = oneshot::channel();
                state.jobs.push_back(Job {
                    sample,
                    steps,
                    enqueued: now,
                    reply,
                });
                rx
            })
            .collect();
        drop(state);
        self.queue.wake.notify_all();
        Ok(receivers)
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.queue.wake.notify_all();
    }
}

/// A worker: takes batches until the queue closes.
fn work(queue: &Queue, mut net: BatchNet) {
    while let Some(batch) = next_batch(queue) {
        run(&mut net, batch);
        let mut state = queue.state.lock().unwrap_or_else(|e| e.into_inner());
        state.busy -= 1;
        drop(state);
        // A worker waiting for its batch to fill may now take it at once.
        queue.wake.notify_all();
    }
}

/// Waits for the next batch (see the module docs) and counts its worker busy;
/// `None` once closed and empty.
fn next_batch(queue: &Queue) -> Option<Vec<Job>> {
    let settings = queue.settings;
    let mut state = queue.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let Some(oldest) = state.jobs.front() else {
            if state.closed {
                return None;
            }
            state = queue.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let steps = oldest.steps;
        let deadline = oldest.enqueued + settings.max_delay;
        let now = Instant::now();
        let full = state
            .jobs
            .iter()
            .filter(|j| j.steps == steps)
            .take(settings.max_batch)
            .count()
            >= settings.max_batch;
        if full || now >= deadline || state.closed || state.busy == 0 {
            state.busy += 1;
            return Some(take(&mut state.jobs, steps, settings.max_batch));
        }
        state = queue
            .wake
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Removes up to `max` jobs of `steps` steps from the front, keeping the others in order.
fn take(jobs: &mut VecDeque<Job>, steps: u32, max: usize) -> Vec<Job> {
    let mut taken = Vec::with_capacity(max.min(jobs.len()));
    let mut kept = VecDeque::with_capacity(jobs.len());
    while let Some(job) = jobs.pop_front() {
        if job.steps == steps {
            taken.push(job);
            if taken.len() == max {
                break;
            }
        } else {
            kept.push_back(job);
        }
    }
    kept.append(jobs);
    *jobs = kept;
    taken
}

fn run(net: &mut BatchNet, batch: Vec<Job>) {
    let steps = batch[0].steps;
    let samples: Vec<&Sample> = batch.iter().map(|j| &j.sample).collect();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| net.scores(&samples, steps)));
    let size = batch.len() as u32;
    match result {
        Ok(Ok(scores)) => {
            for (job, scores) in batch.into_iter().zip(scores) {
                let _ = job.reply.send(Ok(Answer {
                    scores,
                    batch_size: size,
                }));
            }
        }
        Ok(Err(err)) => {
            tracing::error!(%err, "a batch failed");
            for job in batch {
                let _ = job.reply.send(Err(err.to_string()));
            }
        }
        Err(_) => {
            tracing::error!("a batch panicked");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err("the model's computation panicked".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(steps: u32) -> (Job, oneshot::Receiver<Result<Answer, String>>) {
        let (reply, rx) = oneshot::channel();
        (
            Job {
                sample: Sample::Values(vec![]),
                steps,
                enqueued: Instant::now(),
                reply,
            },
            rx,
        )
    }

    /// Regression: a lone request waited the whole `max_delay` for companions.
    #[tokio::test]
    async fn an_idle_batcher_runs_a_lone_request_at_once() {
        let model = crate::net::tests::tiny_model();
        let backend: Arc<dyn evospike_compute::Backend> =
            Arc::new(evospike_compute::CpuBackend::single_threaded());
        let neurons = crate::neurons::Neurons::new::<&str>(&[]).unwrap();
        let nets = (0..2)
            .map(|_| {
                BatchNet::new(&model, backend.clone(), 8, &mut |d, s| neurons.layer(d, s)).unwrap()
            })
            .collect();
        let settings = BatchSettings {
            max_batch: 8,
            max_delay: Duration::from_secs(600),
            max_queue: 16,
            workers: 2,
        };
        let batcher = Batcher::start("lone", nets, settings);
        for _ in 0..3 {
            let started = Instant::now();
            let rx = batcher
                .submit(vec![(Sample::Values(vec![1.0, 0.0, 1.0, 0.0]), 8)])
                .unwrap()
                .pop()
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(20), rx)
                .await
                .expect("answered without waiting for max_delay")
                .unwrap()
                .unwrap();
            assert_eq!(answer.batch_size, 1);
            assert!(started.elapsed() < Duration::from_secs(20));
        }
    }

    #[test]
    fn a_batch_takes_the_oldest_step_count_and_keeps_the_rest_in_order() {
        let mut jobs: VecDeque<Job> = [5, 7, 5, 5, 7, 5].iter().map(|&s| job(s).0).collect();
        let taken = take(&mut jobs, 5, 3);
        assert_eq!(taken.iter().map(|j| j.steps).collect::<Vec<_>>(), [5, 5, 5]);
        assert_eq!(jobs.iter().map(|j| j.steps).collect::<Vec<_>>(), [7, 7, 5]);
    }
}
