//! What coordinator and workers send each other: analog spike tensors (the bus's
//! zero-copy rkyv path; in shared memory between processes of one host).
//!
//! Field order is part of the protocol.
//!
//! * **Parameters**, topic `train/<job>/params`, from the coordinator: header
//!   `step` = the version (1, 2, …), body `[epoch, batch, done, weights…]`. A
//!   message with `done = 1` and no weights ends the workers.
//! * **Gradients**, topic `train/<job>/grads/<index>`, from worker `index`: header
//!   `step` = the version they were computed at (0 for the *hello* a worker sends
//!   when it is ready), `source` = `<index>/<fingerprint>`, body
//!   `[loss, correct, rows, compute_seconds, gradient…]` — the gradient is the mean
//!   over the worker's `rows` samples, and `loss` their summed loss. A hello (and a
//!   worker whose shard is empty) has `rows = 0` and no gradient.
//!
//! The fingerprint ([`fingerprint`]) digests the learner spec and the training
//! data: a worker started with other parameters or other data is refused rather
//! than averaged in.

use evospike_learning::data::Data;
use evospike_plugin_api::LearnerSpec;
use evospike_schemas::{ArchivedSpikeTensor, SpikeBody, SpikeHeader, SpikeTensor, WIRE_VERSION};

/// Values before the weights in a parameters message.
pub const PARAMS_HEADER: usize = 3;
/// Values before the gradient in a gradients message.
pub const GRADS_HEADER: usize = 4;

/// The parameters topic of job `job`.
pub fn params_topic(job: &str) -> String {
    format!("train/{job}/params")
}

/// The gradients topic of worker `index` of job `job`.
pub fn grads_topic(job: &str, index: usize) -> String {
    format!("train/{job}/grads/{index}")
}

/// Every worker's gradients topic of job `job` (a key expression).
pub fn all_grads_topic(job: &str) -> String {
    format!("train/{job}/grads/*")
}

/// Digests what must be equal in every process of a job: the learner spec and
/// the training data (FNV-1a, 64 bits, in hex).
pub fn fingerprint(spec: &LearnerSpec, data: &Data) -> String {
    let spec = serde_json::to_string(spec).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in spec.bytes().chain([0]).chain(data.digest().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A tensor of `len` analog values to publish again and again (the body is
/// rewritten in place).
pub fn analog(source: &str, len: usize) -> SpikeTensor {
    SpikeTensor {
        header: SpikeHeader {
            wire_version: WIRE_VERSION,
            source: source.to_owned(),
            ..SpikeHeader::default()
        },
        shape: vec![len as u32],
        body: SpikeBody::Analog(vec![0.0; len]),
    }
}

/// The values of an analog tensor built by [`analog`] (any other body is
/// replaced by an empty analog one).
pub fn values_mut(tensor: &mut SpikeTensor) -> &mut Vec<f32> {
    if !matches!(tensor.body, SpikeBody::Analog(_)) {
        tensor.body = SpikeBody::Analog(Vec::new());
        tensor.shape = vec![0];
    }
    match &mut tensor.body {
        SpikeBody::Analog(v) => v,
        _ => unreachable!("the body was just made analog"),
    }
}

/// Resizes an analog tensor (its shape follows).
pub fn resize(tensor: &mut SpikeTensor, len: usize) {
    values_mut(tensor).resize(len, 0.0);
    tensor.shape = vec![len as u32];
}

/// A parameters message, read in place.
#[derive(Debug, Clone, Copy)]
pub struct ParamsView<'a> {
    /// The version.
    pub version: u64,
    /// The epoch of the batch to compute.
    pub epoch: u32,
    /// The batch.
    pub batch: u32,
    /// Whether training is over.
    pub done: bool,
    /// The weights (empty when `done`).
    pub weights: &'a [f32],
}

/// Reads a parameters message; `None` when it is not one.
pub fn read_params(t: &ArchivedSpikeTensor) -> Option<ParamsView<'_>> {
    let v = t.analog()?;
    if v.len() < PARAMS_HEADER {
        return None;
    }
    Some(ParamsView {
        version: t.header.step.to_native(),
        epoch: v[0] as u32,
        batch: v[1] as u32,
        done: v[2] != 0.0,
        weights: &v[PARAMS_HEADER..],
    })
}

/// A gradients message, read in place.
#[derive(Debug, Clone, Copy)]
pub struct GradsView<'a> {
    /// The worker.
    pub index: usize,
    /// Its fingerprint.
    pub fingerprint: &'a str,
    /// The version the gradient was computed at (0: hello).
    pub version: u64,
    /// Summed loss over the rows.
    pub loss: f64,
    /// Rows predicted right.
    pub correct: usize,
    /// Rows.
    pub rows: usize,
    /// Seconds the worker computed.
    pub compute_s: f64,
    /// The mean gradient over the rows (empty when `rows` is 0).
    pub gradient: &'a [f32],
}

/// Reads a gradients message; `None` when it is not one.
pub fn read_grads(t: &ArchivedSpikeTensor) -> Option<GradsView<'_>> {
    let v = t.analog()?;
    let (index, fingerprint) = t.source().split_once('/')?;
    if v.len() < GRADS_HEADER {
        return None;
    }
    Some(GradsView {
        index: index.parse().ok()?,
        fingerprint,
        version: t.header.step.to_native(),
        loss: f64::from(v[0]),
        correct: v[1] as usize,
        rows: v[2] as usize,
        compute_s: f64::from(v[3]),
        gradient: &v[GRADS_HEADER..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_in_place() {
        let mut p = analog("coordinator", PARAMS_HEADER + 2);
        p.header.step = 7;
        values_mut(&mut p).copy_from_slice(&[3.0, 5.0, 0.0, 0.25, -1.0]);
        let bytes = p.to_aligned_bytes();
        let view = read_params(SpikeTensor::view(&bytes).unwrap()).unwrap();
        assert_eq!(
            (view.version, view.epoch, view.batch, view.done),
            (7, 3, 5, false)
        );
        assert_eq!(view.weights, &[0.25, -1.0]);

        let mut g = analog("1/abc", GRADS_HEADER + 1);
        g.header.step = 7;
        values_mut(&mut g).copy_from_slice(&[2.5, 3.0, 4.0, 0.5, 0.125]);
        let bytes = g.to_aligned_bytes();
        let view = read_grads(SpikeTensor::view(&bytes).unwrap()).unwrap();
        assert_eq!(
            (view.index, view.fingerprint, view.rows, view.correct),
            (1, "abc", 4, 3)
        );
        assert_eq!(view.gradient, &[0.125]);
        let bad = analog("no-index", GRADS_HEADER).to_aligned_bytes();
        assert!(read_grads(SpikeTensor::view(&bad).unwrap()).is_none());
    }
}
