//! Handing a trained model to the model registry: its files, its metrics and its
//! provenance (the job, the data and their sha256, the learner and its
//! parameters, the evospike version), as one `publish` request.

use std::future::Future;
use std::io::Read as _;
use std::path::Path;
use std::pin::Pin;

use evospike_learning::model::{Model, MANIFEST_FILE, WEIGHTS_FILE};
use evospike_schemas::proto::{PublishRequest, RegistryUpload, RegistryVersion, TrainJob};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::plan::Plan;

/// A boxed future, for the object-safe [`Registrar`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A ready version of a model in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The version.
    pub version: String,
    /// The training job its provenance names, if any.
    pub job_id: Option<String>,
}

impl Published {
    /// The version `version` with its `metadata` (JSON text, possibly empty).
    pub fn new(version: String, metadata_json: &str) -> Published {
        let job_id = serde_json::from_str::<Value>(metadata_json)
            .ok()
            .and_then(|m| m["provenance"]["job_id"].as_str().map(str::to_owned));
        Published { version, job_id }
    }
}

/// Where trained models go: the model registry (over the bus in the service,
/// see [`crate::bus::BusRegistrar`]). Errors are messages for the job's `error`.
pub trait Registrar: Send + Sync + 'static {
    /// The ready versions model `model_id` has (none when it is unknown).
    fn versions(&self, model_id: &str) -> BoxFuture<'_, Result<Vec<Published>, String>>;

    /// Registers a version with its files and makes it ready.
    fn publish(&self, req: PublishRequest) -> BoxFuture<'_, Result<RegistryVersion, String>>;
}

/// The version after the highest `major.minor.patch` of `versions` (its patch
/// plus one), or `1.0.0` when there is none.
pub fn next_version(versions: &[String]) -> String {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let triple = (parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(triple)
    };
    match versions.iter().filter_map(|v| parse(v)).max() {
        Some((major, minor, patch)) => format!("{major}.{minor}.{}", patch + 1),
        None => "1.0.0".into(),
    }
}

/// sha256 of a file, hex.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// `{path: sha256}` of the job's data files (built-in data sets have no file).
fn data_files(job: &TrainJob) -> Result<Map<String, Value>, String> {
    let req = job.request.clone().unwrap_or_default();
    let mut files = Map::new();
    for path in [
        Some(req.dataset_path),
        req.labels_path,
        req.test_path,
        req.test_labels_path,
    ]
    .into_iter()
    .flatten()
    {
        if path.starts_with("builtin:") {
            continue;
        }
        let sum = sha256_file(Path::new(&path))
            .map_err(|e| format!("cannot hash the data file {path}: {e}"))?;
        files.insert(path, Value::String(sum));
    }
    Ok(files)
}

/// The `publish` request for the model `job` wrote to `out`, as `model_id`
/// version `version`.
///
/// # Errors
/// The model or a data file cannot be read.
pub fn request(
    job: &TrainJob,
    plan: &Plan,
    out: &Path,
    model_id: &str,
    version: &str,
) -> Result<PublishRequest, String> {
    let model = Model::load(out).map_err(|e| format!("cannot read the trained model: {e}"))?;
    let mut files = Vec::new();
    for name in [MANIFEST_FILE, WEIGHTS_FILE] {
        let path = out.join(name);
        let content =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&content));
        files.push(RegistryUpload {
            name: name.to_owned(),
            content,
            sha256,
        });
    }
    let req = job.request.clone().unwrap_or_default();
    let p = &model.manifest.provenance;
    let metadata = json!({
        "metrics": model.manifest.metrics,
        "provenance": {
            "job_id": job.job_id,
            "submission_id": req.submission_id,
            "dataset_path": req.dataset_path,
            "data_files_sha256": data_files(job)?,
            "data_digest": p.data_digest,
            "samples": p.samples,
            "learner": plan.learner,
            "params": plan.params,
            "hyperparameters": p.hyperparameters,
            "seed": p.seed,
            "epochs": p.epochs,
            "attempts": job.attempts,
            "resumed_from_epoch": job.resumed_from_epoch,
            "evospike_version": p.evospike_version,
        },
    });
    Ok(PublishRequest {
        model_id: model_id.to_owned(),
        name: model_id.to_owned(),
        version: version.to_owned(),
        model_type: req.model_type.clone(),
        framework: "evospike".into(),
        created_at: crate::trainer::now(),
        description: format!(
            "{} trained by {} on {} (training job {})",
            req.model_type, plan.learner, req.dataset_path, job.job_id
        ),
        metadata_json: metadata.to_string(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_version_names_its_job() {
        let meta = r#"{"metrics": {}, "provenance": {"job_id": "j1"}}"#;
        assert_eq!(
            Published::new("1.0.0".into(), meta).job_id.as_deref(),
            Some("j1")
        );
        assert_eq!(Published::new("1.0.0".into(), "").job_id, None);
        assert_eq!(Published::new("1.0.0".into(), r#"{"a": 1}"#).job_id, None);
    }

    #[test]
    fn the_next_version_bumps_the_highest_patch() {
        assert_eq!(next_version(&[]), "1.0.0");
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(next_version(&v(&["1.0.0", "1.0.10", "1.0.9"])), "1.0.11");
        assert_eq!(next_version(&v(&["2.1.0", "1.9.9", "beta"])), "2.1.1");
        assert_eq!(next_version(&v(&["beta", "1.0"])), "1.0.0");
    }
}
