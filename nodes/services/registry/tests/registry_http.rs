//! The registry over HTTP: the documented example verbatim, the life of a
//! version, downloads, bad input of every kind, and a restart.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use sha2::{Digest, Sha256};
use support::{get, post, put, wait_until, write_model, Server, BODY_LIMIT, MAX_UPLOAD};

/// The body of the documented example, verbatim.
const DOC_REGISTER: &str = r#"{
"model_id": "vision_encoder_v1",
"name": "Vision Encoder",
"version": "1.0.0",
"model_type": "vision",
"framework": "pytorch",
"created_at": "2025-12-20T12:00:00Z"
}"#;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn upload(server: &Server, model: &str, version: &str, file: &str, body: &[u8]) -> support::Reply {
    post(
        &server.url(&format!(
            "/models/{model}/upload?version={version}&filename={file}"
        )),
        "application/octet-stream",
        body,
    )
}

#[test]
fn the_documented_register_example_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let r = post(
        &server.url("/models/register"),
        "application/json",
        DOC_REGISTER.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let json = r.json();
    assert_eq!(json["model_id"], "vision_encoder_v1");
    assert_eq!(json["version"], "1.0.0");
    assert_eq!(json["state"], "pending");
    assert_eq!(json["framework"], "pytorch");
    assert!(r.header("x-request-id").is_some());

    // Again, unchanged: idempotent. With other fields: a conflict.
    let again = post(
        &server.url("/models/register"),
        "application/json",
        DOC_REGISTER.as_bytes(),
    );
    assert_eq!(again.status, 200);
    let other = DOC_REGISTER.replace("Vision Encoder", "Another");
    post(
        &server.url("/models/register"),
        "application/json",
        other.as_bytes(),
    )
    .assert_error(409);

    // The model exists but nothing is ready: listed nowhere, served nowhere, and
    // the answer says what is missing.
    let model = get(&server.url("/models/vision_encoder_v1"), &[]);
    assert_eq!(model.status, 200);
    assert_eq!(model.json()["versions"], serde_json::json!([]));
    assert_eq!(
        get(&server.url("/models"), &[]).json()["models"],
        serde_json::json!([])
    );
    let missing = get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[],
    )
    .assert_error(404);
    assert!(missing.contains("no ready version"), "{missing}");
}

#[test]
fn a_version_goes_pending_ready_and_is_then_immutable_and_served_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    post(
        &server.url("/models/register"),
        "application/json",
        DOC_REGISTER.as_bytes(),
    );
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let sum = sha(&content);

    let up = post(
        &server.url(&format!(
            "/models/vision_encoder_v1/upload?version=1.0.0&filename=model.pt&sha256={sum}"
        )),
        "application/octet-stream",
        &content,
    );
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    assert_eq!(up.json()["sha256"], sum.as_str());
    assert_eq!(up.json()["size"], 10_000);
    // Pending: not served yet.
    get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[],
    )
    .assert_error(404);

    let fin = post(
        &server.url("/models/vision_encoder_v1/versions/1.0.0/finalize"),
        "application/json",
        b"",
    );
    assert_eq!(fin.status, 200, "{}", String::from_utf8_lossy(&fin.body));
    assert_eq!(fin.json()["state"], "ready");

    // Immutable now.
    upload(&server, "vision_encoder_v1", "1.0.0", "model.pt", b"new").assert_error(409);
    post(
        &server.url("/models/vision_encoder_v1/versions/1.0.0/finalize"),
        "application/json",
        b"",
    )
    .assert_error(409);

    // Listed, and served with its hash.
    let list = get(&server.url("/models"), &[]).json();
    assert_eq!(list["models"][0]["model_id"], "vision_encoder_v1");
    assert_eq!(list["models"][0]["latest"], "1.0.0");
    let down = get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[],
    );
    assert_eq!(down.status, 200);
    assert_eq!(down.body, content);
    assert_eq!(down.header("x-content-sha256"), Some(sum.as_str()));
    let etag = format!("\"{sum}\"");
    assert_eq!(down.header("etag"), Some(etag.as_str()));
    assert_eq!(down.header("accept-ranges"), Some("bytes"));

    let part = get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[("Range", "bytes=100-199")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &content[100..200]);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/10000"));
    let tail = get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[("Range", "bytes=-10")],
    );
    assert_eq!(tail.body, &content[9990..]);
    get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[("Range", "bytes=20000-")],
    )
    .assert_error(416);
    let cached = get(
        &server.url("/models/vision_encoder_v1/download/model.pt"),
        &[("If-None-Match", etag.as_str())],
    );
    assert_eq!(cached.status, 304);

    // Aliases point at ready versions and move.
    let alias = put(
        &server.url("/models/vision_encoder_v1/aliases/production"),
        r#"{"version": "1.0.0"}"#,
    );
    assert_eq!(
        alias.status,
        200,
        "{}",
        String::from_utf8_lossy(&alias.body)
    );
    let by_alias = get(
        &server.url("/models/vision_encoder_v1/download/model.pt?alias=production"),
        &[],
    );
    assert_eq!(by_alias.body, content);
    post(
        &server.url("/models/register"),
        "application/json",
        DOC_REGISTER.replace("1.0.0", "1.1.0").as_bytes(),
    );
    put(
        &server.url("/models/vision_encoder_v1/aliases/production"),
        r#"{"version": "1.1.0"}"#,
    )
    .assert_error(409);
    get(
        &server.url("/models/vision_encoder_v1/download/model.pt?alias=staging"),
        &[],
    )
    .assert_error(404);
}

#[test]
fn an_evospike_model_is_checked_when_it_is_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let model_dir = tempfile::tempdir().unwrap();
    write_model(model_dir.path());
    let manifest = std::fs::read(model_dir.path().join("model.json")).unwrap();
    let weights = std::fs::read(model_dir.path().join("weights.safetensors")).unwrap();
    let register = |version: &str| {
        let body = serde_json::json!({
            "model_id": "digits", "name": "Digits", "version": version, "framework": "evospike"
        });
        let r = post(
            &server.url("/models/register"),
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 201);
    };

    register("1");
    assert_eq!(
        upload(&server, "digits", "1", "model.json", &manifest).status,
        201
    );
    assert_eq!(
        upload(&server, "digits", "1", "weights.safetensors", &weights).status,
        201
    );
    let fin = post(
        &server.url("/models/digits/versions/1/finalize"),
        "application/json",
        b"",
    );
    assert_eq!(fin.status, 200, "{}", String::from_utf8_lossy(&fin.body));
    let down = get(
        &server.url("/models/digits/download/weights.safetensors"),
        &[],
    );
    assert_eq!(down.body, weights);

    // Weights that do not match the manifest: the version fails, saying why, and
    // is never served.
    register("2");
    upload(&server, "digits", "2", "model.json", &manifest);
    upload(
        &server,
        "digits",
        "2",
        "weights.safetensors",
        b"not safetensors",
    );
    let err = post(
        &server.url("/models/digits/versions/2/finalize"),
        "application/json",
        b"",
    )
    .assert_error(400);
    assert!(err.contains("does not load"), "{err}");
    let v2 = get(&server.url("/models/digits/versions/2"), &[]).json();
    assert_eq!(v2["state"], "failed");
    get(
        &server.url("/models/digits/download/model.json?version=2"),
        &[],
    )
    .assert_error(404);
    assert_eq!(
        get(&server.url("/models/digits"), &[]).json()["latest"],
        "1"
    );

    // Only a manifest: failed too.
    register("3");
    upload(&server, "digits", "3", "model.json", &manifest);
    let err = post(
        &server.url("/models/digits/versions/3/finalize"),
        "application/json",
        b"",
    )
    .assert_error(400);
    assert!(err.contains("needs both"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_4xx_in_the_one_error_shape_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let reg = server.url("/models/register");

    let e = post(&reg, "application/json", b"{\"model_id\": ").assert_error(400);
    assert!(e.contains("invalid JSON"), "{e}");
    let e = post(
        &reg,
        "application/json",
        br#"{"model_id": "m", "version": "1"}"#,
    )
    .assert_error(400);
    assert!(e.contains("missing field `name`"), "{e}");
    let e = post(
        &reg,
        "application/json",
        br#"{"model_id": 7, "name": "n", "version": "1"}"#,
    )
    .assert_error(400);
    assert!(e.contains("invalid type"), "{e}");
    let e = post(
        &reg,
        "application/json",
        br#"{"model_id": "m", "name": "n", "version": "1", "colour": 1}"#,
    )
    .assert_error(400);
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = post(
        &reg,
        "application/json",
        br#"{"model_id": "../etc", "name": "n", "version": "1"}"#,
    )
    .assert_error(400);
    assert!(e.contains("model_id"), "{e}");
    let big = format!(
        r#"{{"model_id": "m", "name": "n", "version": "1", "description": "{}"}}"#,
        "x".repeat(BODY_LIMIT)
    );
    post(&reg, "application/json", big.as_bytes()).assert_error(413);

    get(&server.url("/models/nope"), &[]).assert_error(404);
    get(&server.url("/models/nope/versions/1"), &[]).assert_error(404);
    get(&server.url("/models/nope/download/model.json"), &[]).assert_error(404);
    upload(&server, "nope", "1", "f", b"x").assert_error(404);
    get(&server.url("/no/such/endpoint"), &[]).assert_error(404);
    assert_eq!(
        get(&server.url("/models"), &[]).json()["models"],
        serde_json::json!([])
    );

    post(
        &reg,
        "application/json",
        br#"{"model_id": "m", "name": "n", "version": "1"}"#,
    );
    upload(&server, "m", "2", "f", b"x").assert_error(404);
    let e = post(
        &server.url("/models/m/upload?version=1"),
        "application/octet-stream",
        b"x",
    )
    .assert_error(400);
    assert!(e.contains("filename"), "{e}");
    upload(&server, "m", "1", ".hidden", b"x").assert_error(400);
    let e = post(
        &server.url(&format!(
            "/models/m/upload?version=1&filename=f&sha256={}",
            sha(b"other")
        )),
        "application/octet-stream",
        b"content",
    )
    .assert_error(400);
    assert!(e.contains("sha256"), "{e}");
    upload(&server, "m", "1", "f", &vec![0; MAX_UPLOAD as usize + 1]).assert_error(413);
    let e = post(
        &server.url("/models/m/versions/1/finalize"),
        "application/json",
        b"",
    )
    .assert_error(400);
    assert!(e.contains("no file"), "{e}");

    // None of it left a file or changed the version.
    wait_until("no temporary file is left", || {
        server.registry.blobs().pending_files() == 0
    });
    let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
    assert_eq!(blobs, 0);
}

#[test]
fn an_upload_cut_off_midway_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    post(
        &server.url("/models/register"),
        "application/json",
        br#"{"model_id": "m", "name": "n", "version": "1"}"#,
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /models/m/upload?version=1&filename=f HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000\r\n\r\n",
        server.addr
    )
    .unwrap();
    stream.write_all(&[7u8; 5000]).unwrap();
    stream.flush().unwrap();
    wait_until("the upload has started", || {
        server.registry.blobs().pending_files() == 1
    });
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    wait_until("the partial file is gone", || {
        server.registry.blobs().pending_files() == 0
    });
    let version = get(&server.url("/models/m/versions/1"), &[]).json();
    assert_eq!(version["files"], serde_json::json!([]), "{version}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
        0
    );
}

#[test]
fn a_restart_keeps_models_versions_files_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = Server::start(dir.path());
        post(
            &server.url("/models/register"),
            "application/json",
            DOC_REGISTER.as_bytes(),
        );
        upload(
            &server,
            "vision_encoder_v1",
            "1.0.0",
            "model.pt",
            b"weights",
        );
        post(
            &server.url("/models/vision_encoder_v1/versions/1.0.0/finalize"),
            "application/json",
            b"",
        );
        put(
            &server.url("/models/vision_encoder_v1/aliases/production"),
            r#"{"version": "1.0.0"}"#,
        );
        post(
            &server.url("/models/register"),
            "application/json",
            DOC_REGISTER.replace("1.0.0", "2.0.0").as_bytes(),
        );
    }
    let server = Server::start(dir.path());
    let model = get(&server.url("/models/vision_encoder_v1"), &[]).json();
    assert_eq!(model["latest"], "1.0.0");
    assert_eq!(model["aliases"]["production"], "1.0.0");
    assert_eq!(
        get(&server.url("/models/vision_encoder_v1/versions/2.0.0"), &[]).json()["state"],
        "pending"
    );
    let down = get(
        &server.url("/models/vision_encoder_v1/download/model.pt?alias=production"),
        &[],
    );
    assert_eq!(down.body, b"weights");
}

#[test]
fn health_metrics_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let health = get(&server.url("/health"), &[]);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "healthy");
    assert_eq!(health.json()["service"], "registry");

    let mine = get(&server.url("/models/nope"), &[("x-request-id", "trace-42")]);
    assert_eq!(mine.header("x-request-id"), Some("trace-42"));
    assert_eq!(mine.json()["request_id"], "trace-42");

    let metrics = get(&server.url("/metrics"), &[]);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains(
            "http_requests_total{service=\"registry\",method=\"GET\",route=\"/models/{model_id}\",status=\"404\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn a_chunked_upload_that_grows_past_the_limit_gets_413_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    post(
        &server.url("/models/register"),
        "application/json",
        br#"{"model_id": "m", "name": "n", "version": "1"}"#,
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /models/m/upload?version=1&filename=f HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let chunk = vec![b'z'; 16 * 1024];
    let mut sent = 0u64;
    // No Content-Length: the limit can only be found while the body streams.
    while sent <= MAX_UPLOAD {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break; // the server has answered and closed
        }
        sent += chunk.len() as u64;
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    // The server may close while we still send (a reset can swallow its answer),
    // so the 413 is checked in the metrics as well.
    if stream.read_to_string(&mut answer).is_ok() && !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"request_id\""), "{answer}");
    }
    wait_until("the 413 is counted", || {
        String::from_utf8(get(&server.url("/metrics"), &[]).body)
            .unwrap()
            .contains("route=\"/models/{model_id}/upload\",status=\"413\"} 1")
    });
    wait_until("no temporary file is left", || {
        server.registry.blobs().pending_files() == 0
    });
    let version = get(&server.url("/models/m/versions/1"), &[]).json();
    assert_eq!(version["files"], serde_json::json!([]), "{version}");
}

#[test]
fn a_restart_removes_files_no_version_refers_to_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = || std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
    {
        let server = Server::start(dir.path());
        post(
            &server.url("/models/register"),
            "application/json",
            br#"{"model_id": "m", "name": "n", "version": "1"}"#,
        );
        assert_eq!(upload(&server, "m", "1", "f", b"first").status, 201);
        assert_eq!(upload(&server, "m", "1", "f", b"second").status, 201);
        assert_eq!(upload(&server, "m", "1", "g", b"kept").status, 201);
        assert_eq!(blobs(), 3, "the replaced file is still on disk");
    }
    let server = Server::start(dir.path());
    assert_eq!(blobs(), 2, "the replaced file is gone");
    post(
        &server.url("/models/m/versions/1/finalize"),
        "application/json",
        b"",
    );
    assert_eq!(
        get(&server.url("/models/m/download/f"), &[]).body,
        b"second"
    );
    assert_eq!(get(&server.url("/models/m/download/g"), &[]).body, b"kept");
}

#[test]
fn a_stalled_upload_is_dropped_with_408_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    post(
        &server.url("/models/register"),
        "application/json",
        br#"{"model_id": "m", "name": "n", "version": "1"}"#,
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /models/m/upload?version=1&filename=f HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000\r\n\r\n",
        server.addr
    )
    .unwrap();
    stream.write_all(&[7u8; 100]).unwrap();
    // Then nothing: the server gives up after UPLOAD_IDLE and says so.
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("stalled"), "{answer}");
    wait_until("the partial file is gone", || {
        server.registry.blobs().pending_files() == 0
    });
    let version = get(&server.url("/models/m/versions/1"), &[]).json();
    assert_eq!(version["files"], serde_json::json!([]), "{version}");
}
