//! The inference operations, shared by the HTTP API and the bus queryables:
//! [`Inference::infer`], [`Inference::batch_infer`], [`Inference::load_model`]
//! and [`Inference::list_models`].
//!
//! A request names a model (and optionally a version or alias). The model comes
//! from the [`Cache`] — or, on a miss, from the registry over the bus: its
//! `model.json` and `weights.safetensors` are fetched with `fetch_file`, each
//! checked against the sha256 the registry gives, then checked as a model
//! ([`Model::from_bytes`]: the manifest's own digest of the weights, every
//! tensor's shape) and built into one [`BatchNet`] per worker. The samples then
//! join the model's [`Batcher`] queue.
//!
//! A request (or load) with `distributed: true` asks for the model served by
//! layer nodes instead ([`crate::distributed`]): a cache entry of its own, whose
//! samples travel over the bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use evospike_bus::Bus;
use evospike_compute::Backend;
use evospike_http::{ApiError, Metrics};
use evospike_learning::infer::argmax;
use evospike_learning::model::{Model, MANIFEST_FILE, WEIGHTS_FILE};
use evospike_plugin_api::NetworkSpec;
use evospike_schemas::proto::{
    BatchInferReply, BatchInferRequest, ClassScore, FetchFileReply, FetchFileRequest, InferConfig,
    InferInputs, InferReply, InferRequest, ListLoadedModelsReply, LoadModelRequest, LoadedModel,
    Prediction,
};
use sha2::Digest as _;

use crate::batch::{Answer, BatchSettings, Batcher};
use crate::cache::{Cache, Lease};
use crate::distributed::{DistributedModel, PipelineSettings};
use crate::input::{self, MAX_STEPS};
use crate::net::BatchNet;
use crate::neurons::Neurons;

/// A model in the cache, ready to answer.
#[derive(Debug)]
pub struct Served {
    /// Its id.
    pub model_id: String,
    /// Its exact version.
    pub version: String,
    /// sha256 of its weights.
    pub sha256: String,
    /// Its network.
    pub network: NetworkSpec,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// How it computes.
    pub engine: Engine,
    requests: AtomicU64,
}

/// How a served model computes.
#[derive(Debug)]
pub enum Engine {
    /// In this process: its queue and workers.
    Local(Batcher),
    /// As layer nodes on the bus.
    Distributed(Box<DistributedModel>),
}

impl Served {
    /// Samples waiting for their answers.
    pub fn queued(&self) -> usize {
        match &self.engine {
            Engine::Local(batcher) => batcher.queued(),
            Engine::Distributed(model) => model.waiting(),
        }
    }
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Models cached (`MODEL_CACHE_SIZE`).
    pub cache_size: usize,
    /// Batching, per model.
    pub batch: BatchSettings,
    /// Time limit of a call to the registry.
    pub registry_timeout: Duration,
    /// How models are served distributed (none: this service cannot).
    pub distributed: Option<PipelineSettings>,
}

/// The inference service: models, cache and batching (see the module docs).
#[derive(Debug)]
pub struct Inference {
    bus: Bus,
    cache: Arc<Cache<Arc<Served>>>,
    backend: Arc<dyn Backend>,
    neurons: Arc<Neurons>,
    settings: Settings,
    metrics: Option<Arc<Metrics>>,
    /// The distributed models loaded so far, to stop their nodes at shutdown.
    distributed: Mutex<Vec<Weak<Served>>>,
}

/// What a request asks for: a model, which version, and how it is served.
struct Wanted<'a> {
    model_id: &'a str,
    version: Option<&'a str>,
    alias: Option<&'a str>,
    distributed: bool,
}

impl<'a> Wanted<'a> {
    fn of(model_id: &'a str, config: Option<&'a InferConfig>) -> Wanted<'a> {
        Wanted {
            model_id,
            version: config.and_then(|c| c.version.as_deref()),
            alias: config.and_then(|c| c.alias.as_deref()),
            distributed: config.and_then(|c| c.distributed).unwrap_or(false),
        }
    }
}

/// Which version a request asks for.
fn selector(
    model_id: &str,
    version: Option<&str>,
    alias: Option<&str>,
) -> Result<(String, FetchFileRequest), ApiError> {
    if model_id.is_empty() {
        return Err(ApiError::bad_request("`model_id` is empty; name a model"));
    }
    let version = version.filter(|v| !v.is_empty());
    let alias = alias.filter(|a| !a.is_empty());
    let key = match (version, alias) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "`version` and `alias` are both set; give at most one",
            ))
        }
        (Some(v), None) => format!("{model_id}\u{0}version\u{0}{v}"),
        (None, Some(a)) => format!("{model_id}\u{0}alias\u{0}{a}"),
        (None, None) => format!("{model_id}\u{0}latest"),
    };
    Ok((
        key,
        FetchFileRequest {
            model_id: model_id.to_owned(),
            filename: String::new(),
            version: version.unwrap_or_default().to_owned(),
            alias: alias.unwrap_or_default().to_owned(),
        },
    ))
}

fn unix_now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The answer's options, checked against the model.
struct Options {
    steps: Option<u32>,
    top_k: usize,
    return_scores: bool,
}

fn options(config: Option<&InferConfig>, net: &NetworkSpec) -> Result<Options, ApiError> {
    let default = InferConfig::default();
    let config = config.unwrap_or(&default);
    let classes = net.classes.len();
    let top_k = config.top_k.unwrap_or(1) as usize;
    if top_k == 0 || top_k > classes {
        return Err(ApiError::bad_request(format!(
            "`config.top_k` is {top_k}; the model has {classes} classes, so it must be between 1 and {classes}"
        )));
    }
    if let Some(steps) = config.steps {
        if steps == 0 || steps > MAX_STEPS {
            return Err(ApiError::bad_request(format!(
                "`config.steps` is {steps}; it must be between 1 and {MAX_STEPS}"
            )));
        }
    }
    Ok(Options {
        steps: config.steps,
        top_k,
        return_scores: config.return_scores.unwrap_or(true),
    })
}

fn prediction(answer: Answer, options: &Options) -> Prediction {
    let best = argmax(&answer.scores) as u32;
    let mut order: Vec<usize> = (0..answer.scores.len()).collect();
    // Stable: equal scores keep class order, so the first of the best comes first.
    order.sort_by(|&a, &b| answer.scores[b].total_cmp(&answer.scores[a]));
    Prediction {
        prediction: best,
        top: order
            .iter()
            .take(options.top_k)
            .map(|&c| ClassScore {
                class: c as u32,
                score: answer.scores[c],
            })
            .collect(),
        scores: if options.return_scores {
            answer.scores
        } else {
            Vec::new()
        },
    }
}

impl Inference {
    /// A service on `bus` (calls to the registry go there), computing on
    /// `backend`, building layers with `neurons`.
    pub fn new(
        bus: Bus,
        backend: Arc<dyn Backend>,
        neurons: Arc<Neurons>,
        settings: Settings,
        metrics: Option<Arc<Metrics>>,
    ) -> Inference {
        Inference {
            bus,
            cache: Cache::new(settings.cache_size),
            backend,
            neurons,
            settings,
            metrics,
            distributed: Mutex::new(Vec::new()),
        }
    }

    /// Stops the nodes of every distributed model (the service is shutting down).
    pub async fn shutdown(&self) {
        let served: Vec<Arc<Served>> = {
            let mut list = self.distributed.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *list)
                .iter()
                .filter_map(Weak::upgrade)
                .collect()
        };
        for served in served {
            if let Engine::Distributed(model) = &served.engine {
                model.stop().await;
            }
        }
    }

    /// The model cache.
    pub fn cache(&self) -> &Arc<Cache<Arc<Served>>> {
        &self.cache
    }

    /// `POST /infer`: one sample.
    ///
    /// # Errors
    /// 400 for bad input, 404 for an unknown model, 503 when the queue is full
    /// or the registry does not answer, 502 when the registry's model is broken.
    pub async fn infer(&self, req: InferRequest, trace: &str) -> Result<InferReply, ApiError> {
        let started = Instant::now();
        let config = req.config.as_ref();
        let lease = self
            .model(Wanted::of(&req.model_id, config), false, trace)
            .await?;
        let inputs = req.inputs.unwrap_or_default();
        let (served, mut answers, options) = self
            .run(&lease, std::slice::from_ref(&inputs), config, false)
            .await?;
        let answer = answers
            .pop()
            .ok_or_else(|| ApiError::bad_request("no answer"))?;
        let batch_size = answer.batch_size;
        Ok(InferReply {
            model_id: served.model_id.clone(),
            version: served.version.clone(),
            output: Some(prediction(answer, &options)),
            batch_size,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// `POST /batch_infer`: many samples of one model, answered in order.
    ///
    /// # Errors
    /// As [`Inference::infer`]; also 400 for no inputs or more than the queue holds.
    pub async fn batch_infer(
        &self,
        req: BatchInferRequest,
        trace: &str,
    ) -> Result<BatchInferReply, ApiError> {
        let started = Instant::now();
        if req.inputs.is_empty() {
            return Err(ApiError::bad_request(
                "`inputs` is empty; give at least one sample",
            ));
        }
        let max = self.settings.batch.max_queue;
        if req.inputs.len() > max {
            return Err(ApiError::bad_request(format!(
                "`inputs` has {} samples; at most {max} fit in the queue (send several requests)",
                req.inputs.len()
            )));
        }
        let config = req.config.as_ref();
        let lease = self
            .model(Wanted::of(&req.model_id, config), false, trace)
            .await?;
        let (served, answers, options) = self.run(&lease, &req.inputs, config, true).await?;
        Ok(BatchInferReply {
            model_id: served.model_id.clone(),
            version: served.version.clone(),
            outputs: answers
                .into_iter()
                .map(|a| prediction(a, &options))
                .collect(),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// `POST /load_model/{model_id}`: fetches the model (again: an alias or
    /// "latest" is resolved anew) and keeps it in the cache.
    ///
    /// # Errors
    /// As [`Inference::infer`].
    pub async fn load_model(
        &self,
        req: LoadModelRequest,
        trace: &str,
    ) -> Result<LoadedModel, ApiError> {
        let wanted = Wanted {
            model_id: &req.model_id,
            version: req.version.as_deref(),
            alias: req.alias.as_deref(),
            distributed: req.distributed.unwrap_or(false),
        };
        let lease = self.model(wanted, true, trace).await?;
        let in_use = self
            .cache
            .list()
            .into_iter()
            .find(|(s, _)| Arc::ptr_eq(s, lease.value()))
            .map_or(1, |(_, pins)| pins);
        let model = loaded(lease.value(), in_use);
        // An operator's action, rare: logged whether it loaded or found the model.
        tracing::info!(request_id = %trace, model = %model.model_id, version = %model.version, "model ready");
        Ok(model)
    }

    /// `GET /models`: the cached models, most recently used first.
    pub fn list_models(&self) -> ListLoadedModelsReply {
        ListLoadedModelsReply {
            models: self
                .cache
                .list()
                .iter()
                .map(|(served, pins)| loaded(served, *pins))
                .collect(),
            capacity: self.cache.capacity() as u32,
        }
    }

    /// Checks the inputs, queues them and waits for their answers.
    async fn run(
        &self,
        lease: &Lease<Arc<Served>>,
        inputs: &[InferInputs],
        config: Option<&InferConfig>,
        batch: bool,
    ) -> Result<(Arc<Served>, Vec<Answer>, Options), ApiError> {
        let served = lease.value().clone();
        let net = &served.network;
        let options = options(config, net)?;
        let mut samples = Vec::with_capacity(inputs.len());
        for (i, inputs) in inputs.iter().enumerate() {
            let at = if batch {
                format!("inputs[{i}]")
            } else {
                "inputs".to_owned()
            };
            let sample = input::sample(inputs, net, &at).map_err(ApiError::bad_request)?;
            let steps = match (sample.steps(), options.steps) {
                (Some(train), Some(asked)) if train != asked => {
                    return Err(ApiError::bad_request(format!(
                        "`{at}.spikes` has {train} steps but `config.steps` asks for {asked}"
                    )))
                }
                (Some(train), _) => train,
                (None, asked) => asked.unwrap_or(net.steps_per_sample),
            };
            samples.push((sample, steps));
        }
        served.requests.fetch_add(1, Ordering::Relaxed);
        let batcher = match &served.engine {
            Engine::Local(batcher) => batcher,
            Engine::Distributed(model) => {
                let answers = self.run_distributed(model, samples, net).await;
                self.publish_metrics();
                return Ok((served.clone(), answers?, options));
            }
        };
        let receivers = batcher.submit(samples).map_err(|full| {
            tracing::warn!(model = %served.model_id, %full, "queue full");
            ApiError::unavailable(format!("model `{}`: {full}", served.model_id), 1)
        });
        self.publish_metrics();
        let receivers = receivers?;
        let mut answers = Vec::with_capacity(receivers.len());
        for rx in receivers {
            let answer = rx
                .await
                .map_err(|_| ApiError::unavailable("the model's workers stopped", 1))?
                .map_err(|message| {
                    tracing::error!(model = %served.model_id, %message, "inference failed");
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the model failed to run: {message}"),
                    )
                })?;
            answers.push(answer);
        }
        self.publish_metrics();
        Ok((served, answers, options))
    }

    /// Samples through a distributed model's layer nodes: values only, for the
    /// model's own number of steps.
    async fn run_distributed(
        &self,
        model: &DistributedModel,
        samples: Vec<(input::Sample, u32)>,
        net: &NetworkSpec,
    ) -> Result<Vec<Answer>, ApiError> {
        let mut values = Vec::with_capacity(samples.len());
        for (sample, steps) in samples {
            match sample {
                input::Sample::Values(v) if steps == net.steps_per_sample => values.push(v),
                input::Sample::Values(_) => {
                    return Err(ApiError::bad_request(format!(
                        "`config.steps` is {steps}, but a distributed model runs its own {} steps per sample (its layer nodes reset every {0} steps); leave `config.steps` out",
                        net.steps_per_sample
                    )))
                }
                input::Sample::Spikes(_) => {
                    return Err(ApiError::bad_request(
                        "a distributed model takes `image` or `pixels` inputs (its service is its encoder); send spike trains without `distributed`",
                    ))
                }
            }
        }
        let pipeline = model.pipeline().await?;
        let scores = pipeline
            .scores(values, self.settings.batch.max_queue)
            .await?;
        Ok(scores
            .into_iter()
            .map(|scores| Answer {
                scores,
                batch_size: 1,
            })
            .collect())
    }

    /// The model a request names, leased from the cache (loaded on a miss, or
    /// always when `refresh`).
    async fn model(
        &self,
        wanted: Wanted<'_>,
        refresh: bool,
        trace: &str,
    ) -> Result<Lease<Arc<Served>>, ApiError> {
        let (mut key, fetch) = selector(wanted.model_id, wanted.version, wanted.alias)?;
        let distributed = match (wanted.distributed, &self.settings.distributed) {
            (false, _) => None,
            (true, Some(settings)) => {
                key.push_str("\u{0}distributed");
                Some(settings.clone())
            }
            (true, None) => {
                return Err(ApiError::bad_request(
                    "this inference service cannot serve models distributed (it has no executable to start layer nodes, or runs on an in-process bus)",
                ))
            }
        };
        let loader = Loader {
            distributed,
            bus: self.bus.clone(),
            cache: self.cache.clone(),
            backend: self.backend.clone(),
            neurons: self.neurons.clone(),
            batch: self.settings.batch,
            timeout: self.settings.registry_timeout,
            trace: trace.to_owned(),
        };
        let result = self
            .cache
            .get(&key, refresh, move || loader.load(fetch))
            .await;
        if let Ok(lease) = &result {
            if let Engine::Distributed(_) = lease.value().engine {
                let mut list = self.distributed.lock().unwrap_or_else(|e| e.into_inner());
                list.retain(|w| w.strong_count() > 0);
                if !list
                    .iter()
                    .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(lease.value())))
                {
                    list.push(Arc::downgrade(lease.value()));
                }
            }
        }
        self.publish_metrics();
        result
    }

    /// Refreshes the counters and gauges of `/metrics`.
    pub fn publish_metrics(&self) {
        let Some(metrics) = &self.metrics else { return };
        let stats = self.cache.stats();
        let counters = [
            (
                "inference_cache_hits_total",
                "Requests whose model was in the cache.",
                &stats.hits,
            ),
            (
                "inference_cache_misses_total",
                "Requests that waited for their model to load.",
                &stats.misses,
            ),
            (
                "inference_cache_evictions_total",
                "Models evicted from the cache.",
                &stats.evictions,
            ),
            (
                "inference_model_loads_total",
                "Models loaded from the registry.",
                &stats.loads,
            ),
            (
                "inference_model_load_failures_total",
                "Model loads that failed.",
                &stats.load_failures,
            ),
        ];
        for (name, help, value) in counters {
            metrics.set_counter(name, help, value.load(Ordering::Relaxed) as f64);
        }
        let models = self.cache.list();
        metrics.set_gauge(
            "inference_models_cached",
            "Models in the cache.",
            models.len() as f64,
        );
        let queued: usize = models.iter().map(|(s, _)| s.queued()).sum();
        metrics.set_gauge(
            "inference_queued_samples",
            "Samples waiting in the models' queues.",
            queued as f64,
        );
    }
}

fn loaded(served: &Served, in_use: u32) -> LoadedModel {
    let net = &served.network;
    let nodes = match &served.engine {
        Engine::Local(_) => Vec::new(),
        Engine::Distributed(model) => model.nodes(),
    };
    LoadedModel {
        distributed: matches!(served.engine, Engine::Distributed(_)),
        nodes,
        model_id: served.model_id.clone(),
        version: served.version.clone(),
        sha256: served.sha256.clone(),
        inputs: net.input_size as u32,
        classes: net.classes.len() as u32,
        steps: net.steps_per_sample,
        in_use,
        requests: served.requests.load(Ordering::Relaxed),
        loaded_at: served.loaded_at.clone(),
    }
}

/// What a load needs (it runs as a task of its own).
struct Loader {
    /// Served distributed, with these settings.
    distributed: Option<PipelineSettings>,
    bus: Bus,
    cache: Arc<Cache<Arc<Served>>>,
    backend: Arc<dyn Backend>,
    neurons: Arc<Neurons>,
    batch: BatchSettings,
    timeout: Duration,
    trace: String,
}

impl Loader {
    async fn fetch(
        &self,
        mut req: FetchFileRequest,
        filename: &str,
    ) -> Result<FetchFileReply, ApiError> {
        req.filename = filename.to_owned();
        let key = self
            .bus
            .keys()
            .service("registry", "fetch_file")
            .map_err(|e| ApiError::internal(&e))?;
        let reply: FetchFileReply = self
            .bus
            .request_traced(&key, &req, self.timeout, &self.trace)
            .await
            .map_err(|e| {
                let err = ApiError::from(&e);
                ApiError {
                    message: format!(
                        "cannot load model `{}` from the registry: {}",
                        req.model_id, err.message
                    ),
                    ..err
                }
            })?;
        let actual = hex::encode(sha2::Sha256::digest(&reply.content));
        if actual != reply.sha256 {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                format!(
                    "model `{}` version {}: {filename} from the registry has sha256 {actual}, not the {} the registry records; not loaded",
                    reply.model_id, reply.version, reply.sha256
                ),
            ));
        }
        Ok(reply)
    }

    async fn load(self, fetch: FetchFileRequest) -> Result<(String, Arc<Served>), ApiError> {
        let manifest = self.fetch(fetch.clone(), MANIFEST_FILE).await?;
        let (model_id, version) = (manifest.model_id.clone(), manifest.version.clone());
        let entry_key = match self.distributed {
            Some(_) => format!("{model_id}/{version} distributed"),
            None => format!("{model_id}/{version}"),
        };
        if let Some(served) = self.cache.cached(&entry_key) {
            return Ok((entry_key, served));
        }
        // The exact version the manifest came from, whatever alias led there.
        let exact = FetchFileRequest {
            version: version.clone(),
            alias: String::new(),
            ..fetch
        };
        let weights = self.fetch(exact, WEIGHTS_FILE).await?;
        tracing::info!(request_id = %self.trace, model = %model_id, %version, sha256 = %weights.sha256, distributed = self.distributed.is_some(), "loading model");
        if let Some(settings) = self.distributed.clone() {
            return self
                .load_distributed(settings, manifest, weights, entry_key)
                .await;
        }
        let Loader {
            backend,
            neurons,
            batch,
            ..
        } = self;
        let sha256 = weights.sha256.clone();
        let built = tokio::task::spawn_blocking(move || {
            let model = Model::from_bytes(&manifest.content, &weights.content).map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    format!("model `{model_id}` version {version} in the registry is not a model this service can run: {e}"),
                )
            })?;
            let capacity = batch.max_batch.max(1);
            let nets = (0..batch.workers.max(1))
                .map(|_| BatchNet::new(&model, backend.clone(), capacity, &mut |def, spec| neurons.layer(def, spec)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        format!("model `{model_id}` version {version} cannot be built: {e}"),
                    )
                })?;
            let batcher = Batcher::start(&model_id, nets, batch);
            Ok::<_, ApiError>(Served {
                model_id,
                version,
                sha256,
                network: model.manifest.network,
                loaded_at: unix_now_rfc3339(),
                engine: Engine::Local(batcher),
                requests: AtomicU64::new(0),
            })
        })
        .await
        .map_err(|e| ApiError::internal(&e))??;
        tracing::info!(model = %built.model_id, version = %built.version, "model loaded");
        Ok((entry_key, Arc::new(built)))
    }

    /// Checks the model, then launches its layer nodes.
    async fn load_distributed(
        self,
        settings: PipelineSettings,
        manifest: FetchFileReply,
        weights: FetchFileReply,
        entry_key: String,
    ) -> Result<(String, Arc<Served>), ApiError> {
        let (model_id, version, sha256) = (
            manifest.model_id.clone(),
            manifest.version.clone(),
            weights.sha256.clone(),
        );
        let files = (manifest.content, weights.content);
        let (files, model) = tokio::task::spawn_blocking(move || {
            let model = Model::from_bytes(&files.0, &files.1);
            (files, model)
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
        let network = model
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    format!("model `{model_id}` version {version} in the registry is not a model this service can run: {e}"),
                )
            })?
            .manifest
            .network;
        let distributed = DistributedModel::start(
            self.bus,
            settings,
            self.neurons,
            model_id.clone(),
            files,
            network.clone(),
        )
        .await?;
        tracing::info!(model = %model_id, %version, nodes = ?distributed.nodes(), "model loaded, served distributed");
        Ok((
            entry_key,
            Arc::new(Served {
                model_id,
                version,
                sha256,
                network,
                loaded_at: unix_now_rfc3339(),
                engine: Engine::Distributed(Box::new(distributed)),
                requests: AtomicU64::new(0),
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        let now = unix_now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }

    #[test]
    fn top_k_lists_the_best_first_and_the_first_of_equals() {
        let options = Options {
            steps: None,
            top_k: 3,
            return_scores: false,
        };
        let p = prediction(
            Answer {
                scores: vec![1.0, 3.0, 3.0, 0.5],
                batch_size: 1,
            },
            &options,
        );
        assert_eq!(p.prediction, 1);
        assert_eq!(p.top.iter().map(|c| c.class).collect::<Vec<_>>(), [1, 2, 0]);
        assert!(p.scores.is_empty());
    }
}
