//! The JSON forms of service-message fields (see `schemas/build.rs`): bytes as
//! base64, `<x>_json` strings as JSON values, enums by name.

/// `bytes` as standard base64 (padding optional when reading).
pub mod base64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );

    /// Decodes base64 text, saying what is wrong with it.
    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        ENGINE
            .decode(text.trim())
            .map_err(|e| format!("not base64: {e}"))
    }

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ENGINE.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&text).map_err(serde::de::Error::custom)
    }
}

/// `optional bytes` as base64.
pub mod base64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::base64::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|t| super::base64::decode(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A `<x>_json` string: JSON text on the bus, the JSON value itself over HTTP.
/// Only objects are accepted (`null` reads as none).
pub mod object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| serde::ser::Error::custom(format!("stored JSON is malformed: {e}")))?;
        value.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Ok(String::new()),
            value @ serde_json::Value::Object(_) => Ok(value.to_string()),
            other => Err(serde::de::Error::custom(format!(
                "expected a JSON object, got {other}"
            ))),
        }
    }
}

/// Enum fields (`i32` in prost) by variant name: `JOB_STATE_RUNNING` is `"RUNNING"`.
pub mod enumeration {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<E, S>(value: &i32, s: S) -> Result<S::Ok, S::Error>
    where
        E: TryFrom<i32> + Serialize,
        S: Serializer,
    {
        match E::try_from(*value) {
            Ok(e) => e.serialize(s),
            Err(_) => s.serialize_i32(*value),
        }
    }

    pub(crate) fn deserialize<'de, E, D>(d: D) -> Result<i32, D::Error>
    where
        E: DeserializeOwned + Into<i32>,
        D: Deserializer<'de>,
    {
        let e =
            E::deserialize(serde_json::Value::deserialize(d)?).map_err(serde::de::Error::custom)?;
        Ok(e.into())
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::{
        InferRequest, JobState, RegisterModelRequest, RegistryVersion, TrainJob, TrainRequest,
    };
    use serde_json::json;

    #[test]
    fn service_json_uses_proto_names_and_requires_plain_fields() {
        let req: RegisterModelRequest = serde_json::from_value(json!({
            "model_id": "m", "name": "M", "version": "1.0.0",
            "framework": "evospike", "metadata": {"accuracy": 0.97}
        }))
        .unwrap();
        assert_eq!(req.framework.as_deref(), Some("evospike"));
        assert_eq!(req.model_type, None);
        assert_eq!(req.metadata_json, r#"{"accuracy":0.97}"#);

        let missing =
            serde_json::from_value::<RegisterModelRequest>(json!({"model_id": "m", "name": "M"}))
                .unwrap_err();
        assert!(
            missing.to_string().contains("missing field `version`"),
            "{missing}"
        );
        let unknown = serde_json::from_value::<RegisterModelRequest>(
            json!({"model_id": "m", "name": "M", "version": "1", "colour": "red"}),
        )
        .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `colour`"),
            "{unknown}"
        );
        let not_object = serde_json::from_value::<RegisterModelRequest>(
            json!({"model_id": "m", "name": "M", "version": "1", "metadata": [1]}),
        )
        .unwrap_err();
        assert!(
            not_object.to_string().contains("expected a JSON object"),
            "{not_object}"
        );
    }

    #[test]
    fn bytes_are_base64_and_enums_are_names() {
        let req: InferRequest = serde_json::from_value(json!({
            "model_id": "m", "inputs": {"image": "AAEC/w=="}
        }))
        .unwrap();
        assert_eq!(req.inputs.unwrap().image, Some(vec![0, 1, 2, 255]));
        let bad = serde_json::from_value::<InferRequest>(json!({
            "model_id": "m", "inputs": {"image": "base64 encoded image!"}
        }))
        .unwrap_err();
        assert!(bad.to_string().contains("not base64"), "{bad}");

        let job = TrainJob {
            job_id: "j".into(),
            state: JobState::Running as i32,
            ..Default::default()
        };
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["state"], "RUNNING");
        let back: TrainJob = serde_json::from_value(value).unwrap();
        assert_eq!(back, job);
        let wrong = serde_json::from_value::<TrainRequest>(json!({
            "model_type": "classifier", "dataset_path": "x", "config": {"epochs": "ten"}
        }))
        .unwrap_err();
        assert!(wrong.to_string().contains("invalid type"), "{wrong}");
    }

    #[test]
    fn replies_round_trip() {
        let v = RegistryVersion {
            model_id: "m".into(),
            version: "1".into(),
            state: "ready".into(),
            metadata_json: r#"{"a":1}"#.into(),
            ..Default::default()
        };
        let value = serde_json::to_value(&v).unwrap();
        assert_eq!(value["metadata"], json!({"a": 1}));
        assert_eq!(serde_json::from_value::<RegistryVersion>(value).unwrap(), v);
    }
}
