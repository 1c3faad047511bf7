//! `readout`: turns the spike counts of a layer into class scores and a prediction
//! per presentation window, and publishes the scores.
//!
//! Neuron *i* votes for class *i mod classes* (the assignment a trained network's
//! label assignment would replace). At the end of each window of
//! `steps_per_sample` steps the scores — spikes per neuron of each class — are
//! published as an analog tensor of shape `[classes]` with the window's last step,
//! and the prediction (the best score; none when silent) is logged.
//!
//! | param | default | meaning |
//! |---|---|---|
//! | `input` | required | topic of the layer to read |
//! | `classes` | 10 | number of classes |
//! | `steps_per_sample` | 20 | window |
//! | `max_steps` | none | stop after step `max_steps - 1` (steps are numbered from 0 pipeline-wide) |
//! | `output` | `<name>/scores` | topic |
//! | `max_lag` | 64 | steps the input may run ahead |

use std::sync::atomic::Ordering;

use evospike_schemas::proto::HealthState;
use evospike_schemas::{SpikeBody, SpikeTensor};

use crate::node::Node;
use crate::sync::{Delivery, StepInput};
use crate::NodeError;

pub(crate) async fn run(node: Node) -> Result<(), NodeError> {
    let input_topic: String = node.required_param("input")?;
    let classes: usize = node.param("classes", 10)?;
    let window: u64 = node.param("steps_per_sample", 20)?;
    let max_steps: Option<u64> = node.param("max_steps", None)?;
    let output: String = node.param("output", format!("{}/scores", node.name()))?;
    if classes == 0 || window == 0 {
        return Err(NodeError::Param {
            name: "classes/steps_per_sample".into(),
            reason: "must be at least 1".into(),
        });
    }
    let mut input = StepInput::new(&node, &input_topic)?;
    let mut publisher = node.spike_publisher(&output)?;
    tracing::info!(classes, window, topic = %publisher.key(), "node {} (readout) ready", node.name());
    let Some(start) = input.peek_step(&node).await? else {
        return Ok(());
    };
    node.set_state(HealthState::Active);

    let neurons = input.len().unwrap_or(0);
    // Neurons per class under the round-robin assignment (at least one, to divide by).
    let per_class: Vec<f32> = (0..classes)
        .map(|c| neurons.saturating_sub(c).div_ceil(classes).max(1) as f32)
        .collect();
    let mut counts = vec![0u32; classes];
    let mut scores = SpikeTensor::builder(node.name())
        .shape([classes as u32])
        .analog(vec![0.0; classes])?;
    let mut t = start;
    while max_steps.is_none_or(|max| t < max) {
        let Some(delivery) = input.take(t, &node, node.metrics()).await? else {
            break;
        };
        if let Delivery::Tensor(msg) = &delivery {
            let view = msg.view();
            for i in view.active_indices() {
                counts[i as usize % classes] += 1;
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
            for ((value, count), per) in values.iter_mut().zip(&counts).zip(&per_class) {
                *value = *count as f32 / *per;
            }
            let best = values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .max_by(|a, b| a.1.total_cmp(b.1));
            match best {
                Some((class, score)) => {
                    tracing::info!(step = t, class, score = *score, "prediction")
                }
                None => tracing::info!(step = t, "no spikes in this window: no prediction"),
            }
            scores.header.step = t;
            publisher.publish(&mut scores)?;
            counts.fill(0);
        }
        t += 1;
    }
    tracing::info!(steps = t - start, "readout {} done", node.name());
    Ok(())
}
