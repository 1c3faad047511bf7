use super::*;
use crate::surrogate::tests::{bars, spec};

fn small(extra: serde_json::Value) -> LearnerSpec {
    let mut p = json!({"hidden": [16], "steps": 60, "eval_steps": 40, "epochs": 3, "batch": 32});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    spec(p)
}

#[test]
fn neurons_specialise_and_the_vote_tells_bars_apart() {
    let (x, y) = bars(128, 1);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = StdpUnsupervised::new(&small(json!({}))).unwrap();
    for _ in 0..3 {
        let r = learner
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
        assert!(r.completed && r.loss.is_finite());
    }
    // Every class has neurons of its own.
    for c in 0..4 {
        assert!(
            learner.readout.assignment.contains(&Some(c)),
            "class {c}: {:?}",
            learner.readout.assignment
        );
    }
    let (tx, ty) = bars(64, 2);
    let test = Dataset::new(&tx, 36, Some(&ty), 4).unwrap();
    let acc = crate::fit::accuracy(&learner.predict(&test).unwrap(), &ty);
    assert!(acc >= 0.9, "{acc}");
}

#[test]
fn training_moves_the_weights_toward_the_inputs() {
    let (x, y) = bars(128, 3);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = StdpUnsupervised::new(&small(json!({}))).unwrap();
    let first = learner
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let third = (0..2)
        .map(|_| {
            learner
                .train_epoch(&data, &mut |_| Control::Continue)
                .unwrap()
        })
        .last()
        .unwrap();
    assert!(third.loss < first.loss, "{} -> {}", first.loss, third.loss);
    // Normalised: every neuron's input weights sum to w_sum.
    let w = learner.weights_dense();
    let sum: f32 = (0..36).map(|j| w[j * 16]).sum();
    assert!(
        (sum - learner.w_sum).abs() < 0.01 * learner.w_sum,
        "{sum} vs {}",
        learner.w_sum
    );
}

/// The claim the model rests on: with rest and reset at 0, threshold `1 + θ` and
/// weights `w` fire exactly as threshold 1 and weights `w / (1 + θ)`.
#[test]
fn a_threshold_offset_folds_into_the_weights() {
    let lif = StdpConfig::default().lif();
    let theta = [0.0f32, 0.4, 1.7];
    let drive = [0.05f32, 0.08, 0.31];
    let mut adaptive = LifLayer::new(3, DT_MS, lif.clone(), 0).unwrap();
    let mut folded = LifLayer::new(3, DT_MS, lif, 0).unwrap();
    let scaled: Vec<f32> = drive
        .iter()
        .zip(&theta)
        .map(|(d, t)| d / (1.0 + t))
        .collect();
    let (mut a, mut b) = ([0u64], [0u64]);
    let mut fired = 0;
    for _ in 0..500 {
        adaptive.threshold_offsets_mut().copy_from_slice(&theta);
        NeuronLayer::step(&mut adaptive, &drive, &mut a);
        NeuronLayer::step(&mut folded, &scaled, &mut b);
        assert_eq!(a, b);
        fired += a[0].count_ones();
    }
    assert!(fired > 20, "{fired}");
}

#[test]
fn the_saved_model_predicts_what_the_learner_predicts() {
    let (x, y) = bars(96, 4);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = StdpUnsupervised::new(&small(json!({"epochs": 1}))).unwrap();
    learner
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    crate::fit::model_of(&learner, Provenance::default(), [])
        .save(tmp.path())
        .unwrap();
    let model = Model::load(tmp.path()).unwrap();
    let plugins = evospike_neuron::builtin_plugins();
    let mut net = InferenceNet::new(&model, Box::new(CpuBackend::single_threaded()), |def, s| {
        plugins
            .iter()
            .filter(|p| p.metadata().name == def.neuron)
            .find_map(|p| p.as_neuron())
            .unwrap()
            .create_layer(s)
    })
    .unwrap();
    let ours = learner.predict(&data).unwrap();
    for (i, &p) in ours.iter().enumerate() {
        assert_eq!(net.classify(data.sample(i)).unwrap(), p);
    }
}

#[test]
fn a_stopped_epoch_resumes_to_the_same_weights() {
    let (x, y) = bars(96, 5);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let s = small(json!({"epochs": 1}));
    let mut straight = StdpUnsupervised::new(&s).unwrap();
    straight
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let mut first = StdpUnsupervised::new(&s).unwrap();
    let r = first
        .train_epoch(&data, &mut |p| {
            if p.batch == 0 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert!(!r.completed);
    let mut resumed = StdpUnsupervised::new(&s).unwrap();
    resumed.restore(&first.checkpoint()).unwrap();
    resumed
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(resumed.weights(), straight.weights());
}

#[test]
fn bad_parameters_name_the_key() {
    for (params, key) in [
        (json!({"hidden": [10, 10]}), "hidden"),
        (json!({"gains": []}), "gains"),
        (json!({"a_plus": -1.0}), "a_plus"),
        (json!({"steps": 0}), "steps"),
        (json!({"lr": 0.1}), "lr"),
    ] {
        let err = StdpUnsupervised::new(&spec(params)).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParameter { param, .. } if param == key),
            "{err}"
        );
    }
}
