use super::*;

/// Four classes of noisy 6x6 bars: a row or a column, at one of two places.
pub(crate) fn bars(count: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..count {
        let class = (i % 4) as u32;
        let mut img = [0.0f32; 36];
        for k in 0..6 {
            let at = match class {
                0 => 6 + k,
                1 => 24 + k,
                2 => k * 6 + 1,
                _ => k * 6 + 4,
            };
            img[at] = 1.0;
        }
        for v in &mut img {
            *v = (*v + rng.random_range(-0.2f32..0.2)).clamp(0.0, 1.0);
        }
        x.extend(img);
        y.push(class);
    }
    (x, y)
}

pub(crate) fn spec(params: serde_json::Value) -> LearnerSpec {
    LearnerSpec {
        input_size: 36,
        input_shape: vec![6, 6],
        classes: ["row1", "row4", "col1", "col4"].map(String::from).to_vec(),
        params: params.as_object().cloned().unwrap_or_default(),
        seed: 7,
    }
}

fn small() -> serde_json::Value {
    json!({"hidden": [32], "steps": 10, "batch": 16, "lr": 0.01, "epochs": 5, "threads": 1, "shift": 0})
}

#[test]
fn learns_to_tell_bars_apart() {
    let (x, y) = bars(128, 1);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let mut learner = SurrogateGradient::new(&spec(small())).unwrap();
    let mut batches = 0;
    for _ in 0..5 {
        let r = learner
            .train_epoch(&data, &mut |_| {
                batches += 1;
                Control::Continue
            })
            .unwrap();
        assert!(r.completed && r.loss.is_finite());
    }
    assert_eq!(batches, 5 * 8);
    let (tx, ty) = bars(64, 2);
    let test = Dataset::new(&tx, 36, Some(&ty), 4).unwrap();
    let predicted = learner.predict(&test).unwrap();
    let right = predicted.iter().zip(&ty).filter(|(p, y)| p == y).count();
    assert!(right >= 60, "{right}/64");
    assert_eq!(learner.position(), (5, 0));
}

#[test]
fn a_stopped_epoch_resumes_from_its_checkpoint_to_the_same_weights() {
    let (x, y) = bars(96, 3);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let params = json!({"hidden": [16], "steps": 6, "batch": 16, "threads": 1});
    let mut straight = SurrogateGradient::new(&spec(params.clone())).unwrap();
    for _ in 0..2 {
        straight
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
    }
    let mut first = SurrogateGradient::new(&spec(params.clone())).unwrap();
    first
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    let r = first
        .train_epoch(&data, &mut |p| {
            if p.batch == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert!(!r.completed);
    assert_eq!(first.position(), (1, 3));
    let checkpoint = first.checkpoint();
    let mut resumed = SurrogateGradient::new(&spec(params)).unwrap();
    resumed.restore(&checkpoint).unwrap();
    let r = resumed
        .train_epoch(&data, &mut |_| Control::Continue)
        .unwrap();
    assert!(r.completed);
    assert_eq!(resumed.position(), (2, 0));
    assert_eq!(resumed.weights(), straight.weights());
}

#[test]
fn checkpoints_of_another_network_are_refused() {
    let a = SurrogateGradient::new(&spec(small())).unwrap();
    let mut b = SurrogateGradient::new(&spec(json!({"hidden": [8], "threads": 1}))).unwrap();
    let err = b.restore(&a.checkpoint()).unwrap_err().to_string();
    assert!(err.contains("another network"), "{err}");
}

#[test]
fn unknown_and_invalid_parameters_name_the_key() {
    let err = SurrogateGradient::new(&spec(json!({"hiden": [10]})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`hiden`"), "{err}");
    let err = SurrogateGradient::new(&spec(json!({"beta": 1.5})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta") && err.contains("(0, 1)"), "{err}");
    let err = SurrogateGradient::new(&spec(json!({"loss": "mse"})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mse"), "{err}");
}

#[test]
fn shift_moves_pixels_and_fills_with_zeros() {
    let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut dst = vec![0.0; 9];
    shift_image(&src, &mut dst, 3, 3, 1, -1);
    assert_eq!(dst, [0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]);
}

#[test]
fn the_network_names_the_plugins_and_their_exact_decay() {
    let learner = SurrogateGradient::new(&spec(small())).unwrap();
    let net = learner.network();
    assert_eq!(net.layers[0].neuron, "LIFNeuron");
    assert_eq!(net.layers[1].neuron, "LeakyIntegrator");
    let tau = net.layers[0].params["tau_ms"].as_f64().unwrap() as f32;
    assert_eq!(
        evospike_neuron::membrane_decay(1.0, tau),
        learner.shape.lif.beta
    );
    assert!((learner.shape.lif.beta - 0.95).abs() < 1e-6);
    let w = learner.weights();
    assert_eq!(w[0].name, "layers.hidden.weight");
    assert_eq!(w[0].shape, [32, 36]);
}

/// Computes each batch as `shards` shards on a second learner (as data-parallel
/// workers do) and averages them weighted by rows.
struct Sharded {
    worker: SurrogateGradient,
    shards: usize,
}

impl GradientSource for Sharded {
    fn gradient(
        &mut self,
        learner: &mut SurrogateGradient,
        data: &Dataset<'_>,
        plan: &BatchPlan,
    ) -> Result<GradientStats, PluginError> {
        let p = learner.parameter_count();
        let mut weights = vec![0.0; p];
        learner.copy_weights_to(&mut weights)?;
        self.worker.set_weights(&weights)?;
        let (mut sum, mut part) = (vec![0.0f32; p], vec![0.0f32; p]);
        let mut total = GradientStats::default();
        for k in 0..self.shards {
            let s = self
                .worker
                .shard_gradient(data, plan, plan.shard(k, self.shards))?;
            self.worker.copy_gradient_to(&mut part)?;
            for (a, g) in sum.iter_mut().zip(&part) {
                *a += g * s.rows as f32;
            }
            total.loss += s.loss;
            total.correct += s.correct;
            total.rows += s.rows;
        }
        sum.iter_mut().for_each(|a| *a /= total.rows as f32);
        learner.set_gradient(&sum)?;
        Ok(total)
    }
}

#[test]
fn sharded_gradients_train_the_same_weights_as_whole_batches() {
    let (x, y) = bars(100, 3);
    let data = Dataset::new(&x, 36, Some(&y), 4).unwrap();
    let params = json!({"hidden": [24], "steps": 8, "batch": 20, "lr": 0.01, "epochs": 2, "threads": 1, "shift": 1});
    let mut whole = SurrogateGradient::new(&spec(params.clone())).unwrap();
    let mut sharded = SurrogateGradient::new(&spec(params.clone())).unwrap();
    let mut source = Sharded {
        worker: SurrogateGradient::new(&spec(params)).unwrap(),
        shards: 3,
    };
    for _ in 0..2 {
        whole
            .train_epoch(&data, &mut |_| Control::Continue)
            .unwrap();
        sharded
            .train_epoch_from(&data, &mut |_| Control::Continue, &mut source)
            .unwrap();
    }
    let (a, b) = (whole.weights(), sharded.weights());
    let mut max = 0.0f32;
    for (a, b) in a.iter().zip(&b) {
        for (u, v) in a.data.iter().zip(&b.data) {
            max = max.max((u - v).abs());
        }
    }
    assert!(max < 1e-4, "largest weight difference {max}");
    assert_ne!(
        a,
        SurrogateGradient::new(&spec(json!({"hidden": [24], "steps": 8, "threads": 1})))
            .unwrap()
            .weights()
    );
}

#[test]
fn shards_cover_the_batch_once() {
    let plan = BatchPlan {
        epoch: 0,
        batch: 0,
        indices: (0..10).collect(),
        shifts: Vec::new(),
    };
    let shards: Vec<_> = (0..3).map(|k| plan.shard(k, 3)).collect();
    assert_eq!(shards, vec![0..3, 3..6, 6..10]);
    assert!(plan.shard(0, 20).is_empty());
}
