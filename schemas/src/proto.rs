//! Control-plane messages, generated from `schemas/proto/evospike/v1/*.proto`.
//!
//! Every message implements [`prost::Message`] (binary protobuf) and
//! [`prost::Name`] (its fully qualified type name, used in envelopes), and derives
//! serde for JSON views. [`decode`] turns decoding failures into a
//! [`SchemaError`](crate::SchemaError) that names the expected type.

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/evospike.v1.rs"));
}

pub use generated::*;

use crate::SchemaError;

impl ErrorReply {
    /// An error reply with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code: code as i32,
            message: message.into(),
            ..Default::default()
        }
    }
}

/// Decodes a protobuf message, naming the expected type in the error.
pub fn decode<M: prost::Message + prost::Name + Default>(bytes: &[u8]) -> Result<M, SchemaError> {
    M::decode(bytes).map_err(|err| SchemaError::Decode {
        type_name: M::NAME,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::{Message, Name};

    #[test]
    fn messages_round_trip_and_name_themselves() {
        let record = LogRecord {
            timestamp_unix_ns: 42,
            level: LogLevel::Warn as i32,
            node: "layer1".into(),
            target: "evospike_node".into(),
            message: "late input".into(),
            fields: [("step".to_string(), "7".to_string())].into(),
        };
        let decoded: LogRecord = decode(&record.encode_to_vec()).unwrap();
        assert_eq!(decoded, record);
        assert_eq!(LogRecord::full_name(), "evospike.v1.LogRecord");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let err = decode::<Health>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            matches!(
                err,
                SchemaError::Decode {
                    type_name: "Health",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn reply_envelope_json_uses_camel_case_and_oneof() {
        let reply = ReplyEnvelope {
            wire_version: 1,
            request_id: 9,
            responder: "svc".into(),
            result: Some(reply_envelope::Result::Error(ErrorReply {
                code: ErrorCode::NotFound as i32,
                message: "no such model".into(),
                key: "evospike/default/svc/registry/get".into(),
                details: Default::default(),
            })),
            body_type: String::new(),
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["requestId"], 9);
        assert_eq!(json["result"]["error"]["message"], "no such model");
    }
}
