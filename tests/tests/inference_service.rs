//! The inference service, started from `launch/services.yaml` with the router and
//! the registry: the documented curl examples as written, answers equal to
//! `evospike eval`, bad input refused on every endpoint, a cache of one model
//! under a burst for two, and a full queue answering 503.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// An HTTP answer: status, `Retry-After`, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    text: String,
}

fn call(method: &str, url: &str, body: Option<&[u8]>, request_id: Option<&str>) -> Answer {
    let agent = agent();
    let mut reply = match (method, body) {
        ("GET", _) => {
            let mut req = agent.get(url);
            if let Some(id) = request_id {
                req = req.header("x-request-id", id);
            }
            req.call()
        }
        (_, body) => {
            let mut req = agent.post(url).header("Content-Type", "application/json");
            if let Some(id) = request_id {
                req = req.header("x-request-id", id);
            }
            match body {
                Some(body) => req.send(body),
                None => req.send_empty(),
            }
        }
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let retry_after = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: reply.status().as_u16(),
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn post(url: &str, body: &Value) -> Answer {
    call("POST", url, Some(body.to_string().as_bytes()), None)
}

/// The router, registry and inference service of `launch/services.yaml`.
struct Services {
    launcher: Child,
    router: String,
    registry: String,
    inference: String,
    _data: tempfile::TempDir,
}

fn url_in(line: &str) -> String {
    line.split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned()
}

impl Services {
    fn start(cache_size: usize) -> Services {
        let data = tempfile::tempdir().unwrap();
        let router = loopback_endpoint();
        let mut command = evospike_testkit::services_launch(&router, data.path());
        command.args(["--arg", &format!("model_cache_size={cache_size}")]);
        let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
        let (mut registry, mut inference) = (None, None);
        while registry.is_none() || inference.is_none() {
            let line = launcher
                .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
                .expect("the services start");
            if line.contains("(registry)") {
                registry = Some(url_in(&line));
            } else if line.contains("(inference)") {
                inference = Some(url_in(&line));
            }
        }
        Services {
            launcher,
            router,
            registry: registry.unwrap(),
            inference: inference.unwrap(),
            _data: data,
        }
    }

    fn infer(&self, path: &str, body: &Value) -> Answer {
        post(&format!("{}{path}", self.inference), body)
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.inference, name)
    }

    fn stop(mut self) {
        self.launcher.signal("INT").unwrap();
        let status = self
            .launcher
            .wait_exit(Duration::from_secs(20))
            .expect("launch ends within its shutdown timeouts");
        assert!(
            status.success(),
            "{status}: {}",
            self.launcher.output().join("\n")
        );
    }
}

fn metric(base: &str, name: &str) -> f64 {
    let text = call("GET", &format!("{base}/metrics"), None, None).text;
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Trains a digits model with `evospike train` (the library's `fit`), holding
/// out a fifth of builtin:digits.
fn train(dir: &Path, seed: u64) -> PathBuf {
    let out = dir.join(format!("digits-{seed}"));
    let status = Command::new(workspace_bin("evospike"))
        .args([
            "train",
            "--data",
            "builtin:digits",
            "--holdout",
            "0.2",
            "--epochs",
            "2",
        ])
        .args(["--seed", &seed.to_string()])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// Publishes a model directory to the registry over HTTP as `model_id` version 1.
fn publish(registry: &str, model_id: &str, dir: &Path) {
    let reply = post(
        &format!("{registry}/models/register"),
        &json!({"model_id": model_id, "name": model_id, "version": "1", "framework": "evospike"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    for file in ["model.json", "weights.safetensors"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let mut reply = agent()
            .post(&format!(
                "{registry}/models/{model_id}/upload?version=1&filename={file}"
            ))
            .send(&bytes[..])
            .unwrap();
        assert_eq!(
            reply.status().as_u16(),
            201,
            "{:?}",
            reply.body_mut().read_to_string()
        );
    }
    let reply = call(
        "POST",
        &format!("{registry}/models/{model_id}/versions/1/finalize"),
        None,
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// `evospike eval --json` of `model` on the held-out fifth: its predictions.
fn eval_predictions(model: &Path) -> Vec<u32> {
    let out = Command::new(workspace_bin("evospike"))
        .arg("eval")
        .arg(model)
        .args(["--data", "builtin:digits", "--holdout", "0.2", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(report["predictions"].clone()).unwrap()
}

/// The held-out samples `evospike eval --holdout 0.2` scores.
fn holdout() -> Vec<Vec<f32>> {
    let data = evospike_learning::data::builtin_digits().unwrap();
    let (_, test) = data.holdout(0.2).unwrap();
    (0..test.len()).map(|i| test.sample(i).to_vec()).collect()
}

/// One `curl` command of the docs: method, URL, body.
#[derive(Debug)]
struct Curl {
    method: String,
    url: String,
    body: Option<String>,
}

/// The curl commands of a docs section, in order. They are written as
/// `curl [-X METHOD] URL [-H "…"] [-d '…']`, possibly over several lines
/// joined with `\`.
fn curl_commands(section: &str) -> Vec<(Curl, String)> {
    let mut out = Vec::new();
    for block in section.split("```bash").skip(1) {
        let block = block.split("```").next().unwrap();
        let joined = block.replace("\\\n", " ");
        let mut text = joined.as_str();
        while let Some(start) = text.find("curl ") {
            text = &text[start + 5..];
            // A body in single quotes may span lines; the command ends after it
            // or at the end of its line.
            let (command, rest) = match (text.find(" -d '"), text.find('\n')) {
                (Some(d), Some(nl)) if d < nl => {
                    let body_start = d + 5;
                    let body_end = body_start + text[body_start..].find('\'').unwrap();
                    (&text[..=body_end], &text[body_end + 1..])
                }
                (_, Some(nl)) => (&text[..nl], &text[nl..]),
                (_, None) => (text, ""),
            };
            out.push((parse_curl(command), format!("curl {command}")));
            text = rest;
        }
    }
    out
}

fn parse_curl(command: &str) -> Curl {
    let mut curl = Curl {
        method: "GET".into(),
        url: String::new(),
        body: None,
    };
    let mut rest = command.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("-X ") {
            let (m, r) = r.trim_start().split_once(' ').unwrap_or((r, ""));
            curl.method = m.to_owned();
            rest = r.trim_start();
        } else if let Some(r) = rest.strip_prefix("-H \"") {
            rest = r.split_once('"').unwrap().1.trim_start();
        } else if let Some(r) = rest.strip_prefix("-d '") {
            let (body, r) = r.split_once('\'').unwrap();
            curl.body = Some(body.to_owned());
            curl.method = if curl.method == "GET" {
                "POST".into()
            } else {
                curl.method
            };
            rest = r.trim_start();
        } else {
            let (url, r) = rest.split_once(' ').unwrap_or((rest, ""));
            curl.url = url.trim_matches('"').to_owned();
            rest = r.trim_start();
        }
    }
    curl
}

fn inference_docs() -> String {
    let docs = std::fs::read_to_string(repo().join("docs/services.md")).unwrap();
    let start = docs
        .find("## Inference (port 8002)")
        .expect("an inference section");
    let section = &docs[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    section[..end].to_owned()
}

#[test]
fn documented_examples_work_as_written_and_answers_equal_evospike_eval() {
    let work = tempfile::tempdir().unwrap();
    let model = train(work.path(), 1);
    let services = Services::start(5);
    publish(&services.registry, "digits", &model);

    // Every curl example of the inference section, in order, as written (but
    // for the address).
    let examples = curl_commands(&inference_docs());
    assert!(examples.len() >= 8, "{examples:?}");
    for (curl, text) in &examples {
        let url = curl
            .url
            .replace("http://localhost:8002", &services.inference);
        assert_ne!(url, curl.url, "{text} targets the inference service");
        let answer = call(
            &curl.method,
            &url,
            curl.body.as_deref().map(str::as_bytes),
            None,
        );
        if text.contains("vision_encoder_v1") {
            // The design's example: a clear 400 naming the field.
            assert_eq!(answer.status, 400, "{text}: {}", answer.text);
            assert!(
                answer.body["error"]
                    .as_str()
                    .unwrap()
                    .contains("inputs.image"),
                "{}",
                answer.text
            );
        } else {
            assert_eq!(answer.status, 200, "{text}: {}", answer.text);
        }
    }

    // The design's example with a valid image still names the model it lacks.
    let missing = services.infer(
        "/infer",
        &json!({"model_id": "vision_encoder_v1", "inputs": {"image": "AAAA"}}),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(
        missing.text.contains("vision_encoder_v1"),
        "{}",
        missing.text
    );

    // The zero of the docs, as raw pixels, as an 8x8 PNG and as a 16x16 PNG: one answer.
    let answers: Vec<Value> = [
        "AAD/////AAAA//8AAP//AAD/AAAAAP8AAP8AAAAA/wAA/wAAAAD/AAD/AAAAAP8AAP//AAD//wAAAP////8AAA==",
        "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAG0lEQVR42mNgYPgPBAwMIBqCGSA8AgyYYqh2AF0VF+kobzXRAAAAAElFTkSuQmCC",
        "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAIklEQVR42mNgAIL/UMAAA2gCMCZcCIsAQuvAChByKQHfAgDQ/l+hYIo3WQAAAABJRU5ErkJggg==",
    ]
    .iter()
    .map(|image| {
        let a = services.infer("/infer", &json!({"model_id": "digits", "inputs": {"image": image}}));
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["output"]["scores"].clone()
    })
    .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);

    // Answers equal `evospike eval`'s predictions on the held-out samples: all
    // at once through /batch_infer, and a part as concurrent /infer calls.
    let expected = eval_predictions(&model);
    let samples = holdout();
    assert_eq!(samples.len(), expected.len());
    let inputs: Vec<Value> = samples.iter().map(|s| json!({"pixels": s})).collect();
    let batch = services.infer(
        "/batch_infer",
        &json!({"model_id": "digits", "inputs": inputs, "config": {"return_scores": false}}),
    );
    assert_eq!(batch.status, 200, "{}", batch.text);
    let got: Vec<u32> = batch.body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["prediction"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        got, expected,
        "batch_infer predicts what evospike eval predicts"
    );
    let url = format!("{}/infer", services.inference);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, samples, expected) = (url.clone(), samples.clone(), expected.clone());
            std::thread::spawn(move || {
                for i in (t..samples.len()).step_by(8).take(6) {
                    let a = post(
                        &url,
                        &json!({"model_id": "digits", "inputs": {"pixels": samples[i]}}),
                    );
                    assert_eq!(a.status, 200, "{}", a.text);
                    assert_eq!(a.body["output"]["prediction"], expected[i], "sample {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(services.metric("inference_cache_hits_total") >= 48.0);
    // The model, and its distributed form (the docs' example).
    assert_eq!(services.metric("inference_model_loads_total"), 2.0);

    // The same operations on the bus, with the same answers and errors.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(on_the_bus(&services.router, &samples, &expected));
    services.stop();
}

async fn on_the_bus(router: &str, samples: &[Vec<f32>], expected: &[u32]) {
    use evospike_bus::{Bus, BusConfig, BusError};
    use evospike_schemas::proto::{
        BatchInferReply, BatchInferRequest, ErrorCode, InferInputs, InferReply, InferRequest,
        ListLoadedModelsReply, ListLoadedModelsRequest, LoadModelRequest, LoadedModel,
    };
    let config = BusConfig::peer(&["tcp/127.0.0.1:0".to_string()], &[router.to_string()]);
    let bus = Bus::open(config).await.expect("a bus peer");
    let key = |method: &str| bus.keys().service("inference", method).unwrap();
    let timeout = Duration::from_secs(30);
    let pixels = |i: usize| InferInputs {
        pixels: samples[i].clone(),
        ..Default::default()
    };
    let reply: InferReply = bus
        .request_traced(
            &key("infer"),
            &InferRequest {
                model_id: "digits".into(),
                inputs: Some(pixels(3)),
                config: None,
            },
            timeout,
            "bus-trace-1",
        )
        .await
        .unwrap();
    assert_eq!(reply.output.unwrap().prediction, expected[3]);
    let batch: BatchInferReply = bus
        .request(
            &key("batch_infer"),
            &BatchInferRequest {
                model_id: "digits".into(),
                inputs: (0..10).map(pixels).collect(),
                config: None,
            },
            timeout,
        )
        .await
        .unwrap();
    let got: Vec<u32> = batch.outputs.iter().map(|o| o.prediction).collect();
    assert_eq!(got, expected[..10]);
    let loaded: LoadedModel = bus
        .request(
            &key("load_model"),
            &LoadModelRequest {
                model_id: "digits".into(),
                version: Some("1".into()),
                ..Default::default()
            },
            timeout,
        )
        .await
        .unwrap();
    assert_eq!((loaded.version.as_str(), loaded.inputs), ("1", 64));
    let list: ListLoadedModelsReply = bus
        .request(&key("list_models"), &ListLoadedModelsRequest {}, timeout)
        .await
        .unwrap();
    // The model, and its distributed form (the docs' example).
    assert_eq!(list.models.len(), 2);
    let missing = bus
        .request::<_, InferReply>(
            &key("infer"),
            &InferRequest {
                model_id: "vision_encoder_v1".into(),
                inputs: Some(pixels(0)),
                config: None,
            },
            timeout,
        )
        .await
        .unwrap_err();
    match missing {
        BusError::Remote { code, message, .. } => {
            assert_eq!(code, ErrorCode::NotFound, "{message}");
            assert!(message.contains("vision_encoder_v1"), "{message}");
        }
        other => panic!("expected a NOT_FOUND reply, got {other}"),
    }
}

/// Sends `path` a request declaring a 2 MiB body (over the 1 MiB limit) without
/// sending it: the service must answer 413 from the declared length alone.
fn oversized(base: &str, path: &str) -> Answer {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Answer {
        status,
        retry_after: None,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        text,
    }
}

/// Checks an error answer: its status and the one error shape.
fn refused(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    let error = answer.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", answer.text));
    assert!(error.contains(says), "`{error}` should say `{says}`");
    assert!(answer.body["request_id"].is_string(), "{}", answer.text);
}

#[test]
fn bad_input_on_every_endpoint_is_a_clear_4xx_and_changes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let model = train(work.path(), 1);
    let services = Services::start(5);
    publish(&services.registry, "digits", &model);
    let loaded = services.infer("/load_model/digits", &json!({}));
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    let before = call("GET", &format!("{}/models", services.inference), None, None).body;

    let raw = |body: &str, path: &str| {
        call(
            "POST",
            &format!("{}{path}", services.inference),
            Some(body.as_bytes()),
            None,
        )
    };
    let pixels = vec![0.5; 64];
    for path in ["/infer", "/batch_infer", "/load_model/digits"] {
        refused(&raw("{", path), 400, "invalid JSON body");
        refused(&raw("[1, 2]", path), 400, "invalid JSON body");
    }
    // /infer
    refused(
        &raw(r#"{"inputs": {"pixels": [0.5]}}"#, "/infer"),
        400,
        "model_id",
    );
    refused(
        &raw(r#"{"model_id": 7, "inputs": {}}"#, "/infer"),
        400,
        "`model_id`",
    );
    refused(
        &raw(
            r#"{"model_id": "digits", "inputs": {"pixels": "bright"}}"#,
            "/infer",
        ),
        400,
        "inputs.pixels",
    );
    refused(
        &services.infer("/infer", &json!({"model_id": "digits", "inputs": {}})),
        400,
        "gives no input",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "nope", "inputs": {"pixels": pixels}}),
        ),
        404,
        "nope",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"image": "*&^%"}}),
        ),
        400,
        "not base64",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"image": "AAEC"}}),
        ),
        400,
        "3 bytes",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"image": "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAI"}}),
        ),
        400,
        "not a readable PNG",
    );
    let mut bright = pixels.clone();
    bright[5] = 1.5;
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"pixels": bright}}),
        ),
        400,
        "value 5 is 1.5",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"pixels": [0.5, 0.5]}}),
        ),
        400,
        "has 2 values",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"pixels": pixels, "image": "AAAA"}}),
        ),
        400,
        "more than one",
    );
    refused(
        &services.infer("/infer", &json!({"model_id": "digits", "inputs": {"spikes": {"steps": 5, "times": [9], "neurons": [1]}}})),
        400,
        "past the train's 5 steps",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"pixels": pixels}, "config": {"top_k": 11}}),
        ),
        400,
        "top_k",
    );
    refused(
        &services.infer(
            "/infer",
            &json!({"model_id": "digits", "inputs": {"pixels": pixels}, "config": {"steps": 0}}),
        ),
        400,
        "config.steps",
    );
    refused(
        &services.infer("/infer", &json!({"model_id": "digits", "inputs": {"pixels": pixels}, "config": {"version": "9"}})),
        404,
        "digits",
    );
    refused(
        &services.infer("/infer", &json!({"model_id": "digits", "inputs": {"pixels": pixels}, "config": {"version": "1", "alias": "x"}})),
        400,
        "at most one",
    );
    refused(&oversized(&services.inference, "/infer"), 413, "");
    // /batch_infer
    refused(
        &services.infer("/batch_infer", &json!({"model_id": "digits", "inputs": []})),
        400,
        "empty",
    );
    refused(
        &services.infer(
            "/batch_infer",
            &json!({"model_id": "digits", "inputs": [{"pixels": pixels}, {"pixels": [2.0]}]}),
        ),
        400,
        "inputs[1].pixels",
    );
    refused(
        &services.infer(
            "/batch_infer",
            &json!({"model_id": "nope", "inputs": [{"pixels": pixels}]}),
        ),
        404,
        "nope",
    );
    refused(
        &raw(
            r#"{"model_id": "digits", "inputs": {"pixels": []}}"#,
            "/batch_infer",
        ),
        400,
        "inputs",
    );
    refused(&oversized(&services.inference, "/batch_infer"), 413, "");
    // /load_model
    refused(&services.infer("/load_model/nope", &json!({})), 404, "nope");
    refused(
        &services.infer("/load_model/digits", &json!({"version": "7"})),
        404,
        "7",
    );
    refused(
        &services.infer("/load_model/digits", &json!({"model_id": "other"})),
        400,
        "differs",
    );
    refused(
        &services.infer("/load_model/digits", &json!({"version": 1})),
        400,
        "version",
    );
    refused(
        &services.infer("/load_model/digits", &json!({"colour": "red"})),
        400,
        "colour",
    );
    refused(
        &oversized(&services.inference, "/load_model/digits"),
        413,
        "",
    );
    // /models
    refused(&raw("{}", "/models"), 405, "");

    let after = call("GET", &format!("{}/models", services.inference), None, None).body;
    let names = |v: &Value| {
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["model_id"], m["version"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&before),
        names(&after),
        "nothing was loaded or evicted"
    );
    assert_eq!(services.metric("inference_model_loads_total"), 1.0);

    // The request id travels into the model load's log line.
    let load = call(
        "POST",
        &format!("{}/load_model/digits", services.inference),
        None,
        Some("trace-load-7"),
    );
    assert_eq!(load.status, 200, "{}", load.text);
    let mut launcher = services;
    let seen = launcher.launcher.wait_for_line(
        |l| l.contains("trace-load-7") && l.contains("[inference"),
        Duration::from_secs(10),
    );
    assert!(seen.is_ok(), "the inference log names the request id");
    launcher.stop();
}

#[test]
fn a_cache_of_one_serves_a_burst_for_two_models_and_a_full_queue_answers_503() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (train(work.path(), 1), train(work.path(), 2));
    let services = Services::start(1);
    publish(&services.registry, "digits-a", &a);
    publish(&services.registry, "digits-b", &b);
    let expected_a = eval_predictions(&a);
    let expected_b = eval_predictions(&b);
    let samples = holdout();

    // 12 clients, each alternating the two models: every request answers,
    // although the cache holds one model and evicts constantly.
    let url = format!("{}/infer", services.inference);
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let (url, samples) = (url.clone(), samples.clone());
            let (ea, eb) = (expected_a.clone(), expected_b.clone());
            std::thread::spawn(move || {
                for k in 0..8 {
                    let i = (t * 8 + k) % samples.len();
                    let (model, expected) = if (t + k) % 2 == 0 {
                        ("digits-a", &ea)
                    } else {
                        ("digits-b", &eb)
                    };
                    let a = post(
                        &url,
                        &json!({"model_id": model, "inputs": {"pixels": samples[i]}}),
                    );
                    assert_eq!(a.status, 200, "{model}: {}", a.text);
                    assert_eq!(
                        a.body["output"]["prediction"], expected[i],
                        "{model} sample {i}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        services.metric("inference_cache_evictions_total") >= 1.0,
        "the cache of one evicted"
    );
    assert!(services.metric("inference_models_cached") <= 2.0);
    let cached = || {
        call("GET", &format!("{}/models", services.inference), None, None).body["models"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(cached(), 1, "back to one model once the burst is over");

    // A second inference node with one worker and a queue of four samples: the
    // idle worker takes one batch of four long samples at once (seconds of
    // work), the other batch fills the queue meanwhile, and the next request
    // gets 503.
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .args(["run", "inference", "--name", "inference-small-queue"])
        .args(["--connect", &services.router])
        .args([
            "-p",
            "max_queue=4",
            "-p",
            "compute_threads=1",
            "-p",
            "max_batch_size=8",
        ])
        .env("SERVICE_HOST", "127.0.0.1")
        .env("SERVICE_PORT", "0")
        .env("RUST_LOG", "info");
    let mut small = Child::spawn(&mut command).expect("start a second inference node");
    let line = small
        .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
        .expect("it starts");
    let small_url = url_in(&line);
    let loaded = post(&format!("{small_url}/load_model/digits-a"), &json!({}));
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    let long: Vec<Value> = (0..4).map(|i| json!({"pixels": samples[i]})).collect();
    let long = json!({"model_id": "digits-a", "config": {"steps": 10000}, "inputs": long});
    // The worker may finish between seeing the queue full and the next request
    // (a fast machine): then that attempt proves nothing and is repeated.
    let mut refused_once = false;
    for _ in 0..5 {
        let batches: Vec<_> = (0..2)
            .map(|_| {
                let (url, body) = (format!("{small_url}/batch_infer"), long.clone());
                std::thread::spawn(move || post(&url, &body))
            })
            .collect();
        // Both batches may reach the queue before the worker takes the first (a
        // busy machine): the second is refused at once, the queue is full only
        // for an instant, and the attempt proves nothing.
        wait_until(Duration::from_secs(10), || {
            batches.iter().any(|b| b.is_finished())
                || metric(&small_url, "inference_queued_samples") == 4.0
        })
        .expect("the second batch waits in the queue while the first computes");
        if batches.iter().any(|b| b.is_finished()) {
            for batch in batches {
                let batch = batch.join().unwrap();
                assert!(
                    batch.status == 200
                        || (batch.status == 503 && batch.text.contains("queue is full")),
                    "{}",
                    batch.text
                );
            }
            continue;
        }
        let full = post(
            &format!("{small_url}/infer"),
            &json!({"model_id": "digits-a", "inputs": {"pixels": samples[2]}}),
        );
        // Both batches may also reach the queue before the worker takes the
        // first (a busy machine): the second is then refused, and the attempt
        // proves nothing either.
        let mut both_queued = false;
        for batch in batches {
            let batch = batch.join().unwrap();
            if batch.status == 503 && batch.text.contains("queue is full") {
                both_queued = true;
            } else {
                assert_eq!(batch.status, 200, "{}", batch.text);
            }
        }
        if both_queued {
            continue;
        }
        if full.status == 503 {
            refused(&full, 503, "queue is full");
            assert_eq!(full.retry_after.as_deref(), Some("1"));
            refused_once = true;
            break;
        }
        assert_eq!(full.status, 200, "{}", full.text);
    }
    assert!(refused_once, "a full queue answered 503");
    let after = post(
        &format!("{small_url}/infer"),
        &json!({"model_id": "digits-a", "inputs": {"pixels": samples[2]}}),
    );
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body["output"]["prediction"], expected_a[2]);
    small.signal("INT").unwrap();
    assert!(small
        .wait_exit(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    services.stop();
}

/// The processes whose node name (`EVOSPIKE_NODE_NAME`) is `name`.
fn node_pids(name: &str) -> Vec<u32> {
    let wanted = format!("EVOSPIKE_NODE_NAME={name}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
        .collect()
}

fn node_names(loaded: &Value) -> Vec<String> {
    serde_json::from_value(loaded["nodes"].clone()).unwrap_or_default()
}

/// Every node of `names` has ended (the service cleaned up after itself).
fn nodes_gone(names: &[String]) -> bool {
    names.iter().all(|n| node_pids(n).is_empty())
}

#[test]
fn a_distributed_model_answers_as_in_process_recovers_from_a_killed_node_and_cleans_up() {
    let work = tempfile::tempdir().unwrap();
    let (model, other) = (train(work.path(), 1), train(work.path(), 2));
    let services = Services::start(2);
    publish(&services.registry, "digits", &model);
    publish(&services.registry, "other", &other);
    let samples = holdout();

    // Loaded as layer nodes: one per layer, and the readout.
    let loaded = services.infer("/load_model/digits", &json!({"distributed": true}));
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    assert_eq!(loaded.body["distributed"], true);
    let nodes = node_names(&loaded.body);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes[2].ends_with("-readout"), "{nodes:?}");
    assert!(nodes.iter().all(|n| node_pids(n).len() == 1), "{nodes:?}");

    // Every held-out digit: the same prediction and scores as in process.
    let pixels: Vec<Value> = samples.iter().map(|s| json!({"pixels": s})).collect();
    let local = services.infer(
        "/batch_infer",
        &json!({"model_id": "digits", "inputs": pixels}),
    );
    let remote = services.infer(
        "/batch_infer",
        &json!({"model_id": "digits", "inputs": pixels, "config": {"distributed": true}}),
    );
    assert_eq!(local.status, 200, "{}", local.text);
    assert_eq!(remote.status, 200, "{}", remote.text);
    let outputs = |a: &Answer| a.body["outputs"].as_array().unwrap().clone();
    let (local, remote) = (outputs(&local), outputs(&remote));
    assert_eq!(local.len(), samples.len());
    for (i, (l, r)) in local.iter().zip(&remote).enumerate() {
        assert_eq!(l["prediction"], r["prediction"], "sample {i}");
        assert_eq!(l["scores"], r["scores"], "sample {i}");
    }
    let expected: Vec<u64> = local
        .iter()
        .map(|o| o["prediction"].as_u64().unwrap())
        .collect();

    // Concurrent clients share the pipeline without mixing their answers.
    let url = format!("{}/infer", services.inference);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (url, samples, expected) = (url.clone(), samples.clone(), expected.clone());
            std::thread::spawn(move || {
                for k in 0..10 {
                    let i = (c * 37 + k * 11) % samples.len();
                    let a = post(
                        &url,
                        &json!({"model_id": "digits", "inputs": {"pixels": samples[i]},
                                "config": {"distributed": true}}),
                    );
                    assert_eq!(a.status, 200, "{}", a.text);
                    assert_eq!(a.body["output"]["prediction"], expected[i], "sample {i}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }

    // What the layer nodes cannot take is a clear 400.
    let spikes = services.infer(
        "/infer",
        &json!({"model_id": "digits", "config": {"distributed": true},
                "inputs": {"spikes": {"steps": 25, "times": [0], "neurons": [1]}}}),
    );
    refused(&spikes, 400, "spike trains");
    let steps = services.infer(
        "/infer",
        &json!({"model_id": "digits", "inputs": {"pixels": samples[0]},
                "config": {"distributed": true, "steps": 5}}),
    );
    refused(&steps, 400, "config.steps");

    // A layer node killed while a batch is in flight: a clear 503, no hang.
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"pixels": samples[i % samples.len()]}))
        .collect();
    let in_flight = {
        let url = format!("{}/batch_infer", services.inference);
        let body = json!({"model_id": "digits", "inputs": many, "config": {"distributed": true}});
        std::thread::spawn(move || post(&url, &body))
    };
    wait_until(Duration::from_secs(20), || {
        services.metric("inference_queued_samples") > 0.0
    })
    .expect("the batch waits in the pipeline");
    let hidden = node_pids(&nodes[0]);
    let killed = Command::new("kill")
        .args(["-9", &hidden[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let failed = in_flight.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    refused(&failed, 503, &format!("node `{}`", nodes[0]));
    refused(&failed, 503, "SIGKILL");
    wait_until(Duration::from_secs(10), || nodes_gone(&nodes))
        .expect("a broken pipeline's other nodes are stopped");

    // The next request starts fresh nodes and answers right.
    let again = services.infer(
        "/infer",
        &json!({"model_id": "digits", "inputs": {"pixels": samples[3]},
                "config": {"distributed": true}}),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["output"]["prediction"], expected[3]);
    let listed = call("GET", &format!("{}/models", services.inference), None, None);
    let relaunched: Vec<String> = listed.body["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["distributed"] == true)
        .map(node_names)
        .unwrap();
    assert_eq!(relaunched.len(), 3);
    assert_ne!(relaunched, nodes);

    // Unloaded (evicted by two other models in a cache of two): nodes gone.
    for (model, body) in [("digits", json!({})), ("other", json!({}))] {
        let a = services.infer(&format!("/load_model/{model}"), &body);
        assert_eq!(a.status, 200, "{}", a.text);
    }
    wait_until(Duration::from_secs(10), || nodes_gone(&relaunched))
        .expect("an evicted distributed model's nodes end");

    // Shut down: the service stops the nodes of its distributed models.
    let last = services.infer("/load_model/other", &json!({"distributed": true}));
    assert_eq!(last.status, 200, "{}", last.text);
    let last = node_names(&last.body);
    assert!(last.iter().all(|n| node_pids(n).len() == 1), "{last:?}");
    services.stop();
    wait_until(Duration::from_secs(10), || nodes_gone(&last))
        .expect("the service's shutdown ends its nodes");
}
