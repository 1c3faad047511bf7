//! `evospike train` and `evospike eval`: train a network with a LEARNING plugin
//! and write a model; score a model on labelled data.
//!
//! Training runs [`evospike_learning::fit::fit`] with a progress bar (or one JSON
//! line per epoch), a checkpoint after every epoch, and Ctrl-C stopping after the
//! current batch with a checkpoint that `--resume` continues from. Evaluation runs
//! the model through the NEURON plugins exactly as a pipeline of layer nodes does
//! ([`evospike_learning::infer::InferenceNet`]), on every core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use evospike_learning::data::{self, Data};
use evospike_learning::fit::{self, FitEvent};
use evospike_learning::infer::{Evaluation, InferenceNet};
use evospike_learning::model::{self, Model, Provenance, EPOCHS_FILE};
use evospike_plugin_api::{Learner, Params, PluginError, PluginType};
use evospike_plugin_host::PluginManager;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Returns an input error (exit code 2) with a formatted message.
macro_rules! refuse {
    ($($message:tt)*) => {
        return Err(crate::exit::invalid(format!($($message)*)))
    };
}

/// `evospike train`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Training data: CSV (label in the last column) or an MNIST-format IDX image
    /// file, gzipped or not.
    #[arg(long, value_name = "FILE")]
    pub(crate) data: PathBuf,
    /// IDX labels for --data (default: the sibling `…labels-idx1-ubyte[.gz]`).
    #[arg(long, value_name = "FILE")]
    pub(crate) labels: Option<PathBuf>,
    /// Test data, scored after every epoch.
    #[arg(long, value_name = "FILE")]
    test: Option<PathBuf>,
    /// IDX labels for --test.
    #[arg(long = "test-labels", value_name = "FILE", requires = "test")]
    test_labels: Option<PathBuf>,
    /// Hold out FRACTION of --data, evenly interleaved (0.2: every fifth sample),
    /// as the test set instead of --test.
    #[arg(long, value_name = "FRACTION", conflicts_with = "test")]
    pub(crate) holdout: Option<f64>,
    /// The LEARNING plugin.
    #[arg(long, default_value = "SurrogateGradient")]
    learner: String,
    /// Hidden layer sizes, comma-separated (learner parameter `hidden`).
    #[arg(long, value_delimiter = ',', value_name = "N[,N..]")]
    hidden: Option<Vec<usize>>,
    /// Epochs to train (learner parameter `epochs`).
    #[arg(long)]
    epochs: Option<u32>,
    /// Mini-batch size (learner parameter `batch`).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (learner parameter `lr`).
    #[arg(long)]
    lr: Option<f64>,
    /// Steps each sample is presented for (learner parameter `steps`).
    #[arg(long)]
    steps: Option<u32>,
    /// CPU threads (learner parameter `threads`; default every core).
    #[arg(long)]
    threads: Option<usize>,
    /// The teacher model directory (learner parameter `teacher`, for `--learner Distillation`).
    #[arg(long, value_name = "MODEL")]
    teacher: Option<PathBuf>,
    /// Any other learner parameter as KEY=VALUE, the value in JSON (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Seed of initial weights, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The model directory to write (default with --resume: the resumed one).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the interrupted training whose --out was DIR, from its checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// One JSON line per epoch instead of a progress bar.
    #[arg(long)]
    json: bool,
    /// Train data-parallel: K worker processes compute each batch's gradient in
    /// shards over the bus (SurrogateGradient only).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) workers: Option<u16>,
    /// Seconds a data-parallel step waits for a worker before going on without it
    /// (the worker is started again).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        requires = "workers"
    )]
    pub(crate) step_timeout: f64,
    /// A folder with external plugins (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
}

/// `evospike eval`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// The model directory.
    model: PathBuf,
    /// Labelled data: CSV or IDX, gzipped or not.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// IDX labels for --data.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Score only the held-out FRACTION of --data (as `train --holdout` splits it).
    #[arg(long, value_name = "FRACTION")]
    holdout: Option<f64>,
    /// JSON (with every prediction) instead of a table.
    #[arg(long)]
    json: bool,
    /// A folder with external plugins (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
}

/// The checkpoint folder inside a model directory.
const CHECKPOINT_DIR: &str = "checkpoint";
/// What a checkpoint must be resumed with, beside it.
const RUN_FILE: &str = "run.json";

/// Appends `line` to `path` and syncs it.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

fn manager(dirs: &[PathBuf]) -> anyhow::Result<PluginManager> {
    let manager =
        evospike_plugins::plugin_manager(dirs).context("cannot set up the plugin system")?;
    for err in manager.load_errors() {
        eprintln!("warning: external plugin not loaded: {err}");
    }
    Ok(manager)
}

fn activate(manager: &mut PluginManager, ty: PluginType, name: &str) -> anyhow::Result<()> {
    manager
        .initialize_plugin(ty, name)
        .and_then(|()| manager.activate_plugin(ty, name))
        .with_context(|| format!("{ty} plugin `{name}` (see `evospike plugin list`)"))
}

fn load_data(path: &Path, labels: Option<&Path>) -> anyhow::Result<Data> {
    let data = data::load(path, labels).context("cannot load the data set")?;
    if data.labels().is_none() {
        refuse!(
            "{} has no labels: give --labels (or put the …labels-idx1-ubyte file beside it)",
            path.display()
        );
    }
    if data.is_empty() {
        refuse!("{} holds no samples", path.display());
    }
    Ok(data)
}

/// The learner parameters from the flags, each flag once.
fn learner_params(args: &TrainArgs) -> anyhow::Result<Params> {
    let mut params = Params::new();
    let mut set = |key: &str, value: Value| -> anyhow::Result<()> {
        if params.insert(key.to_owned(), value).is_some() {
            refuse!("learner parameter `{key}` is given twice");
        }
        Ok(())
    };
    if let Some(h) = &args.hidden {
        set("hidden", json!(h))?;
    }
    if let Some(v) = args.epochs {
        set("epochs", json!(v))?;
    }
    if let Some(v) = args.batch {
        set("batch", json!(v))?;
    }
    if let Some(v) = args.lr {
        set("lr", json!(v))?;
    }
    if let Some(v) = args.steps {
        set("steps", json!(v))?;
    }
    if let Some(v) = args.threads {
        set("threads", json!(v))?;
    }
    if let Some(dir) = &args.teacher {
        if !dir.join(model::MANIFEST_FILE).is_file() {
            refuse!(
                "--teacher {}: not a model directory (no {})",
                dir.display(),
                model::MANIFEST_FILE
            );
        }
        set("teacher", json!(dir))?;
    }
    for (key, value) in evospike_launch::parse_arg_pairs(&args.params)? {
        let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
        set(&key, value)?;
    }
    Ok(params)
}

/// Training and test sets: --test, or a --holdout tail of --data, or none.
fn split(args: &TrainArgs) -> anyhow::Result<(Data, Option<Data>)> {
    let all = load_data(&args.data, args.labels.as_deref())?;
    if let Some(test) = &args.test {
        let test = load_data(test, args.test_labels.as_deref())?;
        if test.num_inputs() != all.num_inputs() {
            refuse!(
                "--test samples have {} values, --data samples {}",
                test.num_inputs(),
                all.num_inputs()
            );
        }
        return Ok((all, Some(test)));
    }
    match args.holdout {
        None => Ok((all, None)),
        Some(f) => {
            let (train, test) = all
                .holdout(f)
                .map_err(|e| crate::exit::invalid(format!("--holdout: {e}")))?;
            Ok((train, Some(test)))
        }
    }
}

fn cancel_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopping now; the last checkpoint stays");
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to stop at once)…");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(cancel)
}

pub(crate) fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let (train, test) = split(&args)?;
    let out = args
        .out
        .clone()
        .or_else(|| args.resume.clone())
        .context("--out is required")?;
    let run = json!({
        "data_digest": train.digest(),
        "test_digest": test.as_ref().map(Data::digest),
    });
    let mut manager = manager(&args.plugin_dirs)?;
    let (spec, checkpoint) = match &args.resume {
        Some(dir) => {
            if args.hidden.is_some()
                || args.epochs.is_some()
                || args.batch.is_some()
                || args.lr.is_some()
                || args.steps.is_some()
                || args.teacher.is_some()
                || !args.params.is_empty()
            {
                refuse!("--resume continues with the checkpoint's parameters; drop the learner parameter flags");
            }
            let ckpt_dir = dir.join(CHECKPOINT_DIR);
            let checkpoint = model::load_checkpoint(&ckpt_dir)
                .with_context(|| format!("cannot resume from {}", dir.display()))?;
            let recorded: Value = std::fs::read(ckpt_dir.join(RUN_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            if recorded != run {
                refuse!(
                    "{} was trained on other data (its {RUN_FILE} records other digests); resume with the same --data, --test and --holdout",
                    dir.display()
                );
            }
            if checkpoint.learner != args.learner {
                refuse!(
                    "the checkpoint is of learner {}, not {}",
                    checkpoint.learner,
                    args.learner
                );
            }
            (checkpoint.spec.clone(), Some(checkpoint))
        }
        None => {
            let spec = fit::learner_spec(&train, test.as_ref(), learner_params(&args)?, args.seed);
            (spec, None)
        }
    };
    let classes = spec.classes.len();
    activate(&mut manager, PluginType::Learning, &args.learner)?;
    let plugin = manager
        .registry()
        .learning(&args.learner)
        .with_context(|| format!("`{}` is not a LEARNING plugin", args.learner))?;
    // Declared before the learner: its bus outlives the coordinator inside it.
    let mut _runtime = None;
    let mut dp_stats = None;
    let mut learner: Box<dyn Learner> = match args.workers {
        None => plugin
            .create_learner(&spec)
            .context("cannot build the learner")?,
        Some(k) => {
            if args.learner != evospike_learning::surrogate::NAME {
                refuse!(
                    "--workers: only {} trains data-parallel, not {}",
                    evospike_learning::surrogate::NAME,
                    args.learner
                );
            }
            if !(args.step_timeout > 0.0 && args.step_timeout.is_finite()) {
                refuse!("--step-timeout must be > 0, got {}", args.step_timeout);
            }
            let p = crate::parallel::start(&args, usize::from(k), &spec, &train)?;
            _runtime = Some(p.runtime);
            dp_stats = Some((p.workers, p.stats));
            Box::new(p.learner)
        }
    };
    if let Some(c) = &checkpoint {
        learner
            .restore(c)
            .context("cannot restore the checkpoint")?;
    }
    let epochs = learner
        .hyperparameters()
        .get("epochs")
        .and_then(Value::as_u64)
        .and_then(|e| u32::try_from(e).ok())
        .context("the learner reports no `epochs`")?;
    let ckpt_dir = out.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&ckpt_dir)
        .with_context(|| format!("cannot create {}", ckpt_dir.display()))?;
    model::write_atomic(&ckpt_dir.join(RUN_FILE), run.to_string().as_bytes())?;
    if args.resume.is_none() {
        // A new run's epochs only.
        match std::fs::remove_file(ckpt_dir.join(EPOCHS_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(format!("cannot reset {EPOCHS_FILE}"));
            }
            _ => {}
        }
    }

    let cancel = cancel_on_ctrl_c()?;
    let train_view = train.view(classes).map_err(crate::exit::invalid)?;
    let test_view = match &test {
        Some(t) => Some(t.view(classes).map_err(crate::exit::invalid)?),
        None => None,
    };
    let (start_epoch, _) = learner.position();
    if !args.json {
        eprintln!(
            "training {} on {} samples ({} inputs, {} classes){}, {} epochs from epoch {}",
            args.learner,
            train.len(),
            train.num_inputs(),
            classes,
            test.as_ref()
                .map(|t| format!(", testing on {}", t.len()))
                .unwrap_or_default(),
            epochs,
            start_epoch + 1
        );
    }
    let bar = (!args.json).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let started = Instant::now();
    let outcome = fit::fit(
        learner.as_mut(),
        &train_view,
        test_view.as_ref(),
        epochs,
        Some(&ckpt_dir),
        &cancel,
        |event| match event {
            FitEvent::Batch(p) => {
                if let Some(bar) = &bar {
                    bar.set_prefix(format!("{}/{epochs}", p.epoch + 1));
                    bar.set_length(u64::from(p.batches));
                    bar.set_position(u64::from(p.batch) + 1);
                    bar.set_message(format!(
                        "loss {:.4}{}  {:.0} samples/s",
                        p.loss,
                        percent("  train", p.accuracy),
                        p.samples_per_s
                    ));
                }
            }
            FitEvent::Epoch(s) => {
                // The training service counts samples from `train_samples`.
                let mut record = json!(s);
                record["train_samples"] = json!(train.len());
                if let Err(e) = append_line(&ckpt_dir.join(EPOCHS_FILE), &record.to_string()) {
                    eprintln!(
                        "warning: cannot record epoch {} in {EPOCHS_FILE}: {e}",
                        s.epoch
                    );
                }
                match &bar {
                    Some(bar) => {
                        let line = format!(
                            "epoch {}/{}  loss {:.4}{}{}  {:.0} samples/s  {:.1} s",
                            s.epoch,
                            s.epochs,
                            s.loss,
                            percent("  train", s.train_accuracy),
                            s.test_accuracy
                                .map(|a| format!("  test {:.2}%", 100.0 * a))
                                .unwrap_or_default(),
                            s.samples_per_s,
                            s.seconds
                        );
                        // Without a terminal the bar is hidden and so would its lines be.
                        if bar.is_hidden() {
                            eprintln!("{line}");
                        } else {
                            bar.println(line);
                        }
                    }
                    None => println!("{record}"),
                }
            }
        },
    )?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if outcome.cancelled {
        let (epoch, batch) = learner.position();
        eprintln!(
            "stopped at epoch {} batch {batch}; checkpoint in {}; continue with --resume {}",
            epoch + 1,
            ckpt_dir.display(),
            out.display()
        );
        return Ok(ExitCode::from(130));
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let provenance = Provenance {
        data_source: args.data.display().to_string(),
        data_digest: train.digest().to_owned(),
        samples: train.len(),
        learner: args.learner.clone(),
        seed: spec.seed,
        ..Provenance::default()
    };
    let mut metrics = vec![("train_seconds".to_owned(), train_seconds)];
    if let Some((workers, stats)) = &dp_stats {
        let stats = stats.lock().map(|s| *s).unwrap_or_default();
        if !args.json {
            eprintln!(
                "data-parallel: {workers} workers, {} steps, per step {:.1} ms computing, {:.1} ms on the bus, {:.1} ms averaging; {} worker exits, {} late gradients, {} respawns",
                stats.steps,
                1e3 * stats.compute_s / stats.steps.max(1) as f64,
                1e3 * stats.bus_s() / stats.steps.max(1) as f64,
                1e3 * stats.reduce_s / stats.steps.max(1) as f64,
                stats.exited,
                stats.late,
                stats.respawned
            );
        }
        metrics.extend(stats.metrics(*workers));
    }
    if let Some(last) = outcome.history.last() {
        metrics.push(("train_loss".into(), f64::from(last.loss)));
        metrics.push(("train_accuracy".into(), f64::from(last.train_accuracy)));
        metrics.push(("train_samples_per_s".into(), f64::from(last.samples_per_s)));
    }
    let mut model = fit::model_of(learner.as_ref(), provenance, metrics);
    if let Some(test) = &test {
        let e = evaluate(&mut manager, &model, test)?;
        model
            .manifest
            .metrics
            .insert("test_accuracy".into(), e.accuracy);
        model
            .manifest
            .metrics
            .insert("test_samples".into(), e.samples as f64);
    }
    model
        .save(&out)
        .with_context(|| format!("cannot write the model to {}", out.display()))?;
    let test_accuracy = model.manifest.metrics.get("test_accuracy").copied();
    if args.json {
        println!(
            "{}",
            json!({ "model": out, "test_accuracy": test_accuracy, "train_seconds": train_seconds })
        );
    } else {
        eprintln!(
            "model written to {}{} in {:.1} s",
            out.display(),
            test_accuracy
                .map(|a| format!(" (test accuracy {:.2}%)", 100.0 * a))
                .unwrap_or_default(),
            train_seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `"{label} 12.34%"`, or nothing for NaN (a learner without that figure).
fn percent(label: &str, fraction: f32) -> String {
    if fraction.is_finite() {
        format!("{label} {:.2}%", 100.0 * fraction)
    } else {
        String::new()
    }
}

/// Runs `model` over `data` through the NEURON plugins on every core.
fn evaluate(manager: &mut PluginManager, model: &Model, data: &Data) -> anyhow::Result<Evaluation> {
    let predicted = predict(manager, model, data)?;
    let classes = model.manifest.network.classes.len();
    Ok(Evaluation::new(
        &predicted,
        data.labels().unwrap_or_default(),
        classes,
    ))
}

fn predict(manager: &mut PluginManager, model: &Model, data: &Data) -> anyhow::Result<Vec<u32>> {
    let net = &model.manifest.network;
    if data.num_inputs() != net.input_size {
        refuse!(
            "the samples have {} values but the model takes {} ({:?})",
            data.num_inputs(),
            net.input_size,
            net.input_shape
        );
    }
    for layer in &net.layers {
        activate(manager, PluginType::Neuron, &layer.neuron)
            .with_context(|| format!("model layer `{}`", layer.name))?;
    }
    let manager = &*manager;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = data.len().div_ceil(threads).max(1);
    let indices: Vec<usize> = (0..data.len()).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = indices
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> anyhow::Result<Vec<u32>> {
                    let backend = evospike_compute::backend_from_env()?;
                    let mut net = InferenceNet::new(model, backend, |def, spec| {
                        manager
                            .neuron(&def.neuron)
                            .map_err(|e| PluginError::failed(&def.neuron, e.to_string()))?
                            .create_layer(spec)
                    })?;
                    part.iter()
                        .map(|&i| net.classify(data.sample(i)).map_err(anyhow::Error::from))
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(data.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| anyhow::anyhow!("an evaluation thread panicked"))??,
            );
        }
        Ok(all)
    })
}

pub(crate) fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let model = Model::load(&args.model).context("cannot load the model")?;
    let mut data = load_data(&args.data, args.labels.as_deref())?;
    if let Some(f) = args.holdout {
        data = data
            .holdout(f)
            .map_err(|e| crate::exit::invalid(format!("--holdout: {e}")))?
            .1;
    }
    let mut manager = manager(&args.plugin_dirs)?;
    let started = Instant::now();
    let predicted = predict(&mut manager, &model, &data)?;
    let seconds = started.elapsed().as_secs_f64();
    let classes = &model.manifest.network.classes;
    let e = Evaluation::new(&predicted, data.labels().unwrap_or_default(), classes.len());
    let mut out = crate::out::Out::new();
    if args.json {
        out.line(json!({
            "model": args.model, "samples": e.samples, "accuracy": e.accuracy,
            "confusion": e.confusion, "predictions": predicted,
            "samples_per_s": e.samples as f64 / seconds.max(1e-9),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out.line(format!(
        "accuracy {:.2}% ({} of {} samples, {:.0} samples/s)",
        100.0 * e.accuracy,
        (e.accuracy * e.samples as f64).round(),
        e.samples,
        e.samples as f64 / seconds.max(1e-9)
    ))?;
    out.line("confusion (rows: true class, columns: predicted)")?;
    let width = e
        .confusion
        .iter()
        .flatten()
        .max()
        .map_or(1, |m| m.to_string().len())
        .max(classes.iter().map(String::len).max().unwrap_or(1));
    let header: String = classes.iter().map(|c| format!(" {c:>width$}")).collect();
    out.line(format!("{:>width$} {header}", ""))?;
    for (c, row) in classes.iter().zip(&e.confusion) {
        let counts: String = row.iter().map(|n| format!(" {n:>width$}")).collect();
        out.line(format!("{c:>width$} {counts}"))?;
    }
    Ok(ExitCode::SUCCESS)
}
