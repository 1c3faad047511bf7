//! The lifecycle with a stand-in worker (a shell script that writes a prepared
//! model and reports one epoch) and a stand-in registry.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Mutex;

use evospike_learning::model::Provenance;
use evospike_plugin_api::{LearnerSpec, Params};
use evospike_schemas::proto::{PublishRequest, RegistryVersion, TrainConfig};

use super::*;
use crate::publish::{BoxFuture, Published};

/// Records what is published; refuses it all when `refuse` is set.
#[derive(Default)]
struct Registry {
    existing: Vec<Published>,
    refuse: bool,
    published: Mutex<Vec<PublishRequest>>,
}

#[derive(Clone)]
struct Shared(Arc<Registry>);

impl Registrar for Shared {
    fn versions(&self, _model_id: &str) -> BoxFuture<'_, Result<Vec<Published>, String>> {
        let mut versions = self.0.existing.clone();
        for p in self.0.published.lock().unwrap().iter() {
            versions.push(Published::new(p.version.clone(), &p.metadata_json));
        }
        Box::pin(async move { Ok(versions) })
    }

    fn publish(&self, req: PublishRequest) -> BoxFuture<'_, Result<RegistryVersion, String>> {
        Box::pin(async move {
            if self.0.refuse {
                return Err("the registry is read-only today".into());
            }
            let reply = RegistryVersion {
                model_id: req.model_id.clone(),
                version: req.version.clone(),
                state: "ready".into(),
                ..Default::default()
            };
            self.0.published.lock().unwrap().push(req);
            Ok(reply)
        })
    }
}

/// A model directory (an untrained 64-4-10 network) the stand-in worker copies.
fn template(dir: &Path) -> PathBuf {
    let plugins = evospike_plugins::plugin_manager::<&Path>(&[]).unwrap();
    let mut params = Params::new();
    params.insert("hidden".into(), serde_json::json!([4]));
    let spec = LearnerSpec {
        input_size: 64,
        input_shape: vec![8, 8],
        classes: (0..10).map(|c| c.to_string()).collect(),
        params,
        seed: 0,
    };
    let learner = plugins
        .registry()
        .learning(plan::DEFAULT_LEARNER)
        .unwrap()
        .create_learner(&spec)
        .unwrap();
    let mut model = evospike_learning::fit::model_of(
        learner.as_ref(),
        Provenance::default(),
        [("test_accuracy".to_owned(), 0.7)],
    );
    let out = dir.join("template");
    model.save(&out).unwrap();
    out
}

/// A stand-in `evospike`: copies the template into `--out`/`--resume`, reports
/// one epoch and the model.
fn worker(dir: &Path) -> PathBuf {
    let template = template(dir);
    let script = format!(
        r#"#!/bin/sh
out=""
while [ $# -gt 0 ]; do
  case "$1" in --out|--resume) out="$2"; shift;; esac
  shift
done
mkdir -p "$out"
cp {t}/model.json {t}/weights.safetensors "$out"/
echo '{{"epoch":1,"epochs":1,"loss":0.5,"train_accuracy":0.6,"test_accuracy":0.7,"samples_per_s":100.0,"seconds":0.1,"train_samples":10}}'
echo "{{\"model\":\"$out\",\"test_accuracy\":0.7}}"
"#,
        t = template.display()
    );
    let exe = dir.join("fake-evospike");
    std::fs::write(&exe, script).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

fn trainer(dir: &Path, registry: &Arc<Registry>) -> Arc<Trainer> {
    let config = TrainerConfig {
        data_dir: dir.join("data"),
        exe: worker(dir),
        plugin_dirs: Vec::new(),
        max_running: 1,
        cancel_grace: Duration::from_secs(5),
    };
    let trainer = Trainer::open(config, Box::new(Shared(registry.clone())), Box::new(|_| {}));
    let trainer = Arc::new(trainer.unwrap());
    tokio::spawn(trainer.clone().run());
    trainer
}

fn request(model_id: Option<&str>) -> TrainRequest {
    TrainRequest {
        model_type: "classifier".into(),
        dataset_path: "builtin:digits".into(),
        config: Some(TrainConfig {
            epochs: Some(1),
            ..Default::default()
        }),
        model_id: model_id.map(Into::into),
        ..Default::default()
    }
}

async fn finished(trainer: &Trainer, job_id: &str) -> TrainJob {
    for _ in 0..500 {
        let job = trainer.get(job_id).unwrap();
        if is_final(job.state()) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {job_id} did not finish: {:?}", trainer.get(job_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_published_with_the_next_free_version_and_their_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::default());
    let trainer = trainer(dir.path(), &registry);
    let (first, created) = trainer.submit(request(Some("m"))).unwrap();
    assert!(created);
    let first = finished(&trainer, &first.job_id).await;
    assert_eq!(first.state(), JobState::Succeeded, "{first:?}");
    assert_eq!(
        (first.model_id.as_str(), first.model_version.as_str()),
        ("m", "1.0.0")
    );
    let progress = first.progress.clone().unwrap();
    assert_eq!((progress.epoch, progress.loss_curve.len()), (1, 1));
    assert_eq!(progress.samples, 10);

    let (second, _) = trainer.submit(request(Some("m"))).unwrap();
    let second = finished(&trainer, &second.job_id).await;
    assert_eq!(second.model_version, "1.0.1");
    let published = registry.published.lock().unwrap();
    assert_eq!(published.len(), 2);
    let meta: serde_json::Value = serde_json::from_str(&published[0].metadata_json).unwrap();
    assert_eq!(meta["provenance"]["job_id"], first.job_id.as_str());
    assert_eq!(meta["metrics"]["test_accuracy"], 0.7);
    let files: Vec<_> = published[0].files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(files, ["model.json", "weights.safetensors"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_an_earlier_attempt_published_is_not_published_again() {
    let dir = tempfile::tempdir().unwrap();
    // The job ID is only known once submitted: submit to a trainer that is not
    // running yet, then start one whose registry already has that job's model.
    let config = TrainerConfig {
        data_dir: dir.path().join("data"),
        exe: worker(dir.path()),
        plugin_dirs: Vec::new(),
        max_running: 1,
        cancel_grace: Duration::from_secs(5),
    };
    let idle = Trainer::open(
        config.clone(),
        Box::new(Shared(Arc::default())),
        Box::new(|_| {}),
    )
    .unwrap();
    let (job, _) = idle.submit(request(None)).unwrap();
    drop(idle);
    let metadata = serde_json::json!({"provenance": {"job_id": job.job_id}}).to_string();
    let registry = Arc::new(Registry {
        existing: vec![Published::new("1.0.0".into(), &metadata)],
        ..Default::default()
    });
    let trainer = Arc::new(
        Trainer::open(config, Box::new(Shared(registry.clone())), Box::new(|_| {})).unwrap(),
    );
    tokio::spawn(trainer.clone().run());
    let done = finished(&trainer, &job.job_id).await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    assert_eq!(done.model_version, "1.0.0");
    assert!(registry.published.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_model_fails_its_job_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry {
        refuse: true,
        ..Default::default()
    });
    let trainer = trainer(dir.path(), &registry);
    let (job, _) = trainer.submit(request(None)).unwrap();
    let job = finished(&trainer, &job.job_id).await;
    assert_eq!(job.state(), JobState::Failed);
    assert!(job.error.contains("read-only today"), "{}", job.error);
    assert!(matches!(
        trainer.cancel(&job.job_id),
        Err(TrainingError::Conflict(_))
    ));
    assert_eq!(trainer.get(&job.job_id).unwrap().state(), JobState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_ignores_sigint_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("stubborn");
    std::fs::write(
        &exe,
        "#!/bin/sh\ntrap '' INT\necho $$ > \"$(dirname \"$0\")/pid\"\nwhile :; do sleep 0.05; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = TrainerConfig {
        data_dir: dir.path().join("data"),
        exe,
        plugin_dirs: Vec::new(),
        max_running: 1,
        cancel_grace: Duration::from_millis(300),
    };
    let trainer = Arc::new(
        Trainer::open(config, Box::new(Shared(Arc::default())), Box::new(|_| {})).unwrap(),
    );
    tokio::spawn(trainer.clone().run());
    let (stubborn, _) = trainer.submit(request(None)).unwrap();
    let (next, _) = trainer.submit(request(None)).unwrap();
    let pid_file = dir.path().join("pid");
    for _ in 0..250 {
        if pid_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        trainer.get(&next.job_id).unwrap().state(),
        JobState::Pending
    );

    let cancelled = trainer.cancel(&stubborn.job_id).unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    // SIGINT is ignored; SIGKILL after 300 ms frees the slot for the next job,
    // which the same stubborn worker then runs.
    let started = std::time::Instant::now();
    for _ in 0..250 {
        if trainer.get(&next.job_id).unwrap().state() == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        trainer.get(&next.job_id).unwrap().state(),
        JobState::Running
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the stubborn worker is gone"
    );
    assert_eq!(
        trainer.get(&stubborn.job_id).unwrap().state(),
        JobState::Cancelled
    );
    trainer.cancel(&next.job_id).unwrap();
}
