//! Throughput and latency of `POST /infer` over loopback HTTP, with dynamic
//! batching on and off, at 1, 8 and 64 concurrent clients — all in one run.
//!
//! ```text
//! cargo bench -p evospike-inference --bench serve            # release profile
//! SERVE_BENCH_SECONDS=5 SERVE_BENCH_SIDE=28 cargo bench -p evospike-inference --bench serve
//! ```
//!
//! Everything runs in this process: an in-process bus, a model registry on it
//! holding a digits model (trained here for one epoch: `SERVE_BENCH_SIDE`×side
//! inputs — 8 is builtin:digits, 28 upsamples it to MNIST's size — 800 hidden
//! LIF neurons, 10 outputs, 25 steps, as `evospike train` makes it), and one
//! inference service per mode on 127.0.0.1 with the node's default batching
//! settings (max batch 32, max delay 2 ms; off: every sample alone). The load
//! generator is one thread per client, each with its own keep-alive
//! connection, sending raw 8-bit pixels (base64) of held-out digits back to back
//! for `SERVE_BENCH_SECONDS` (default 4) after a warm-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use evospike_bus::{Bus, BusConfig};
use evospike_inference::batch::BatchSettings;
use evospike_inference::neurons::Neurons;
use evospike_inference::{api, Inference, InferenceParams, Settings};
use evospike_learning::data::{self, Data};
use evospike_learning::fit;
use evospike_learning::model::{Provenance, MANIFEST_FILE, WEIGHTS_FILE};
use evospike_learning::surrogate::SurrogateGradient;
use evospike_plugin_api::LearnerSpec;
use evospike_schemas::proto::{PublishRequest, RegistryUpload, RegistryVersion};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn training_data(side: usize) -> Data {
    let digits = data::builtin_digits().expect("builtin digits");
    if side == 8 {
        digits
    } else {
        data::upsample(&digits, side).expect("upsampled digits")
    }
}

/// A model directory's two files, for a model trained one epoch on `data`.
fn model_files(data: &Data) -> (Vec<u8>, Vec<u8>) {
    let spec = LearnerSpec {
        input_size: data.num_inputs(),
        input_shape: data.shape().to_vec(),
        classes: (0..10).map(|c| c.to_string()).collect(),
        params: serde_json::from_str(r#"{"hidden": [800], "steps": 25, "batch": 64}"#).unwrap(),
        seed: 1,
    };
    let mut learner = SurrogateGradient::new(&spec).expect("a learner");
    let view = data.view(10).expect("a data view");
    fit::fit(
        &mut learner,
        &view,
        None,
        1,
        None,
        &AtomicBool::new(false),
        |_| {},
    )
    .expect("training");
    let mut model = fit::model_of(&learner, Provenance::default(), []);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    (
        std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap(),
        std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap(),
    )
}

struct Run {
    requests: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    mean_batch: f64,
}

/// `clients` threads sending /infer back to back for `seconds`.
fn load(url: &str, bodies: &[String], clients: usize, seconds: f64) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (url, stop) = (url.to_owned(), stop.clone());
            let bodies = bodies.to_vec();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(true)
                    .build()
                    .into();
                let (mut latencies, mut batch_sum) = (Vec::new(), 0u64);
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = &bodies[i % bodies.len()];
                    i += clients;
                    let t = Instant::now();
                    let mut reply = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                        .expect("an answer");
                    let text = reply.body_mut().read_to_string().expect("a body");
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                    batch_sum += answer["batch_size"].as_u64().unwrap_or(1);
                }
                (latencies, batch_sum)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies_ms = Vec::new();
    let mut batch_sum = 0;
    for t in threads {
        let (l, b) = t.join().unwrap();
        latencies_ms.extend(l);
        batch_sum += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_ms.sort_by(f64::total_cmp);
    Run {
        requests: latencies_ms.len(),
        seconds,
        mean_batch: batch_sum as f64 / latencies_ms.len().max(1) as f64,
        latencies_ms,
    }
}

/// The service's forward pass alone, on one thread: µs per sample for samples
/// one at a time, and in batches of 32.
fn compute_only(files: &(Vec<u8>, Vec<u8>), test: &Data) -> (f64, f64) {
    use evospike_inference::input::Sample;
    use evospike_inference::net::BatchNet;
    let model = evospike_learning::model::Model::from_bytes(&files.0, &files.1).unwrap();
    let backend: Arc<dyn evospike_compute::Backend> =
        Arc::new(evospike_compute::CpuBackend::single_threaded());
    let neurons = Neurons::new::<&str>(&[]).unwrap();
    let mut net = BatchNet::new(&model, backend, 32, &mut |d, s| neurons.layer(d, s)).unwrap();
    let samples: Vec<Sample> = (0..256.min(test.len()))
        .map(|i| Sample::Values(test.sample(i).to_vec()))
        .collect();
    let steps = model.manifest.network.steps_per_sample;
    let mut per_sample = |batch: usize| {
        let started = Instant::now();
        let mut done = 0;
        while started.elapsed() < Duration::from_secs(1) {
            for chunk in samples.chunks(batch) {
                let refs: Vec<&Sample> = chunk.iter().collect();
                net.scores(&refs, steps).unwrap();
                done += chunk.len();
            }
        }
        started.elapsed().as_secs_f64() * 1e6 / done as f64
    };
    (per_sample(1), per_sample(32))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let seconds = env_num("SERVE_BENCH_SECONDS", 4) as f64;
    let side = env_num("SERVE_BENCH_SIDE", 8) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = training_data(side);
    eprintln!(
        "training a {}-input model for one epoch…",
        data.num_inputs()
    );
    let (manifest, weights) = model_files(&data);
    let model_bytes = (manifest.clone(), weights.clone());
    let (_, test) = data.holdout(0.2).unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    let bodies: Vec<String> = (0..test.len().min(256))
        .map(|i| {
            let pixels: Vec<u8> = test
                .sample(i)
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            serde_json::json!({"model_id": "digits", "inputs": {"image": engine.encode(pixels)}, "config": {"return_scores": false}})
                .to_string()
        })
        .collect();

    let registry_dir = tempfile::tempdir().unwrap();
    let (bus, _queryables, urls) = runtime.block_on(async {
        let bus = Bus::open(BusConfig::local("serve-bench")).await.unwrap();
        let registry = Arc::new(evospike_registry::Registry::open(registry_dir.path()).unwrap());
        let queryables = evospike_registry::bus::serve(&bus, "registry", registry).unwrap();
        let key = bus.keys().service("registry", "publish").unwrap();
        let published: RegistryVersion = bus
            .request(
                &key,
                &PublishRequest {
                    model_id: "digits".into(),
                    name: "digits".into(),
                    version: "1".into(),
                    framework: "evospike".into(),
                    files: vec![
                        RegistryUpload {
                            name: MANIFEST_FILE.into(),
                            content: manifest,
                            sha256: String::new(),
                        },
                        RegistryUpload {
                            name: WEIGHTS_FILE.into(),
                            content: weights,
                            sha256: String::new(),
                        },
                    ],
                    ..Default::default()
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(published.state, "ready");
        let mut urls = Vec::new();
        for batching in [true, false] {
            let mut params: InferenceParams = serde_json::from_str("{}").unwrap();
            params.batching = batching;
            let settings = Settings {
                cache_size: 5,
                batch: params.batch_settings(),
                registry_timeout: Duration::from_secs(30),
                distributed: None,
            };
            let config = evospike_http::ServiceConfig {
                host: "127.0.0.1".into(),
                port: 0,
                ..evospike_http::ServiceConfig::with_port(0)
            };
            let backend: Arc<dyn evospike_compute::Backend> =
                evospike_compute::backend_from_env().unwrap().into();
            let neurons = Arc::new(Neurons::new::<&str>(&[]).unwrap());
            let b = bus.clone();
            let (service, _) = api::service_with(config.clone(), move |metrics| {
                Arc::new(Inference::new(b, backend, neurons, settings, Some(metrics)))
            });
            let listener = evospike_http::bind(&config).await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(evospike_http::serve(
                listener,
                service.into_router(),
                std::future::pending(),
            ));
            urls.push((batching, params.batch_settings(), format!("http://{addr}")));
        }
        (bus, queryables, urls)
    });

    println!(
        "model: {} inputs, 800 hidden LIF, 10 outputs, 25 steps; {} s per point; device {}",
        data.num_inputs(),
        seconds,
        std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into())
    );
    println!("| batching | clients | requests/s | p50 ms | p99 ms | mean batch |");
    println!("|---|---|---|---|---|---|");
    for (_, _, url) in &urls {
        let loaded = ureq::post(&format!("{url}/load_model/digits")).send_empty();
        assert!(loaded.is_ok(), "{loaded:?}");
        load(&format!("{url}/infer"), &bodies, 8, 0.5); // warm-up
    }
    // The modes alternate at each client count, so both see the same machine.
    let mut at64 = Vec::new();
    for clients in [1, 8, 64] {
        for (batching, settings, url) in &urls {
            let BatchSettings {
                max_batch,
                max_delay,
                ..
            } = *settings;
            let run = load(&format!("{url}/infer"), &bodies, clients, seconds);
            let rate = run.requests as f64 / run.seconds;
            let mode = if *batching {
                format!("on (max {max_batch}, {} ms)", max_delay.as_secs_f64() * 1e3)
            } else {
                "off".to_owned()
            };
            println!(
                "| {mode} | {clients} | {rate:.0} | {:.2} | {:.2} | {:.1} |",
                percentile(&run.latencies_ms, 0.5),
                percentile(&run.latencies_ms, 0.99),
                run.mean_batch
            );
            if clients == 64 {
                at64.push(rate);
            }
        }
    }
    if let [on, off] = at64[..] {
        println!("\nat 64 clients, batching on / off = {:.2}x", on / off);
        // What one core spends per request, all included (HTTP, JSON, the
        // load generator's threads, compute), against the compute alone.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let (alone, batched) = compute_only(&model_bytes, &test);
        println!(
            "compute alone: {:.1} µs per sample at batch 1, {:.1} µs at batch 32; \
             CPU per request at 64 clients: {:.1} µs off, {:.1} µs on",
            alone,
            batched,
            cores * 1e6 / off,
            cores * 1e6 / on
        );
    }
    drop(bus);
}
