//! Step synchronisation of pipeline inputs.
//!
//! Pipeline nodes exchange one tensor per time step. A node computes step *t* once
//! each of its inputs has delivered *t*. An input whose next tensor is for a later
//! step has a gap: the missing steps are counted, reported once per gap, and
//! computed with that input silent, so the pipeline never stalls and never skips a
//! step silently. A tensor for a step already computed (duplicate or late) is
//! counted, reported and dropped. How far an upstream node may run ahead is bounded
//! by the subscription queue (`max_lag`): when it is full the sender waits.
//!
//! A message that is not a valid tensor, or a tensor of another size than the
//! input's, is dropped and counted (`invalid_inputs_total`,
//! `wrong_size_inputs_total`). Every kind of report goes through a
//! [`Throttle`]: a flood of junk or late steps logs a line now and then, never
//! one line per message.

use std::sync::atomic::Ordering;

use evospike_bus::{BusError, SpikeMsg, SpikeSubscriber};
use evospike_schemas::spike::bitset_words;

use crate::node::{Node, NodeMetrics};
use crate::throttle::Throttle;
use crate::NodeError;

/// One input topic of a pipeline node.
#[derive(Debug)]
pub struct StepInput {
    topic: String,
    subscriber: SpikeSubscriber,
    pending: Option<SpikeMsg>,
    /// Bitset of the current tensor when it was not sent as a bitset (or is missing).
    scratch: Vec<u64>,
    len: Option<usize>,
    gap_reported: bool,
    /// One throttle per kind of report.
    warnings: Warnings,
    /// The next step this input waits for, as reported in the node's health.
    next_step: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Default)]
struct Warnings {
    invalid: Throttle,
    wrong_size: Throttle,
    late: Throttle,
    gap: Throttle,
}

/// What an input delivered for a step.
#[derive(Debug)]
// Boxing the message would allocate once per step on the data path.
#[allow(clippy::large_enum_variant)]
pub enum Delivery {
    /// The tensor of this step.
    Tensor(SpikeMsg),
    /// Nothing: this step is in a gap of the input.
    Missing,
}

impl StepInput {
    /// Subscribes to (remapped) topic `name` for `node`.
    pub fn new(node: &Node, name: &str) -> Result<StepInput, NodeError> {
        let topic = node.topic(name);
        Ok(StepInput {
            next_step: node.track_input(&topic),
            topic,
            subscriber: node.spike_subscriber(name)?,
            pending: None,
            scratch: Vec::new(),
            len: None,
            gap_reported: false,
            warnings: Warnings::default(),
        })
    }

    /// The (remapped) topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Number of neurons of the input, known once its first tensor arrived.
    pub fn len(&self) -> Option<usize> {
        self.len
    }

    /// Whether the size is still unknown (no tensor arrived yet).
    pub fn is_empty(&self) -> bool {
        self.len.is_none()
    }

    async fn next(&mut self, node: &Node) -> Result<Option<SpikeMsg>, NodeError> {
        if let Some(msg) = self.pending.take() {
            return Ok(Some(msg));
        }
        loop {
            let received = tokio::select! {
                received = self.subscriber.recv() => received,
                () = node.stopped() => return Ok(None),
            };
            match received {
                Ok(msg) => {
                    let len = msg.view().len();
                    match self.len {
                        None => {
                            self.len = Some(len);
                            self.scratch = vec![0; bitset_words(len)];
                        }
                        Some(expected) if expected != len => {
                            node.metrics()
                                .wrong_size_inputs
                                .fetch_add(1, Ordering::Relaxed);
                            if let Some(n) = self.warnings.wrong_size.hit() {
                                let note =
                                    self.warnings.wrong_size.note(n, "wrong_size_inputs_total");
                                tracing::warn!(topic = %self.topic, len, expected, "tensor with a different size dropped ({note})");
                            }
                            continue;
                        }
                        Some(_) => {}
                    }
                    return Ok(Some(msg));
                }
                Err(BusError::Payload { key, source }) => {
                    node.metrics()
                        .invalid_inputs
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = self.warnings.invalid.hit() {
                        let note = self.warnings.invalid.note(n, "invalid_inputs_total");
                        tracing::warn!(%key, %source, "invalid tensor dropped ({note})");
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The step of the next tensor, waiting for it (`None` when the node stops).
    pub async fn peek_step(&mut self, node: &Node) -> Result<Option<u64>, NodeError> {
        let Some(msg) = self.next(node).await? else {
            return Ok(None);
        };
        let step = msg.view().header.step.to_native();
        self.pending = Some(msg);
        Ok(Some(step))
    }

    /// Waits for this input's tensor of step `t` (`None` when the node stops).
    pub async fn take(
        &mut self,
        t: u64,
        node: &Node,
        metrics: &NodeMetrics,
    ) -> Result<Option<Delivery>, NodeError> {
        loop {
            let Some(msg) = self.next(node).await? else {
                return Ok(None);
            };
            let step = msg.view().header.step.to_native();
            if step < t {
                metrics.duplicates.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.warnings.late.hit() {
                    let note = self.warnings.late.note(n, "duplicates_total");
                    tracing::warn!(topic = %self.topic, step, computing = t, "duplicate or late step dropped ({note})");
                }
                continue;
            }
            if step > t {
                metrics.gaps.fetch_add(1, Ordering::Relaxed);
                if !self.gap_reported {
                    self.gap_reported = true;
                    if let Some(n) = self.warnings.gap.hit() {
                        let note = self.warnings.gap.note(n, "gaps_total");
                        tracing::warn!(topic = %self.topic, from = t, to = step - 1, "gap: steps missing from this input; computing them with the input silent ({note})");
                    }
                }
                self.pending = Some(msg);
                self.next_step.store(t + 1, Ordering::Relaxed);
                return Ok(Some(Delivery::Missing));
            }
            self.gap_reported = false;
            self.next_step.store(t + 1, Ordering::Relaxed);
            return Ok(Some(Delivery::Tensor(msg)));
        }
    }

    /// The values of a delivery that carries a graded (analog) tensor, read in place.
    pub fn analog<'a>(&self, delivery: &'a Delivery) -> Option<&'a [f32]> {
        match delivery {
            Delivery::Tensor(msg) => msg.view().analog(),
            Delivery::Missing => None,
        }
    }

    /// The spike words of a delivery: the tensor's own bitset when it was sent as
    /// one (no copy), else this input's scratch bitset (all silent when missing).
    pub fn words<'a>(&'a mut self, delivery: &'a Delivery) -> &'a [u64] {
        match delivery {
            Delivery::Tensor(msg) => match msg.view().bitset() {
                Some(words) => words,
                None => {
                    self.scratch.fill(0);
                    for i in msg.view().active_indices() {
                        self.scratch[i as usize / 64] |= 1 << (i % 64);
                    }
                    &self.scratch
                }
            },
            Delivery::Missing => {
                self.scratch.fill(0);
                &self.scratch
            }
        }
    }
}
