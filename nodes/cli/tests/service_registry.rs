//! `evospike run registry`: a node like any other (listed, healthy), serving
//! HTTP; `kill -9` in the middle of an upload, then a restart: the partial file
//! is gone, nothing of it is served, and the registry answers.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::{run, Router, DEADLINE};
use evospike_schemas::proto::{
    FetchFileReply, FetchFileRequest, GetModelRequest, ListModelsReply, ListModelsRequest,
    PublishRequest, RegistryModel, RegistryUpload, RegistryVersion,
};
use evospike_testkit::{wait_until, Child};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Starts `evospike run registry` on a free port; returns it and its base URL.
fn start_registry(router: &Router, data_dir: &Path) -> (Child, String) {
    let mut command: Command = router.command(&[
        "run",
        "registry",
        "-p",
        &format!("data_dir={}", data_dir.display()),
    ]);
    command
        .env("SERVICE_HOST", "127.0.0.1")
        .env("SERVICE_PORT", "0");
    let mut child = Child::spawn(&mut command).expect("spawn evospike run registry");
    let line = child
        .wait_for_line(|l| l.contains("serving http://"), DEADLINE)
        .expect("the registry announces its address");
    let url = line
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an URL in the log line")
        .to_owned();
    (child, url)
}

fn tmp_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("tmp")).map_or(0, |d| d.count())
}

#[test]
fn kill_9_during_an_upload_leaves_no_partial_file_and_the_registry_answers_after_a_restart() {
    let router = Router::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("registry");
    let (mut registry, url) = start_registry(&router, &data_dir);

    // A node like the others: listed on the bus.
    let nodes = run(&mut router.command(&["node", "list"]));
    assert!(nodes.stdout.contains("registry"), "{}", nodes.stdout);

    let reg = agent()
        .post(&format!("{url}/models/register"))
        .header("Content-Type", "application/json")
        .send(r#"{"model_id": "m", "name": "M", "version": "1"}"#)
        .unwrap();
    assert_eq!(reg.status().as_u16(), 201);

    let address = url.trim_start_matches("http://");
    let mut upload = TcpStream::connect(address).unwrap();
    write!(
        upload,
        "POST /models/m/upload?version=1&filename=weights.bin HTTP/1.1\r\nHost: {address}\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    upload.write_all(&[1u8; 400_000]).unwrap();
    assert!(
        wait_until(DEADLINE, || tmp_files(&data_dir) == 1).is_ok(),
        "the upload never reached the disk"
    );
    registry.signal("KILL").unwrap();
    assert!(
        registry.wait_exit(DEADLINE).is_some(),
        "kill -9 did not end it"
    );
    drop(upload);
    assert_eq!(
        tmp_files(&data_dir),
        1,
        "the partial file of the killed upload"
    );

    let (_registry, url) = start_registry(&router, &data_dir);
    assert_eq!(tmp_files(&data_dir), 0, "a restart clears partial uploads");
    let mut version = agent()
        .get(&format!("{url}/models/m/versions/1"))
        .call()
        .unwrap();
    assert_eq!(version.status().as_u16(), 200);
    let version: serde_json::Value =
        serde_json::from_str(&version.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(version["state"], "pending");
    assert_eq!(version["files"], serde_json::json!([]), "{version}");
    let download = agent()
        .get(&format!("{url}/models/m/download/weights.bin"))
        .call()
        .unwrap();
    assert_eq!(download.status().as_u16(), 404);

    // And the upload, done again in full, goes through.
    let again = agent()
        .post(&format!(
            "{url}/models/m/upload?version=1&filename=weights.bin"
        ))
        .send(&[1u8; 1000][..])
        .unwrap();
    assert_eq!(again.status().as_u16(), 201);
    let ready = agent()
        .post(&format!("{url}/models/m/versions/1/finalize"))
        .send("")
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let served = agent()
        .get(&format!("{url}/models/m/download/weights.bin"))
        .call()
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);

    // The same registry on the bus.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);
    let key = |method: &str| bus.keys().service("registry", method).unwrap();
    let listed: ListModelsReply = runtime
        .block_on(bus.request(&key("list_models"), &ListModelsRequest {}, DEADLINE))
        .expect("list_models over the bus");
    assert_eq!(listed.models.len(), 1);
    assert_eq!(listed.models[0].model_id, "m");
    assert_eq!(listed.models[0].latest, "1");
    let fetched: FetchFileReply = runtime
        .block_on(bus.request(
            &key("fetch_file"),
            &FetchFileRequest {
                model_id: "m".into(),
                filename: "weights.bin".into(),
                ..Default::default()
            },
            DEADLINE,
        ))
        .expect("fetch_file over the bus");
    assert_eq!(fetched.content, vec![1u8; 1000]);
    assert_eq!(fetched.version, "1");
    assert_eq!(fetched.sha256.len(), 64);
    let unknown = runtime.block_on(bus.request::<_, RegistryModel>(
        &key("get_model"),
        &GetModelRequest {
            model_id: "nope".into(),
        },
        DEADLINE,
    ));
    let err = unknown.expect_err("an unknown model is an error reply");
    assert!(err.to_string().contains("no model nope"), "{err}");

    // Publishing over the bus: register, files and finalize in one request.
    let published: RegistryVersion = runtime
        .block_on(bus.request(
            &key("publish"),
            &PublishRequest {
                model_id: "m".into(),
                name: "M".into(),
                version: "2".into(),
                metadata_json: r#"{"test_accuracy": 0.9}"#.into(),
                files: vec![RegistryUpload {
                    name: "weights.bin".into(),
                    content: b"two".to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            DEADLINE,
        ))
        .expect("publish over the bus");
    assert_eq!(published.state, "ready");
    let latest = agent()
        .get(&format!("{url}/models/m/download/weights.bin"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(latest, b"two");
    let wrong = runtime.block_on(bus.request::<_, RegistryVersion>(
        &key("publish"),
        &PublishRequest {
            model_id: "m".into(),
            name: "M".into(),
            version: "3".into(),
            files: vec![RegistryUpload {
                name: "weights.bin".into(),
                content: b"three".to_vec(),
                sha256: "0".repeat(64),
            }],
            ..Default::default()
        },
        DEADLINE,
    ));
    let err = wrong.expect_err("a wrong sha256 is refused");
    assert!(err.to_string().contains("sha256"), "{err}");
    let v3 = agent()
        .get(&format!("{url}/models/m/versions/3"))
        .call()
        .unwrap();
    assert_eq!(
        v3.status().as_u16(),
        404,
        "a refused publish registers nothing"
    );
}
