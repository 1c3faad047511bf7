//! Decoding what arrives on a key, by the kind of key it arrived on: spike tensors
//! on topics, `LogRecord`s on log keys, `MetricBatch`es (or single
//! `MetricSample`s) on metric keys. Each decoded message prints as one line of text
//! or one JSON object (camelCase fields, like the protobuf JSON mapping).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use evospike_bus::transport::Received;
use evospike_bus::{KeyKind, KeySpace};
use evospike_schemas::proto::{self, LogLevel, LogRecord, MetricBatch, MetricSample};
use evospike_schemas::{SpikeTensor, ALIGNMENT};
use rkyv::util::AlignedVec;
use serde_json::{json, Value};

/// The header and a summary of one spike tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpikeSummary {
    pub(crate) topic: String,
    pub(crate) step: u64,
    pub(crate) seq: u64,
    pub(crate) source: String,
    pub(crate) timestamp_ns: u64,
    pub(crate) shape: Vec<u32>,
    pub(crate) len: usize,
    pub(crate) encoding: &'static str,
    pub(crate) active: usize,
    /// The first active indices (at most the asked-for number).
    pub(crate) indices: Vec<u32>,
    pub(crate) bytes: usize,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decoded {
    Spikes(SpikeSummary),
    Log(LogRecord),
    Metrics { node: String, batch: MetricBatch },
}

/// Decodes `sample` by its key's kind, keeping at most `max_indices` active indices
/// of a spike tensor. The error names the key and the payload size.
pub(crate) fn decode(sample: &Received, max_indices: usize) -> anyhow::Result<Decoded> {
    let key = sample.key();
    let invalid = || format!("invalid payload on {key} ({} bytes)", sample.len());
    let keys = key_space_of(key).ok_or_else(|| anyhow!("{key} is not an evospike key"))?;
    match keys.parse(key) {
        Some(KeyKind::Topic(topic)) => spike_summary(topic, sample, max_indices)
            .map(Decoded::Spikes)
            .with_context(invalid),
        Some(KeyKind::Log(_)) => with_bytes(sample, proto::decode::<LogRecord>)
            .map(Decoded::Log)
            .with_context(invalid),
        Some(KeyKind::Metric(node)) => with_bytes(sample, decode_metrics)
            .map(|batch| Decoded::Metrics {
                node: node.to_string(),
                batch,
            })
            .with_context(invalid),
        _ => Err(anyhow!(
            "{key}: no decoder for this kind of key (topics, logs and metrics can be echoed)"
        )),
    }
}

/// Nodes publish `MetricBatch`es; a single `MetricSample` is accepted too. Protobuf
/// cannot tell them apart by type, so a batch that decodes to nothing from a
/// non-empty payload is read again as one sample.
fn decode_metrics(bytes: &[u8]) -> Result<MetricBatch, evospike_schemas::SchemaError> {
    match proto::decode::<MetricBatch>(bytes) {
        Ok(batch) if !batch.samples.is_empty() || bytes.is_empty() => Ok(batch),
        batch => match proto::decode::<MetricSample>(bytes) {
            Ok(one) => Ok(MetricBatch { samples: vec![one] }),
            Err(sample_err) => batch.and(Err(sample_err)),
        },
    }
}

/// The key space of the namespace a full key belongs to (`evospike/<ns>/…`).
fn key_space_of(key: &str) -> Option<KeySpace> {
    let mut segments = key.split('/');
    match (segments.next(), segments.next()) {
        (Some("evospike"), Some(namespace)) => KeySpace::new(namespace).ok(),
        _ => None,
    }
}

/// Calls `read` on the payload as one slice, copying it first when the transport
/// delivered it in pieces or misaligned for an in-place read.
fn with_bytes<T>(sample: &Received, read: impl FnOnce(&[u8]) -> T) -> T {
    match sample.contiguous() {
        Some(bytes) if bytes.as_ptr() as usize % ALIGNMENT == 0 => read(bytes),
        _ => {
            let mut copy = AlignedVec::<ALIGNMENT>::with_capacity(sample.len());
            sample.copy_into(&mut copy);
            read(&copy)
        }
    }
}

fn spike_summary(
    topic: &str,
    sample: &Received,
    max_indices: usize,
) -> anyhow::Result<SpikeSummary> {
    with_bytes(sample, |bytes| {
        let view = SpikeTensor::view(bytes)?;
        Ok(SpikeSummary {
            topic: topic.to_string(),
            step: view.header.step.to_native(),
            seq: view.header.seq.to_native(),
            source: view.source().to_string(),
            timestamp_ns: view.header.timestamp_ns.to_native(),
            shape: view.shape().to_vec(),
            len: view.len(),
            encoding: view.encoding().name(),
            active: view.active_count(),
            indices: view.active_indices().take(max_indices).collect(),
            bytes: bytes.len(),
        })
    })
}

fn level_name(level: i32) -> &'static str {
    match LogLevel::try_from(level).unwrap_or(LogLevel::Unspecified) {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
        LogLevel::Unspecified => "?",
    }
}

fn timestamp(unix_ns: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_millis(time).to_string()
}

fn key_values<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut pairs: Vec<String> = map.into_iter().map(|(k, v)| format!(" {k}={v}")).collect();
    pairs.sort();
    pairs.concat()
}

/// `[1, 5, 9]`, with `, …` when more indices were active than shown.
fn index_list(indices: &[u32], active: usize) -> String {
    let shown: Vec<String> = indices.iter().map(u32::to_string).collect();
    let more = if active > indices.len() { ", …" } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

impl Decoded {
    /// One line of text; with `with_key`, prefixed by the topic (or node) it came from.
    pub(crate) fn text(&self, with_key: bool) -> String {
        match self {
            Decoded::Spikes(s) => {
                let prefix = if with_key {
                    format!("{}: ", s.topic)
                } else {
                    String::new()
                };
                format!(
                    "{prefix}step={} seq={} source={} shape={:?} encoding={} active={}/{} indices={}",
                    s.step,
                    s.seq,
                    s.source,
                    s.shape,
                    s.encoding,
                    s.active,
                    s.len,
                    index_list(&s.indices, s.active)
                )
            }
            Decoded::Log(record) => format!(
                "[{}] {} {} {}: {}{}",
                level_name(record.level),
                timestamp(record.timestamp_unix_ns),
                record.node,
                record.target,
                record.message,
                key_values(&record.fields)
            ),
            Decoded::Metrics { node, batch } => {
                let samples: Vec<String> = batch
                    .samples
                    .iter()
                    .map(|s| {
                        let labels = key_values(&s.labels);
                        let labels = if labels.is_empty() {
                            String::new()
                        } else {
                            format!("{{{}}}", labels.trim_start())
                        };
                        format!("{}{labels}={}", s.name, s.value)
                    })
                    .collect();
                let node = batch
                    .samples
                    .first()
                    .map(|s| s.node.as_str())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(node);
                format!("{node}: {}", samples.join(" "))
            }
        }
    }

    /// One JSON object: `type` and `key`, then the message's fields.
    pub(crate) fn json(&self, key: &str) -> Value {
        match self {
            Decoded::Spikes(s) => json!({
                "type": "SpikeTensor",
                "key": key,
                "topic": s.topic,
                "step": s.step,
                "seq": s.seq,
                "source": s.source,
                "timestampNs": s.timestamp_ns,
                "shape": s.shape,
                "len": s.len,
                "encoding": s.encoding,
                "active": s.active,
                "indices": s.indices,
                "indicesTruncated": s.active > s.indices.len(),
                "bytes": s.bytes,
            }),
            Decoded::Log(record) => {
                let mut value = tagged("LogRecord", key, record);
                value["level"] = Value::from(level_name(record.level));
                value
            }
            Decoded::Metrics { batch, .. } => tagged("MetricBatch", key, batch),
        }
    }
}

fn tagged(type_name: &str, key: &str, message: &impl serde::Serialize) -> Value {
    let mut value = json!({ "type": type_name, "key": key });
    if let (Value::Object(fields), Ok(Value::Object(message))) =
        (&mut value, serde_json::to_value(message))
    {
        fields.extend(message);
    }
    value
}

/// How long ago a message stamped `timestamp_ns` was published (zero if the clocks disagree).
pub(crate) fn age(timestamp_ns: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(Duration::from_nanos(timestamp_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn local(key: &str, bytes: &[u8]) -> Received {
        let mut payload = AlignedVec::<ALIGNMENT>::new();
        payload.extend_from_slice(bytes);
        Received::Local {
            key: Arc::from(key),
            payload: Arc::new(payload),
        }
    }

    #[test]
    fn spike_tensors_decode_with_the_first_indices() {
        let tensor = SpikeTensor::builder("layer1")
            .shape([100])
            .step(7)
            .sparse((0..15).collect())
            .unwrap();
        let sample = local(
            "evospike/default/topic/layer1/spikes",
            &tensor.to_aligned_bytes(),
        );
        let decoded = decode(&sample, 10).unwrap();
        let Decoded::Spikes(summary) = &decoded else {
            panic!("not spikes: {decoded:?}")
        };
        assert_eq!((summary.step, summary.active, summary.len), (7, 15, 100));
        assert_eq!(summary.indices, (0..10).collect::<Vec<_>>());
        let text = decoded.text(false);
        assert!(text.starts_with("step=7 seq=0 source=layer1 shape=[100] encoding=sparse active=15/100 indices=[0, 1,"), "{text}");
        assert!(text.ends_with("9, …]"), "{text}");
        assert!(decoded.text(true).starts_with("layer1/spikes: step=7"));
        let json = decoded.json(sample.key());
        assert_eq!(json["indicesTruncated"], true);
        assert_eq!(json["topic"], "layer1/spikes");
    }

    #[test]
    fn garbage_is_an_error_naming_key_and_size() {
        let err = decode(&local("evospike/default/topic/noisy", &[0xAB; 37]), 10).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("invalid payload on evospike/default/topic/noisy (37 bytes): "),
            "{text}"
        );
    }

    #[test]
    fn logs_and_metrics_decode_by_key_kind() {
        use prost::Message;
        let record = LogRecord {
            level: LogLevel::Warn as i32,
            node: "enc".into(),
            target: "evospike_node".into(),
            message: "late input".into(),
            fields: [("step".to_string(), "7".to_string())].into(),
            timestamp_unix_ns: 0,
        };
        let decoded = decode(&local("evospike/lab/log/enc", &record.encode_to_vec()), 10).unwrap();
        assert_eq!(
            decoded.text(false),
            "[WARN] 1970-01-01T00:00:00.000Z enc evospike_node: late input step=7"
        );
        assert_eq!(decoded.json("k")["level"], "WARN");
        assert_eq!(decoded.json("k")["message"], "late input");

        let sample = MetricSample {
            node: "enc".into(),
            name: "rate_hz".into(),
            value: 100.0,
            ..Default::default()
        };
        let one = decode(
            &local("evospike/lab/metric/enc", &sample.encode_to_vec()),
            10,
        )
        .unwrap();
        assert_eq!(one.text(false), "enc: rate_hz=100");
        let batch = MetricBatch {
            samples: vec![
                sample.clone(),
                MetricSample {
                    name: "spikes".into(),
                    value: 3.0,
                    ..sample
                },
            ],
        };
        let both = decode(
            &local("evospike/lab/metric/enc", &batch.encode_to_vec()),
            10,
        )
        .unwrap();
        assert_eq!(both.text(false), "enc: rate_hz=100 spikes=3");
    }

    #[test]
    fn keys_without_a_decoder_are_refused() {
        assert!(decode(&local("evospike/lab/health/enc", &[]), 10).is_err());
        assert!(decode(&local("other/thing", &[]), 10).is_err());
    }
}
