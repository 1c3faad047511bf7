use super::*;
use evospike_plugin_api::{EncoderDef, LayerDef, Readout};

fn model() -> Model {
    let layer = |name: &str, neuron: &str, size| LayerDef {
        name: name.into(),
        neuron: neuron.into(),
        size,
        params: Params::new(),
    };
    Model {
        manifest: Manifest {
            schema_version: SCHEMA_VERSION,
            network: NetworkSpec {
                input_size: 4,
                input_shape: vec![2, 2],
                encoder: EncoderDef {
                    plugin: "CurrentEncoder".into(),
                    params: Params::new(),
                },
                dt_ms: 1.0,
                steps_per_sample: 5,
                layers: vec![
                    layer("hidden", "LIFNeuron", 3),
                    layer("output", "LeakyIntegrator", 2),
                ],
                classes: vec!["a".into(), "b".into()],
                readout: Readout::Membrane,
            },
            provenance: Provenance::default(),
            metrics: BTreeMap::from([("test_accuracy".into(), 0.5)]),
            files: BTreeMap::new(),
        },
        weights: vec![
            Tensor {
                name: weight_name("hidden"),
                shape: vec![3, 4],
                data: (0..12).map(|v| v as f32).collect(),
            },
            Tensor {
                name: weight_name("output"),
                shape: vec![2, 3],
                data: vec![0.5; 6],
            },
        ],
    }
}

#[test]
fn saves_and_loads_with_digests() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model();
    m.save(dir.path()).unwrap();
    let back = Model::load(dir.path()).unwrap();
    assert_eq!(back.weights, m.weights);
    assert_eq!(back.manifest, m.manifest);
    assert_eq!(back.manifest.files[WEIGHTS_FILE].len(), 64);
}

#[test]
fn a_changed_weights_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    model().save(dir.path()).unwrap();
    let path = dir.path().join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = Model::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Digest { .. }), "{err}");
}

#[test]
fn newer_schemas_unknown_fields_and_wrong_shapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model();
    m.save(dir.path()).unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"schema_version\": 1", "\"schema_version\": 9"),
    )
    .unwrap();
    let err = Model::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("schema version 9 is newer"), "{err}");
    std::fs::write(&path, text.replace("\"metrics\"", "\"metricz\"")).unwrap();
    let err = Model::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("metricz"), "{err}");

    let mut wrong = model();
    wrong.weights[1].shape = vec![3, 2];
    wrong.save(dir.path()).unwrap();
    let err = Model::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("needs [2, 3]"), "{err}");
    assert!(matches!(
        Model::load(Path::new("/nonexistent")),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn checkpoints_round_trip_and_check_their_digest() {
    let dir = tempfile::tempdir().unwrap();
    let c = Checkpoint {
        learner: "L".into(),
        spec: evospike_plugin_api::LearnerSpec {
            input_size: 4,
            input_shape: vec![4],
            classes: vec!["a".into(), "b".into()],
            params: Params::new(),
            seed: 3,
        },
        epoch: 2,
        batch: 5,
        state: serde_json::json!({"step": 11}),
        tensors: model().weights,
    };
    save_checkpoint(dir.path(), &c).unwrap();
    assert_eq!(load_checkpoint(dir.path()).unwrap(), c);

    // A later save cut short by a crash (its tensors written, its metadata not)
    // leaves the earlier checkpoint whole.
    std::fs::write(
        dir.path().join("checkpoint-0123456789abcdef.safetensors"),
        b"junk",
    )
    .unwrap();
    assert_eq!(load_checkpoint(dir.path()).unwrap(), c);
    // The next save replaces it and leaves one tensors file.
    let later = Checkpoint {
        epoch: 3,
        batch: 0,
        ..c.clone()
    };
    save_checkpoint(dir.path(), &later).unwrap();
    assert_eq!(load_checkpoint(dir.path()).unwrap(), later);
    let tensors: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(tensors.len(), 1, "{tensors:?}");

    std::fs::write(dir.path().join(&tensors[0]), b"junk").unwrap();
    assert!(matches!(
        load_checkpoint(dir.path()),
        Err(ModelError::Digest { .. })
    ));
}
