//! Every documented curl example of docs/services.md, verbatim, through the
//! gateway: the `bash` blocks run in order in one shell, as the docs say they
//! do, with each service's documented address `http://localhost:800N/…` in its
//! gateway form `http://<gateway>/<service>/…` (and the gateway's own
//! `http://localhost:8000/…`, `curl http://localhost:8000/services/health`
//! among them). Lines that start servers (`evospike run …`, `evospike
//! launch …`) are left out: `launch/services.yaml` is running already.
//!
//! `curl` is the real one behind a wrapper on `PATH` that adds only
//! `-w '%{stderr}…'`, so every request's status is recorded: none may fail
//! to connect or answer 5xx, and the error answers are exactly the ones the
//! docs show.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};

/// Documented address → gateway path prefix.
const SERVICES: [(&str, &str); 5] = [
    ("http://localhost:8000", ""),
    ("http://localhost:8001", "/training"),
    ("http://localhost:8002", "/inference"),
    ("http://localhost:8003", "/registry"),
    ("http://localhost:8004", "/monitoring"),
];

/// Whether a documented line starts a server (left out: they are running).
fn starts_a_server(line: &str) -> bool {
    let command = line
        .split_whitespace()
        .find(|word| !word.contains('='))
        .unwrap_or("");
    let mut words = line.split_whitespace().skip_while(|w| w.contains('='));
    command == "evospike" && {
        words.next();
        matches!(words.next(), Some("run" | "launch"))
    }
}

/// The docs' bash blocks, in order, with the addresses in gateway form.
fn script(docs: &str, gateway: &str) -> String {
    let mut script = String::from("set -e\n");
    let mut in_block = false;
    for line in docs.lines() {
        if line.starts_with("```") {
            in_block = line == "```bash";
            continue;
        }
        if !in_block || starts_a_server(line) {
            continue;
        }
        let mut line = line.to_owned();
        for (documented, prefix) in SERVICES {
            line = line.replace(documented, &format!("{gateway}{prefix}"));
        }
        script.push_str(&line);
        script.push('\n');
    }
    script
}

#[test]
fn server_lines_are_told_from_examples() {
    assert!(starts_a_server("evospike run gateway --list-params"));
    assert!(starts_a_server(
        "MODEL_CACHE_SIZE=5 evospike run inference -p batching=true"
    ));
    assert!(starts_a_server(
        "evospike launch launch/services.yaml   # router"
    ));
    assert!(!starts_a_server(
        "evospike train --data builtin:digits --out m"
    ));
    assert!(!starts_a_server(
        "curl http://localhost:8000/services/health"
    ));
    let s = script(
        "x\n```bash\nevospike run router &\ncurl http://localhost:8003/models\n```\ncurl http://localhost:8001/no\n",
        "http://127.0.0.1:9",
    );
    assert_eq!(s, "set -e\ncurl http://127.0.0.1:9/registry/models\n");
}

#[test]
fn every_documented_curl_example_answers_through_the_gateway() {
    let data = tempfile::tempdir().unwrap();
    let router = loopback_endpoint();
    let mut launcher = Child::spawn(&mut evospike_testkit::services_launch(&router, data.path()))
        .expect("start evospike launch");
    let line = launcher
        .wait_for_line(
            |l| l.contains("(gateway) serving http://"),
            Duration::from_secs(60),
        )
        .expect("the gateway starts");
    let gateway = line
        .split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_until(Duration::from_secs(60), || {
        agent
            .get(&format!("{gateway}/services/health"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .is_some_and(|b| {
                b.contains("\"status\":\"healthy\"")
                    && ["registry", "inference", "training", "monitoring"]
                        .iter()
                        .all(|s| b.contains(&format!("\"service\":\"{s}\"")))
            })
    })
    .expect("every service is healthy behind the gateway");

    let work = data.path().join("shell");
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("curl");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec /usr/bin/curl -w '%{stderr}HTTP %{http_code} %{method} %{url_effective}\\n' \"$@\"\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&wrapper, permissions).unwrap();
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/services.md"))
            .unwrap();
    let script = script(&docs, &gateway);
    let evospike_dir = workspace_bin("evospike").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        evospike_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("timeout")
        .args(["600", "bash", "-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the examples ran: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- script\n{script}",
        output.status
    );

    // Every request answered, none with 5xx; the errors are the documented ones.
    let requests: Vec<(u16, String, String)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("HTTP "))
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let code = parts.next().unwrap().parse().unwrap();
            let method = parts.next().unwrap().to_owned();
            let url = parts.next().unwrap().replacen(&gateway, "", 1);
            (code, method, url)
        })
        .collect();
    let curls = script.matches("curl ").count();
    assert!(
        requests.len() >= curls - 2,
        "{} requests for {curls} curl lines: {stderr}",
        requests.len()
    );
    for (code, method, url) in &requests {
        assert!(
            (200..500).contains(code),
            "{method} {url} answered {code}\n{stderr}"
        );
    }
    let errors: Vec<String> = requests
        .iter()
        .filter(|(code, _, _)| *code >= 400)
        .map(|(code, method, url)| {
            // Job ids vary: keep the route's shape.
            let url = url
                .split('/')
                .map(|part| if part.len() >= 16 { "<id>" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            format!("{code} {method} {url}")
        })
        .collect();
    assert_eq!(
        errors,
        [
            "400 POST /inference/infer",
            "400 POST /training/train",
            "400 POST /training/train",
            "409 POST /training/jobs/<id>/cancel",
        ],
        "{stderr}"
    );
    // The gateway's health answer, and a prediction of the documented model.
    assert!(stdout.contains("\"status\":\"healthy\""), "{stdout}");
    assert!(stdout.contains("\"prediction\""), "{stdout}");
    assert!(stdout.contains("\"state\":\"ready\""), "{stdout}");

    launcher.signal("INT").unwrap();
    launcher
        .wait_exit(Duration::from_secs(20))
        .expect("launch ends");
}
