//! `readout`: turns the spike counts of a layer into class scores and a prediction
//! per presentation window, publishes the scores, and — when the encoder's labels
//! are available — learns which class each neuron stands for and reports its
//! accuracy.
//!
//! At the end of each window of `steps_per_sample` steps, the score of class *c*
//! is the mean spike count of the neurons assigned to *c*; the prediction is the
//! best score (none when the layer was silent). The scores are published as an
//! analog tensor of shape `[classes]` stamped with the window's last step.
//!
//! Neuron-to-class assignment: without labels, neuron *i* stands for class
//! *i mod classes*. With a `labels` topic (the encoder publishes one per sample),
//! the readout first predicts, then compares with the label (running accuracy, in
//! its log and as the metric `accuracy`), then adds the window's counts to each
//! neuron's response to that class and assigns every neuron to the class it
//! responds to most on average — the label assignment of Diehl & Cook (2015).
//!
//! With a `model` (a trained model's directory), the readout is the model's: the
//! input is its output layer, the score of class *c* is neuron *c*'s membrane
//! summed over the window (an analog input) or its spike count, the largest wins
//! (the first on ties), the window is the model's and the classes its classes — the
//! same rule as `evospike eval`, so the pipeline predicts what eval predicts.
//!
//! Parameters: [`ReadoutParams`] (`evospike run readout --list-params`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use evospike_bus::{BusConfig, SpikeSubscriber};
use evospike_schemas::contract::NodeTopics;
use evospike_schemas::proto::HealthState;
use evospike_schemas::{SpikeBody, SpikeTensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model;
use crate::kind::NodeKind;
use crate::node::{Node, NodeMetrics};
use crate::params::{Check, Params};
use crate::sync::{Delivery, StepInput};
use crate::throttle::Throttle;
use crate::{NodeError, DEFAULT_MAX_LAG};

/// The `readout` kind.
#[derive(Debug)]
pub struct ReadoutKind;

/// Parameters of a `readout` node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadoutParams {
    /// Topic of the layer to read.
    pub input: String,
    /// A trained model's directory: its classes, window and readout rule (leave `classes` and `steps_per_sample` out; no assignment learning).
    #[serde(default)]
    pub model: Option<String>,
    /// Topic of the sample labels (e.g. `encoder/labels`; none: no scoring, round-robin classes).
    #[serde(default)]
    pub labels: Option<String>,
    /// Number of classes (at least 1).
    #[serde(default)]
    #[schemars(extend("x-default" = DEFAULT_CLASSES))]
    pub classes: Option<usize>,
    /// Window in steps: the encoder's presentation length (at least 1).
    #[serde(default)]
    #[schemars(extend("x-default" = DEFAULT_STEPS_PER_SAMPLE))]
    pub steps_per_sample: Option<u64>,
    /// Stop after step `max_steps - 1` (steps are numbered from 0 pipeline-wide; none: run until stopped).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Output topic of the class scores.
    #[serde(default)]
    #[schemars(extend("x-default" = "<name>/scores"))]
    pub output: Option<String>,
    /// Steps the input may run ahead before its sender waits (at least 1).
    #[serde(default = "default_max_lag")]
    pub max_lag: usize,
    /// Seconds to wait for a subscriber of the scores before starting.
    #[serde(default)]
    pub wait_subscribers_s: f64,
}

/// The classes of a readout without a model.
pub(crate) const DEFAULT_CLASSES: usize = 10;

/// The window of a readout without a model.
pub(crate) const DEFAULT_STEPS_PER_SAMPLE: u64 = 20;

fn default_max_lag() -> usize {
    DEFAULT_MAX_LAG
}

impl Params for ReadoutParams {
    fn check(&self, check: &mut Check<'_>) {
        check.topic("input", &self.input);
        for (key, topic) in [("labels", &self.labels), ("output", &self.output)] {
            if let Some(topic) = topic {
                check.topic(key, topic);
            }
        }
        if self.model.is_some() {
            model::fixed_by_model(check, "classes", &self.classes);
            model::fixed_by_model(check, "steps_per_sample", &self.steps_per_sample);
        }
        if let Some(classes) = self.classes {
            check.at_least("classes", classes as u64, 1);
        }
        if let Some(window) = self.steps_per_sample {
            check.at_least("steps_per_sample", window, 1);
        }
        check.at_least("max_lag", self.max_lag as u64, 1);
        check.seconds("wait_subscribers_s", self.wait_subscribers_s);
    }
}

impl NodeKind for ReadoutKind {
    const NAME: &'static str = "readout";
    const SUMMARY: &'static str =
        "class scores and a prediction per presentation window from a layer's spike counts";
    type Params = ReadoutParams;

    fn configure_bus(params: &ReadoutParams, config: &mut BusConfig) {
        config.queue_capacity = params.max_lag;
    }

    fn topics(params: &ReadoutParams, node: &str) -> NodeTopics {
        NodeTopics {
            publishes: vec![params
                .output
                .clone()
                .unwrap_or_else(|| format!("{node}/scores"))],
            subscribes: std::iter::once(params.input.clone())
                .chain(params.labels.clone())
                .collect(),
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: ReadoutParams) -> Result<(), NodeError> {
        run(node, params).await
    }
}

/// Labels of the presented samples, by the step at which each sample starts.
struct Labels {
    subscriber: SpikeSubscriber,
    /// A label for a later window, held until its window ends.
    pending: Option<(u64, u32)>,
    invalid: Throttle,
}

impl Labels {
    /// The label of the sample that started at `step`, if it was published.
    async fn at(&mut self, step: u64, metrics: &NodeMetrics) -> Option<u32> {
        loop {
            let (at, label) = match self.pending.take() {
                Some(pending) => pending,
                // The encoder publishes a label before that sample's first spikes, so
                // it is normally queued already; wait briefly for stragglers.
                None => match tokio::time::timeout(Duration::from_secs(1), self.subscriber.recv())
                    .await
                {
                    Ok(Ok(msg)) => {
                        let view = msg.view();
                        let label = view.analog().and_then(|v| v.first().copied());
                        match label {
                            Some(label) if label >= 0.0 => {
                                (view.header.step.to_native(), label as u32)
                            }
                            _ => continue,
                        }
                    }
                    Ok(Err(err)) => {
                        metrics.invalid_inputs.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = self.invalid.hit() {
                            let note = self.invalid.note(n, "invalid_inputs_total");
                            tracing::warn!(%err, "invalid label dropped ({note})");
                        }
                        continue;
                    }
                    Err(_) => return None,
                },
            };
            if at == step {
                return Some(label);
            }
            if at > step {
                self.pending = Some((at, label));
                return None;
            }
        }
    }
}

/// Which class each neuron stands for, learned from labelled windows.
struct Assignment {
    classes: usize,
    class_of: Vec<usize>,
    /// Per neuron and class: summed spike counts in windows of that class.
    response: Vec<f32>,
    /// Windows seen per class.
    seen: Vec<u32>,
    members: Vec<u32>,
}

impl Assignment {
    fn new(neurons: usize, classes: usize) -> Assignment {
        let mut assignment = Assignment {
            classes,
            class_of: (0..neurons).map(|n| n % classes).collect(),
            response: vec![0.0; neurons * classes],
            seen: vec![0; classes],
            members: vec![0; classes],
        };
        assignment.count_members();
        assignment
    }

    fn count_members(&mut self) {
        self.members.fill(0);
        for &class in &self.class_of {
            self.members[class] += 1;
        }
    }

    /// Mean count per neuron of each class into `scores`; the best class, if any spiked.
    fn score(&self, counts: &[u32], scores: &mut [f32]) -> Option<usize> {
        scores.fill(0.0);
        for (&class, &count) in self.class_of.iter().zip(counts) {
            scores[class] += count as f32;
        }
        for (score, &members) in scores.iter_mut().zip(&self.members) {
            *score /= members.max(1) as f32;
        }
        scores
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(c, _)| c)
    }

    /// Learns from one labelled window and re-assigns every neuron.
    fn learn(&mut self, counts: &[u32], label: usize) {
        if label >= self.classes {
            return;
        }
        self.seen[label] += 1;
        for (neuron, &count) in counts.iter().enumerate() {
            self.response[neuron * self.classes + label] += count as f32;
        }
        for (neuron, class) in self.class_of.iter_mut().enumerate() {
            let responses = &self.response[neuron * self.classes..(neuron + 1) * self.classes];
            let mean = |c: usize| responses[c] / self.seen[c].max(1) as f32;
            if let Some(best) = (0..self.classes)
                .filter(|&c| self.seen[c] > 0)
                .max_by(|&a, &b| mean(a).total_cmp(&mean(b)))
            {
                if mean(best) > 0.0 {
                    *class = best;
                }
            }
        }
        self.count_members();
    }
}

/// How window scores become a prediction.
enum Rule {
    /// Learned neuron-to-class assignment (untrained networks).
    Assigned(Assignment),
    /// A trained model's output: one neuron per class, summed values, argmax.
    Model,
}

async fn run(node: Node, params: ReadoutParams) -> Result<(), NodeError> {
    let ReadoutParams {
        input: input_topic,
        model: model_dir,
        labels: labels_topic,
        classes,
        steps_per_sample: window,
        max_steps,
        output,
        max_lag: _,
        wait_subscribers_s: wait_s,
    } = params;
    let output = output.unwrap_or_else(|| format!("{}/scores", node.name()));
    let model = model_dir.as_deref().map(model::load).transpose()?;
    let (classes, window) = match &model {
        Some(m) => {
            let net = &m.manifest.network;
            (net.classes.len(), u64::from(net.steps_per_sample))
        }
        None => (
            classes.unwrap_or(DEFAULT_CLASSES),
            window.unwrap_or(DEFAULT_STEPS_PER_SAMPLE),
        ),
    };
    if let (Some(dir), true) = (&model_dir, classes == 0 || window == 0) {
        return Err(NodeError::model(
            dir,
            "has no classes or a window of 0 steps",
        ));
    }
    let mut input = StepInput::new(&node, &input_topic)?;
    let mut labels = match &labels_topic {
        Some(topic) => Some(Labels {
            subscriber: node.spike_subscriber(topic)?,
            pending: None,
            invalid: Throttle::default(),
        }),
        None => None,
    };
    let mut publisher = node.spike_publisher(&output)?;
    tracing::info!(classes, window, topic = %publisher.key(), labels = ?labels_topic, "node {} (readout) ready", node.name());
    if !super::wait_for_downstream(&node, &publisher, wait_s).await? {
        return Ok(());
    }
    let Some(start) = input.peek_step(&node).await? else {
        return Ok(());
    };
    node.set_state(HealthState::Active);

    let neurons = input.len().unwrap_or(0);
    let mut rule = match (&model_dir, &model) {
        (Some(dir), Some(_)) if neurons != classes => {
            return Err(NodeError::model(
                dir,
                format!("{input_topic} has {neurons} neurons; the model has {classes} classes"),
            ))
        }
        (_, Some(_)) => Rule::Model,
        _ => Rule::Assigned(Assignment::new(neurons, classes)),
    };
    let mut counts = vec![0u32; neurons];
    let mut sums = vec![0.0f32; neurons];
    let mut scores = SpikeTensor::builder(node.name())
        .shape([classes as u32])
        .analog(vec![0.0; classes])?;
    let (mut correct, mut judged) = (0u64, 0u64);
    let mut t = start;
    while max_steps.is_none_or(|max| t < max) {
        let Some(delivery) = input.take(t, &node, node.metrics()).await? else {
            break;
        };
        if let Delivery::Tensor(msg) = &delivery {
            let view = msg.view();
            match view.analog() {
                Some(values) if values.len() == sums.len() => {
                    for (s, &v) in sums.iter_mut().zip(values) {
                        *s += v;
                    }
                }
                _ => {
                    for i in view.active_indices() {
                        counts[i as usize] += 1;
                        sums[i as usize] += 1.0;
                    }
                }
            }
            node.metrics()
                .spikes
                .fetch_add(view.active_count() as u64, Ordering::Relaxed);
        }
        node.metrics().steps.fetch_add(1, Ordering::Relaxed);
        if (t + 1) % window == 0 {
            let SpikeBody::Analog(values) = &mut scores.body else {
                unreachable!("built as analog")
            };
            let prediction = match &rule {
                Rule::Assigned(assignment) => assignment.score(&counts, values),
                Rule::Model => {
                    values.copy_from_slice(&sums);
                    Some(evospike_learning::infer::argmax(values))
                }
            };
            let label = match labels.as_mut() {
                Some(labels) => labels.at(t + 1 - window, node.metrics()).await,
                None => None,
            };
            if let Some(label) = label {
                judged += 1;
                correct += u64::from(prediction == Some(label as usize));
                node.metrics()
                    .set_gauge("accuracy", correct as f64 / judged as f64);
                if let Rule::Assigned(assignment) = &mut rule {
                    assignment.learn(&counts, label as usize);
                }
            }
            let accuracy = (judged > 0).then(|| correct as f64 / judged as f64);
            tracing::info!(step = t, prediction = ?prediction, label = ?label, accuracy = ?accuracy, "prediction");
            scores.header.step = t;
            publisher.publish(&mut scores)?;
            counts.fill(0);
            sums.fill(0.0);
        }
        t += 1;
    }
    if judged > 0 {
        tracing::info!(
            windows = judged,
            accuracy = correct as f64 / judged as f64,
            "readout accuracy"
        );
    }
    tracing::info!(steps = t - start, "readout {} done", node.name());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Assignment;

    #[test]
    fn neurons_are_assigned_to_the_class_they_answer() {
        // Neurons 0-1 fire for class 2, neurons 2-3 for class 0.
        let mut assignment = Assignment::new(4, 3);
        let mut scores = vec![0.0; 3];
        assignment.learn(&[5, 4, 0, 0], 2);
        assignment.learn(&[0, 0, 6, 3], 0);
        assert_eq!(assignment.class_of, vec![2, 2, 0, 0]);
        assert_eq!(assignment.score(&[3, 3, 0, 1], &mut scores), Some(2));
        assert_eq!(scores, vec![0.5, 0.0, 3.0]);
        assert_eq!(assignment.score(&[0, 0, 0, 0], &mut scores), None);
    }

    #[test]
    fn unlabelled_assignment_is_round_robin() {
        let assignment = Assignment::new(5, 2);
        assert_eq!(assignment.class_of, vec![0, 1, 0, 1, 0]);
        assert_eq!(assignment.members, vec![3, 2]);
    }
}
