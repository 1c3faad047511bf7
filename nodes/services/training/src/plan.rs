//! Checking a [`TrainRequest`] when it is submitted, and turning it into the
//! command line of its worker (`evospike train --json …`).
//!
//! Everything that can be known without loading the data is checked here, so a
//! bad request is a 400 and never becomes a job: the model type, that the data
//! files exist, the learner (looked up by name among the LEARNING plugins this
//! process has — built-in and from the node's plugin folders — so every learner
//! the `evospike` binary has is trainable here), and its parameters (the learner
//! is built once on a placeholder spec and must not refuse any of them). What
//! depends on the data itself (its format, its size against the network) is the
//! worker's to find; a job failing on it says why.

use std::path::{Path, PathBuf};

use evospike_plugin_api::{LearnerSpec, Params, PluginError, PluginType};
use evospike_plugin_host::PluginManager;
use evospike_schemas::proto::TrainRequest;
use serde_json::{json, Value};

/// What this service trains.
pub const MODEL_TYPES: [&str; 1] = ["classifier"];
/// The learner when the request names none.
pub const DEFAULT_LEARNER: &str = "SurrogateGradient";
/// The fraction of the data held out for testing when no `test_path` is given.
pub const DEFAULT_HOLDOUT: f64 = 0.2;
/// The prefix of data sets built into evospike (`builtin:digits`).
const BUILTIN_PREFIX: &str = "builtin:";

/// A checked request, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The LEARNING plugin.
    pub learner: String,
    /// Its parameters (the request's `config`, `learning_rate` and `params`).
    pub params: Params,
    /// Seed of initial weights and shuffling.
    pub seed: u64,
    /// Held-out fraction when there is no test set.
    pub holdout: Option<f64>,
    /// Data-parallel workers (`None`: one process).
    pub workers: Option<u32>,
}

/// The most data-parallel workers a job may ask for.
pub const MAX_WORKERS: u32 = 64;

/// Checks `req` against the learners `plugins` has.
///
/// # Errors
/// A message for the client (a 400) naming the field at fault and what is accepted.
pub fn check(req: &TrainRequest, plugins: &PluginManager) -> Result<Plan, String> {
    if !MODEL_TYPES.contains(&req.model_type.as_str()) {
        return Err(format!(
            "model_type `{}` is not trained here; this service trains: {}",
            req.model_type,
            MODEL_TYPES.join(", ")
        ));
    }
    check_data("dataset_path", &req.dataset_path)?;
    for (field, path) in [
        ("labels_path", &req.labels_path),
        ("test_path", &req.test_path),
        ("test_labels_path", &req.test_labels_path),
    ] {
        if let Some(path) = path {
            check_data(field, path)?;
        }
    }
    if req.test_labels_path.is_some() && req.test_path.is_none() {
        return Err("test_labels_path needs test_path".into());
    }
    let config = req.config.clone().unwrap_or_default();
    let holdout = match (config.holdout, &req.test_path) {
        (Some(_), Some(_)) => {
            return Err("config.holdout and test_path exclude each other: give one".into())
        }
        (Some(f), None) if !(f > 0.0 && f < 1.0) => {
            return Err(format!("config.holdout must be in (0, 1), got {f}"))
        }
        (Some(f), None) => Some(f),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_HOLDOUT),
    };
    for (field, value) in [
        ("config.epochs", config.epochs),
        ("config.batch_size", config.batch_size),
        ("config.steps", config.steps),
        ("config.threads", config.threads),
        ("config.workers", config.workers),
    ] {
        if value == Some(0) {
            return Err(format!("{field} must be at least 1"));
        }
    }
    if let Some(lr) = req.learning_rate {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("learning_rate must be > 0, got {lr}"));
        }
    }
    for (field, value) in [
        ("submission_id", &req.submission_id),
        ("model_id", &req.model_id),
        ("version", &req.version),
    ] {
        if let Some(value) = value {
            evospike_registry::registry::check_name(field, value).map_err(|e| e.to_string())?;
        }
    }
    let learner = req.learner.as_deref().unwrap_or(DEFAULT_LEARNER).to_owned();
    if let Some(k) = config.workers {
        if k > MAX_WORKERS {
            return Err(format!(
                "config.workers must be at most {MAX_WORKERS}, got {k}"
            ));
        }
        if learner != DEFAULT_LEARNER {
            return Err(format!(
                "config.workers: only {DEFAULT_LEARNER} trains data-parallel, not learner `{learner}`"
            ));
        }
    }
    let params = learner_params(req)?;
    check_learner(plugins, &learner, &params)?;
    Ok(Plan {
        learner,
        params,
        seed: config.seed.unwrap_or(0),
        holdout,
        workers: config.workers,
    })
}

/// A data file exists, or names a built-in data set.
fn check_data(field: &str, path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!(
            "{field} is empty: name a data file or `builtin:digits`"
        ));
    }
    if path.starts_with(BUILTIN_PREFIX) {
        if path != evospike_learning::data::BUILTIN_DIGITS {
            return Err(format!(
                "{field} `{path}`: no such built-in data set (there is `{}`)",
                evospike_learning::data::BUILTIN_DIGITS
            ));
        }
        return Ok(());
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{field} `{path}` is not a file")),
        Err(e) => Err(format!(
            "{field} `{path}` cannot be read on the training service's machine: {e}"
        )),
    }
}

/// The learner parameters the request sets: `config` fields and `learning_rate`
/// under the learner's names (`epochs`, `batch`, `steps`, `hidden`, `threads`,
/// `lr`), then `params` (each value JSON, or else a string), each key once.
pub fn learner_params(req: &TrainRequest) -> Result<Params, String> {
    let config = req.config.clone().unwrap_or_default();
    let mut params = Params::new();
    let mut from_fields = vec![
        ("epochs", config.epochs.map(|v| json!(v))),
        ("batch", config.batch_size.map(|v| json!(v))),
        ("steps", config.steps.map(|v| json!(v))),
        ("threads", config.threads.map(|v| json!(v))),
        ("lr", req.learning_rate.map(|v| json!(v))),
        ("teacher", req.teacher.clone().map(Value::String)),
    ];
    if !config.hidden.is_empty() {
        from_fields.push(("hidden", Some(json!(config.hidden))));
    }
    for (key, value) in from_fields {
        if let Some(value) = value {
            params.insert(key.to_owned(), value);
        }
    }
    for (key, text) in &req.params {
        if params.contains_key(key) {
            return Err(format!(
                "params.{key} is also set by the request's own field for it; give it once"
            ));
        }
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
        params.insert(key.clone(), value);
    }
    Ok(params)
}

/// The learner exists and takes `params`.
fn check_learner(plugins: &PluginManager, learner: &str, params: &Params) -> Result<(), String> {
    let Some(plugin) = plugins.registry().learning(learner) else {
        let known: Vec<String> = plugins
            .registry()
            .of_type(PluginType::Learning)
            .into_iter()
            .map(|m| m.name.clone())
            .collect();
        return Err(format!(
            "learner `{learner}` is not a LEARNING plugin here; there are: {}",
            known.join(", ")
        ));
    };
    // A placeholder network (8×8 inputs, 10 classes) only to have the learner
    // read its parameters; it is dropped at once.
    let spec = LearnerSpec {
        input_size: 64,
        input_shape: vec![8, 8],
        classes: (0..10).map(|c| c.to_string()).collect(),
        params: params.clone(),
        seed: 0,
    };
    match plugin.create_learner(&spec) {
        Ok(_) => Ok(()),
        Err(e @ (PluginError::InvalidParameter { .. } | PluginError::InvalidConfig { .. })) => {
            Err(e.to_string())
        }
        // Anything else (a teacher that does not fit the placeholder, …) depends
        // on the real data: the worker finds out.
        Err(_) => Ok(()),
    }
}

/// The worker's command-line arguments (after the `evospike` executable): train
/// `req` as `plan` says into `out`, continuing its checkpoint when `resume`.
pub fn worker_args(
    req: &TrainRequest,
    plan: &Plan,
    out: &Path,
    resume: bool,
    plugin_dirs: &[PathBuf],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "train".into(),
        "--json".into(),
        "--data".into(),
        req.dataset_path.clone(),
    ];
    let mut push = |flag: &str, value: &str| {
        args.push(flag.to_owned());
        args.push(value.to_owned());
    };
    if let Some(p) = &req.labels_path {
        push("--labels", p);
    }
    if let Some(p) = &req.test_path {
        push("--test", p);
    }
    if let Some(p) = &req.test_labels_path {
        push("--test-labels", p);
    }
    if let Some(f) = plan.holdout {
        push("--holdout", &f.to_string());
    }
    push("--learner", &plan.learner);
    push("--seed", &plan.seed.to_string());
    if let Some(k) = plan.workers {
        push("--workers", &k.to_string());
    }
    for dir in plugin_dirs {
        push("--plugin-dir", &dir.display().to_string());
    }
    if resume {
        // The checkpoint holds the learner's parameters.
        push("--resume", &out.display().to_string());
    } else {
        push("--out", &out.display().to_string());
        for (key, value) in &plan.params {
            push("--param", &format!("{key}={value}"));
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::proto::TrainConfig;

    fn plugins() -> PluginManager {
        evospike_plugins::plugin_manager::<&Path>(&[]).unwrap()
    }

    fn digits() -> TrainRequest {
        TrainRequest {
            model_type: "classifier".into(),
            dataset_path: "builtin:digits".into(),
            config: Some(TrainConfig {
                epochs: Some(2),
                batch_size: Some(16),
                hidden: vec![32],
                ..Default::default()
            }),
            learning_rate: Some(0.01),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_request_becomes_learner_params_and_worker_flags() {
        let plan = check(&digits(), &plugins()).unwrap();
        assert_eq!(plan.learner, DEFAULT_LEARNER);
        assert_eq!(plan.holdout, Some(DEFAULT_HOLDOUT));
        assert_eq!(
            Value::Object(plan.params.clone()),
            json!({"epochs": 2, "batch": 16, "hidden": [32], "lr": 0.01})
        );
        let args = worker_args(&digits(), &plan, Path::new("/j/model"), false, &[]);
        let text = args.join(" ");
        assert!(
            text.starts_with("train --json --data builtin:digits"),
            "{text}"
        );
        assert!(text.contains("--out /j/model"), "{text}");
        assert!(text.contains("--param hidden=[32]"), "{text}");
        let resumed = worker_args(&digits(), &plan, Path::new("/j/model"), true, &[]).join(" ");
        assert!(resumed.contains("--resume /j/model"), "{resumed}");
        assert!(!resumed.contains("--param"), "{resumed}");
        assert!(!text.contains("--workers"), "{text}");
        let mut parallel = digits();
        parallel.config.as_mut().unwrap().workers = Some(2);
        let plan = check(&parallel, &plugins()).unwrap();
        for resume in [false, true] {
            let text = worker_args(&parallel, &plan, Path::new("/j/model"), resume, &[]).join(" ");
            assert!(text.contains("--workers 2"), "{text}");
        }
    }

    #[test]
    fn the_designs_example_and_bad_requests_are_refused_saying_why() {
        let p = plugins();
        let refused = |edit: &dyn Fn(&mut TrainRequest)| {
            let mut req = digits();
            edit(&mut req);
            check(&req, &p).unwrap_err()
        };
        let e = refused(&|r| r.model_type = "spiking_lm".into());
        assert!(e.contains("spiking_lm") && e.contains("classifier"), "{e}");
        let e = refused(&|r| r.dataset_path = "/data/training_set".into());
        assert!(e.contains("/data/training_set"), "{e}");
        let e = refused(&|r| r.dataset_path = "builtin:cifar".into());
        assert!(e.contains("builtin:digits"), "{e}");
        let e = refused(&|r| r.learner = Some("Backprop".into()));
        assert!(
            e.contains("Backprop") && e.contains("SurrogateGradient"),
            "{e}"
        );
        let e = refused(&|r| {
            r.params.insert("momentum".into(), "0.9".into());
        });
        assert!(e.contains("momentum"), "{e}");
        let e = refused(&|r| r.config.as_mut().unwrap().epochs = Some(0));
        assert!(e.contains("config.epochs"), "{e}");
        let e = refused(&|r| r.config.as_mut().unwrap().workers = Some(0));
        assert!(e.contains("config.workers"), "{e}");
        let e = refused(&|r| r.config.as_mut().unwrap().workers = Some(MAX_WORKERS + 1));
        assert!(e.contains("config.workers") && e.contains("at most"), "{e}");
        let e = refused(&|r| {
            r.config.as_mut().unwrap().workers = Some(2);
            r.learner = Some("STDPUnsupervised".into());
        });
        assert!(
            e.contains("config.workers") && e.contains("STDPUnsupervised"),
            "{e}"
        );
        let e = refused(&|r| {
            r.params.insert("epochs".into(), "3".into());
        });
        assert!(e.contains("params.epochs"), "{e}");
        let e = refused(&|r| r.learning_rate = Some(-1.0));
        assert!(e.contains("learning_rate"), "{e}");
        let e = refused(&|r| r.submission_id = Some("a/b".into()));
        assert!(e.contains("submission_id"), "{e}");
        let e = refused(&|r| r.config.as_mut().unwrap().holdout = Some(1.5));
        assert!(e.contains("holdout"), "{e}");
    }
}
