use super::*;
use crate::infer::InferenceNet;
use crate::surrogate::tests::{bars, spec};

fn small(extra: serde_json::Value) -> LearnerSpec {
    let mut p = json!({"hidden": [24], "steps": 8, "batch": 16, "lr": 0.005, "epochs": 4,
                       "threads": 1, "shift": 0, "probe_epochs": 30});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    spec(p)
}

#[test]
fn nt_xent_gradient_matches_finite_differences() {
    let backend = CpuBackend::single_threaded();
    let (views, h, tau) = (6, 5, 0.5);
    // Continuous "counts" (the loss is smooth in them).
    let z: Vec<f32> = (0..views * h)
        .map(|i| 1.0 + ((i * 7919) % 13) as f32 * 0.37)
        .collect();
    let mut nt = NtXent::new(views, h);
    let mut grad = vec![0.0; z.len()];
    nt.loss(&backend, tau, &z, &mut grad, h).unwrap();
    let mut loss_at = |z: &[f32]| {
        let mut g = vec![0.0; z.len()];
        nt.loss(&backend, tau, z, &mut g, h).unwrap().0 / views as f64
    };
    for k in 0..z.len() {
        let eps = 1e-2;
        let (mut plus, mut minus) = (z.clone(), z.clone());
        plus[k] += eps;
        minus[k] -= eps;
        let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
        assert!(
            (numeric - f64::from(grad[k])).abs() < 2e-3 + 2e-2 * numeric.abs(),
            "count {k}: numeric {numeric} analytic {}",
            grad[k]
        );
    }
}

#[test]
fn contrastive_training_lowers_the_loss_and_the_probe_classifies() {
    let (x, y) = bars(128, 1);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = Ssl::new(&small(json!({}))).unwrap();
    let mut losses = Vec::new();
    for _ in 0..4 {
        let r = learner
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
        assert!(r.completed && r.loss.is_finite());
        losses.push(r.loss);
    }
    assert!(losses[3] < losses[0], "{losses:?}");
    let (tx, ty) = bars(64, 2);
    let test = Dataset::new(&tx, 36, Some(&ty), 4).unwrap();
    let acc = crate::fit::accuracy(&learner.predict(&test).unwrap(), &ty);
    assert!(acc >= 0.9, "{acc}");
}

/// The saved model (hidden layer + probe) run through the NEURON plugins, as
/// `evospike eval` runs it, predicts what the learner predicts.
#[test]
fn the_model_runs_through_the_neuron_plugins_with_the_same_predictions() {
    let (x, y) = bars(96, 4);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = Ssl::new(&small(json!({"label_fraction": 0.5}))).unwrap();
    for _ in 0..2 {
        learner
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
    }
    let model = crate::fit::model_of(&learner, Default::default(), []);
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
    let same = (0..data.len())
        .filter(|&i| net.classify(data.sample(i)).unwrap() == ours[i])
        .count();
    assert!(same >= data.len() - 1, "{same}/{}", data.len());
}

#[test]
fn lr_zero_keeps_the_random_weights_and_still_fits_a_probe() {
    let (x, y) = bars(64, 5);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = Ssl::new(&small(json!({"lr": 0.0}))).unwrap();
    let before = learner.weights()[0].clone();
    learner
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let after = learner.weights();
    assert_eq!(after[0], before);
    assert!(after[1].data.iter().any(|&w| w != 0.0));
}

#[test]
fn a_checkpoint_resumes_to_the_same_weights() {
    let (x, y) = bars(64, 6);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let s = small(json!({}));
    let mut straight = Ssl::new(&s).unwrap();
    straight
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let mut first = Ssl::new(&s).unwrap();
    let r = first
        .train_epoch(&data, &mut |p| {
            if p.batch == 1 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert!(!r.completed);
    let mut resumed = Ssl::new(&s).unwrap();
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
        (json!({"label_fraction": 0.0}), "label_fraction"),
        (json!({"dropout": 1.0}), "dropout"),
        (json!({"temperature": -1.0}), "temperature"),
        (json!({"probe": 3}), "probe"),
    ] {
        let err = Ssl::new(&spec(params)).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParameter { param, .. } if param == key),
            "{err}"
        );
    }
}
