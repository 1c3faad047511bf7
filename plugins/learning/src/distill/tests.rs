use std::sync::atomic::AtomicBool;

use super::*;
use crate::fit;
use crate::model::Provenance;
use crate::surrogate::tests::{bars, spec};

/// Trains a 64-hidden teacher on the bars and saves it; returns its directory.
fn teacher_dir(dir: &Path) -> std::path::PathBuf {
    let (x, y) = bars(128, 1);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let params = json!({"hidden": [64], "steps": 10, "batch": 16, "lr": 0.01, "epochs": 5, "threads": 1, "shift": 0});
    let mut teacher = SurrogateGradient::new(&spec(params)).unwrap();
    fit::fit(
        &mut teacher,
        &data,
        None,
        5,
        None,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    let out = dir.join("teacher");
    fit::model_of(&teacher, Provenance::default(), [])
        .save(&out)
        .unwrap();
    out
}

fn student(teacher: &Path, extra: Value) -> LearnerSpec {
    let mut params = json!({"hidden": [8], "steps": 6, "batch": 16, "lr": 0.01, "epochs": 5, "threads": 1, "shift": 0, "teacher": teacher});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    spec(params)
}

#[test]
fn a_student_learns_from_the_teacher_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher_dir(tmp.path());
    // α = 1: the labels play no part; everything the student knows comes from the teacher.
    let mut learner = Distillation::new(&student(&teacher, json!({"alpha": 1.0}))).unwrap();
    let (x, y) = bars(128, 1);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    for _ in 0..5 {
        let r = learner
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
        assert!(r.completed && r.loss.is_finite());
    }
    let (tx, ty) = bars(64, 2);
    let test = Dataset::new(&tx, 36, Some(&ty), 4).unwrap();
    let right = fit::accuracy(&learner.predict(&test).unwrap(), &ty);
    assert!(right >= 0.9, "{right}");
    assert_eq!(learner.network().layers[0].size, 8);
    assert_eq!(learner.hyperparameters()["alpha"], json!(1.0));
}

#[test]
fn the_gradient_matches_finite_differences_of_the_loss() {
    let (c, labels) = (4, [2u32, 0]);
    let z: Vec<f32> = vec![0.3, -1.2, 2.0, 0.1, 1.5, 0.2, -0.4, 0.9];
    let z_t: Vec<f32> = vec![1.0, 0.0, 3.0, -2.0, 0.5, 2.5, 0.0, 0.0];
    let settings = (0.7, 3.0);
    let loss_at = |z: &[f32]| {
        let mut g = vec![0.0; z.len()];
        let (mut a, mut b) = (vec![0.0; c], vec![0.0; c]);
        distillation_loss(settings, &labels, z, &z_t, &mut g, (&mut a, &mut b)).0 / 2.0
    };
    let mut grad = vec![0.0; z.len()];
    let (mut a, mut b) = (vec![0.0; c], vec![0.0; c]);
    distillation_loss(settings, &labels, &z, &z_t, &mut grad, (&mut a, &mut b));
    for k in 0..z.len() {
        let eps = 1e-2;
        let (mut plus, mut minus) = (z.clone(), z.clone());
        plus[k] += eps;
        minus[k] -= eps;
        let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
        assert!(
            (numeric - f64::from(grad[k])).abs() < 2e-3,
            "score {k}: numeric {numeric} analytic {}",
            grad[k]
        );
    }
}

#[test]
fn bad_settings_and_teachers_are_typed_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = Distillation::new(&spec(json!({"hidden": [8]}))).unwrap_err();
    assert!(
        matches!(&missing, PluginError::InvalidParameter { param, .. } if param == "teacher"),
        "{missing}"
    );
    let nowhere = Distillation::new(&student(&tmp.path().join("none"), json!({}))).unwrap_err();
    assert!(nowhere.to_string().contains("model.json"), "{nowhere}");
    let teacher = teacher_dir(tmp.path());
    let err = Distillation::new(&student(&teacher, json!({"alpha": 1.5}))).unwrap_err();
    assert!(err.to_string().contains("alpha"), "{err}");
    let err = Distillation::new(&student(&teacher, json!({"hiden": [3]}))).unwrap_err();
    assert!(
        matches!(&err, PluginError::InvalidParameter { plugin, param, .. } if plugin == NAME && param == "hiden"),
        "{err}"
    );
    let mut wide = student(&teacher, json!({}));
    wide.input_size = 49;
    wide.input_shape = vec![7, 7];
    let err = Distillation::new(&wide).unwrap_err();
    assert!(err.to_string().contains("takes 36 inputs"), "{err}");
}

#[test]
fn a_checkpoint_resumes_under_the_distillation_name() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher_dir(tmp.path());
    let s = student(&teacher, json!({}));
    let (x, y) = bars(64, 3);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut a = Distillation::new(&s).unwrap();
    a.train_epoch(&data, &mut |_| Control::Continue).unwrap();
    let c = a.checkpoint();
    assert_eq!(c.learner, NAME);
    let mut b = Distillation::new(&s).unwrap();
    b.restore(&c).unwrap();
    assert_eq!(b.position(), (1, 0));
    assert_eq!(b.weights(), a.weights());
}
