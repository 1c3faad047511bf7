//! A registry served in-process on 127.0.0.1 (a free port), and a blocking client.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evospike_http::ServiceConfig;
use evospike_learning::model::{weight_name, Manifest, Model, Provenance, SCHEMA_VERSION};
use evospike_plugin_api::{EncoderDef, LayerDef, NetworkSpec, Params, Readout, Tensor};
use evospike_registry::api::{self, Limits};
use evospike_registry::Registry;

pub const BODY_LIMIT: usize = 4096;
pub const MAX_UPLOAD: u64 = 64 * 1024;
pub const UPLOAD_IDLE: Duration = Duration::from_millis(500);

pub struct Server {
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), evospike_http::HttpError>>>,
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let registry = Arc::new(Registry::open(dir).unwrap());
        let mut config = ServiceConfig::with_port(0);
        config.host = "127.0.0.1".into();
        config.body_limit = BODY_LIMIT;
        let router = api::service(
            registry.clone(),
            config.clone(),
            Limits {
                max_upload: MAX_UPLOAD,
                upload_idle: UPLOAD_IDLE,
            },
        )
        .into_router();
        let listener = rt.block_on(evospike_http::bind(&config)).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = rt.spawn(evospike_http::serve(listener, router, async {
            let _ = rx.await;
        }));
        Server {
            rt: Some(rt),
            stop: Some(tx),
            task: Some(task),
            addr,
            registry,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(rt), Some(task)) = (self.rt.take(), self.task.take()) {
            let _ = rt.block_on(task);
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status, headers and body of a response.
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the one error shape and the status.
    pub fn assert_error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let json = self.json();
        let id = self
            .header("x-request-id")
            .expect("x-request-id")
            .to_owned();
        assert_eq!(json["request_id"], id.as_str(), "{json}");
        json["error"].as_str().expect("error message").to_owned()
    }
}

fn reply(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = resp.expect("HTTP request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call())
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(url)
            .header("Content-Type", content_type)
            .send(body),
    )
}

pub fn put(url: &str, body: &str) -> Reply {
    reply(
        agent()
            .put(url)
            .header("Content-Type", "application/json")
            .send(body),
    )
}

/// Waits until `cond` holds (or fails the test after 10 s).
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small valid evospike model, written to `dir`.
pub fn write_model(dir: &Path) {
    let layer = |name: &str, neuron: &str, size| LayerDef {
        name: name.into(),
        neuron: neuron.into(),
        size,
        params: Params::new(),
    };
    let mut model = Model {
        manifest: Manifest {
            schema_version: SCHEMA_VERSION,
            network: NetworkSpec {
                input_size: 4,
                input_shape: vec![2, 2],
                encoder: EncoderDef {
                    plugin: "CurrentEncoder".into(),
                    params: Params::new(),
                },
                dt_ms: 1.0,
                steps_per_sample: 5,
                layers: vec![
                    layer("hidden", "LIFNeuron", 3),
                    layer("output", "LeakyIntegrator", 2),
                ],
                classes: vec!["a".into(), "b".into()],
                readout: Readout::Membrane,
            },
            provenance: Provenance::default(),
            metrics: BTreeMap::new(),
            files: BTreeMap::new(),
        },
        weights: vec![
            Tensor {
                name: weight_name("hidden"),
                shape: vec![3, 4],
                data: (0..12).map(|v| v as f32).collect(),
            },
            Tensor {
                name: weight_name("output"),
                shape: vec![2, 3],
                data: vec![0.5; 6],
            },
        ],
    };
    model.save(dir).unwrap();
}
