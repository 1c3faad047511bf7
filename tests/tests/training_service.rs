//! The training service, started with the router and the registry from
//! `launch/services.yaml`: the documented curl examples as written, bad input on
//! every endpoint, a job that trains and lands in the registry, cancelling
//! pending and running jobs, `kill -9` of the service mid-job (the job resumes
//! from its checkpoint), and a worker that crashes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};
use serde_json::{json, Value};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The URL in a `… serving http://ADDR …` log line.
fn url_in(line: &str) -> String {
    line.split("serving ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL in the log line")
        .to_owned()
}

fn serving(service: &'static str) -> impl Fn(&str) -> bool {
    move |l: &str| l.starts_with(&format!("[{service}")) && l.contains("serving http://")
}

/// The services of `launch/services.yaml` on loopback, with their data in a
/// temporary directory.
struct Services {
    launcher: Child,
    router: String,
    training: String,
    registry: String,
    http: ureq::Agent,
}

impl Services {
    /// Starts the services with their data under `data`.
    fn start(max_running: u32, data: &Path) -> Services {
        let router = loopback_endpoint();
        let mut command = evospike_testkit::services_launch(&router, data);
        command.args(["--arg", &format!("max_running={max_running}")]);
        let mut launcher = Child::spawn(&mut command).expect("start evospike launch");
        let registry = url_in(
            &launcher
                .wait_for_line(serving("registry"), Duration::from_secs(60))
                .expect("the registry starts"),
        );
        let training = url_in(
            &launcher
                .wait_for_line(serving("training"), Duration::from_secs(60))
                .expect("the training service starts"),
        );
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Services {
            launcher,
            router,
            training,
            registry,
            http,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let url = format!("{}{path}", self.training);
        let mut reply = match (method, body) {
            ("GET", _) => self.http.get(&url).call(),
            (_, Some(body)) => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body),
            (_, None) => self.http.post(&url).send_empty(),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = reply.status().as_u16();
        let text = reply.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Sends `request` as written and returns the whole answer.
    fn raw(&self, request: &str) -> String {
        use std::io::{Read as _, Write as _};
        let addr = self.training.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    fn submit(&self, body: &Value) -> String {
        let (status, job) = self.call("POST", "/train", Some(&body.to_string()));
        assert_eq!(status, 201, "{job}");
        job["job_id"].as_str().unwrap().to_owned()
    }

    fn job(&self, id: &str) -> Value {
        let (status, job) = self.call("GET", &format!("/jobs/{id}"), None);
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Waits until job `id` satisfies `done`, and returns it.
    fn wait_job(&mut self, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let waited = wait_until(timeout, || {
            last = self.job(id);
            done(&last)
        });
        assert!(
            waited.is_ok(),
            "job {id} never got there: {last}\n{}",
            self.launcher.output().join("\n")
        );
        last
    }

    /// The process of the node called `name`, a child of the launcher.
    fn node_pid(&self, name: &str) -> u32 {
        children(self.launcher.id())
            .into_iter()
            .find(|(_, cmd)| {
                cmd.contains(&format!("--name\0{name}\0")) || cmd.contains(&format!("run\0{name}"))
            })
            .unwrap_or_else(|| panic!("no {name} node among the launcher's children"))
            .0
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if self.launcher.wait_exit(Duration::ZERO).is_some() {
            return;
        }
        let _ = self.launcher.signal("INT");
        let _ = self.launcher.wait_exit(Duration::from_secs(15));
    }
}

/// `(pid, command line with NUL separators)` of every child of `parent`.
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmd).into_owned()));
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// The worker processes of the training node `training_pid`.
fn workers(training_pid: u32) -> Vec<u32> {
    children(training_pid)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("train\0--json"))
        .map(|(pid, _)| pid)
        .collect()
}

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

/// A digits job of `epochs` epochs on a tiny network.
fn digits(epochs: u32) -> Value {
    json!({
        "model_type": "classifier",
        "dataset_path": "builtin:digits",
        "config": {"epochs": epochs, "batch_size": 32, "hidden": [32], "steps": 10, "threads": 1},
        "learning_rate": 0.005
    })
}

fn state(job: &Value) -> &str {
    job["state"].as_str().unwrap_or_default()
}

fn epoch(job: &Value) -> u64 {
    job["progress"]["epoch"].as_u64().unwrap_or(0)
}

/// The `bash` blocks with a `curl` in docs/services.md's training section.
fn documented_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(repo("docs/services.md")).unwrap();
    let start = doc
        .find("## Training (port 8001)")
        .expect("a training section");
    let section = &doc[start..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    section
        .split("```bash\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .filter(|block| block.contains("curl "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_documented_examples_run_as_written() {
    let data = tempfile::tempdir().unwrap();
    let services = Services::start(1, data.path());
    let examples = documented_examples();
    const END: &str = "@@end-of-example";
    let script: String = examples
        .iter()
        .map(|e| {
            let e = e
                .replace("http://localhost:8001", &services.training)
                .replace("http://localhost:8003", &services.registry);
            format!("{e}\necho\necho {END}\n")
        })
        .collect();
    let mut shell = Child::spawn(Command::new("bash").args(["-c", &script])).unwrap();
    let status = shell
        .wait_exit(Duration::from_secs(180))
        .expect("the examples end");
    let output = shell.output().join("\n");
    assert!(status.success(), "{output}");
    let outputs: Vec<&str> = output.split(END).map(str::trim).collect();
    let json = |i: usize| -> Value {
        let text = outputs[i]
            .lines()
            .rfind(|l| l.starts_with('{'))
            .unwrap_or("");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("example {i}: {e}: {}", outputs[i]))
    };
    // One check per example, in the documented order; a new example needs its own.
    assert_eq!(examples.len(), 8, "{examples:#?}");
    let e = json(0)["error"].as_str().unwrap().to_owned();
    assert!(
        e.contains("model_type `spiking_lm` is not trained here") && e.contains("classifier"),
        "{e}"
    );
    let e = json(1)["error"].as_str().unwrap().to_owned();
    assert!(e.contains("`/data/training_set` cannot be read"), "{e}");
    let job_id = outputs[2].to_owned();
    assert!(
        job_id.len() == 20 && job_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "{job_id}"
    );
    assert_eq!(json(3)["job_id"], job_id.as_str());
    let succeeded = json(4);
    let listed = succeeded["jobs"].as_array().unwrap();
    assert!(
        listed.iter().all(|j| state(j) == "SUCCEEDED"),
        "{succeeded}"
    );
    let job = listed
        .iter()
        .find(|j| j["job_id"] == job_id.as_str())
        .expect("the job is listed");
    assert_eq!(job["model_id"], "digits-classifier");
    assert_eq!(job["model_version"], "1.0.0");
    assert_eq!(epoch(job), 3);
    assert_eq!(job["progress"]["loss_curve"].as_array().unwrap().len(), 3);
    let model = json(5);
    let version = &model["versions"][0];
    assert_eq!(version["state"], "ready");
    let test_accuracy = version["metadata"]["metrics"]["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!(test_accuracy > 0.5, "{model}");
    assert_eq!(
        Some(test_accuracy),
        job["progress"]["test_accuracy"].as_f64(),
        "the job's last test accuracy is the registered one"
    );
    let provenance = &version["metadata"]["provenance"];
    assert_eq!(provenance["job_id"], job_id.as_str());
    assert_eq!(provenance["dataset_path"], "builtin:digits");
    assert_eq!(provenance["learner"], "SurrogateGradient");
    assert_eq!(provenance["params"]["hidden"], json!([32]));
    assert!(provenance["evospike_version"].is_string(), "{provenance}");
    let cancelled = json(6);
    assert_eq!(state(&cancelled), "CANCELLED", "{cancelled}");
    let e = json(7)["error"].as_str().unwrap().to_owned();
    assert!(e.contains("already SUCCEEDED"), "{e}");
}

#[test]
fn bad_input_is_refused_on_every_endpoint_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let services = Services::start(1, data.path());
    let bad_train: Vec<(String, u16, &str)> = vec![
        ("{\"model_type\": ".into(), 400, "invalid JSON body"),
        (r#"{"dataset_path": "builtin:digits"}"#.into(), 400, "model_type"),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "config": {"epochs": "ten"}}"#.into(),
            400,
            "config.epochs",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "colour": 1}"#.into(),
            400,
            "colour",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "learner": "Backprop"}"#.into(),
            400,
            "learner `Backprop`",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "params": {"momentum": "0.9"}}"#.into(),
            400,
            "momentum",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "config": {"epochs": 0}}"#.into(),
            400,
            "config.epochs must be at least 1",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "config": {"epochs": -3}}"#.into(),
            400,
            "config.epochs",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "learning_rate": -0.1}"#.into(),
            400,
            "learning_rate",
        ),
        (
            r#"{"model_type": "classifier", "dataset_path": "builtin:digits", "params": {"hidden": "[0]"}}"#.into(),
            400,
            "hidden",
        ),
    ];
    for (body, status, needle) in &bad_train {
        let (got, reply) = services.call("POST", "/train", Some(body));
        let shown = &body[..body.len().min(120)];
        assert_eq!(got, *status, "{shown}: {reply}");
        let error = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: {reply}"));
        assert!(error.contains(needle), "{shown}: {error}");
        assert!(reply["request_id"].is_string(), "{reply}");
    }
    // A body past the limit (1 MiB) is refused from its Content-Length, unread.
    let answer = services.raw(&format!(
        "POST /train HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
        2 << 20
    ));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"request_id\""), "{answer}");
    for (method, path, status, needle) in [
        (
            "GET",
            "/jobs/0000000000000-000000",
            404,
            "no job 0000000000000-000000",
        ),
        ("POST", "/jobs/0000000000000-000000/cancel", 404, "no job"),
        ("GET", "/jobs?state=DONE", 400, "state `DONE`"),
        ("GET", "/jobs?limit=3", 400, "limit"),
        ("GET", "/train", 405, ""),
    ] {
        let (got, reply) = services.call(method, path, None);
        assert_eq!(got, status, "{method} {path}: {reply}");
        if !needle.is_empty() {
            assert!(reply["error"].as_str().unwrap().contains(needle), "{reply}");
        }
    }
    // Nothing of that made a job.
    assert_eq!(
        services.call("GET", "/jobs", None),
        (200, json!({"jobs": []}))
    );

    // A submission_id: the same body again is the same job; another body is a conflict.
    let mut body = digits(2);
    body["submission_id"] = json!("once");
    let (status, first) = services.call("POST", "/train", Some(&body.to_string()));
    assert_eq!(status, 201, "{first}");
    let (status, again) = services.call("POST", "/train", Some(&body.to_string()));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job_id"], first["job_id"]);
    body["learning_rate"] = json!(0.01);
    let (status, reply) = services.call("POST", "/train", Some(&body.to_string()));
    assert_eq!(status, 409, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("once"), "{reply}");
    let (_, jobs) = services.call("GET", "/jobs", None);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
}

#[test]
fn pending_and_running_jobs_are_cancelled_and_a_freed_slot_is_used() {
    let data = tempfile::tempdir().unwrap();
    let mut services = Services::start(1, data.path());
    let running = services.submit(&digits(5000));
    services.wait_job(&running, Duration::from_secs(60), |j| epoch(j) >= 1);
    let pending = services.submit(&digits(5000));
    assert_eq!(state(&services.job(&pending)), "PENDING");

    let (status, job) = services.call("POST", &format!("/jobs/{pending}/cancel"), None);
    assert_eq!((status, state(&job)), (200, "CANCELLED"), "{job}");
    assert_eq!(job["attempts"], 0, "a cancelled pending job never starts");

    let training = services.node_pid("training");
    let worker = workers(training);
    assert_eq!(worker.len(), 1, "one worker runs the running job");
    let (status, job) = services.call("POST", &format!("/jobs/{running}/cancel"), None);
    assert_eq!((status, state(&job)), (200, "CANCELLED"), "{job}");
    assert_eq!(job["error"], "cancelled by request");
    // The worker stops after its batch (SIGINT), well within the grace period.
    wait_until(Duration::from_secs(10), || !alive(worker[0])).expect("the worker stops");
    let (status, reply) = services.call("POST", &format!("/jobs/{running}/cancel"), None);
    assert_eq!(status, 409, "{reply}");

    // Final states stay; the freed slot trains the next job.
    let next = services.submit(&digits(2));
    let done = services.wait_job(&next, Duration::from_secs(60), |j| state(j) == "SUCCEEDED");
    assert_eq!(done["attempts"], 1);
    assert_eq!(state(&services.job(&running)), "CANCELLED");
    assert_eq!(state(&services.job(&pending)), "CANCELLED");
    let (_, cancelled) = services.call("GET", "/jobs?state=CANCELLED", None);
    assert_eq!(
        cancelled["jobs"].as_array().unwrap().len(),
        2,
        "{cancelled}"
    );
}

#[test]
fn a_job_resumes_from_its_checkpoint_after_the_service_is_killed() {
    let data = tempfile::tempdir().unwrap();
    let mut services = Services::start(1, data.path());
    let mut body = digits(60);
    body["model_id"] = json!("resumed");
    let id = services.submit(&body);
    services.wait_job(&id, Duration::from_secs(60), |j| epoch(j) >= 2);
    let training = services.node_pid("training");
    let worker = workers(training);
    assert_eq!(worker.len(), 1);

    kill9(training);
    // The worker dies with the service; the launcher starts the service again.
    wait_until(Duration::from_secs(10), || !alive(worker[0]))
        .expect("the worker dies with the service");
    services.training = url_in(
        &services
            .launcher
            .wait_for_line(serving("training"), Duration::from_secs(60))
            .expect("the training service is started again"),
    );
    let job = services.wait_job(&id, Duration::from_secs(120), |j| {
        matches!(state(j), "SUCCEEDED" | "FAILED" | "CANCELLED")
    });
    assert_eq!(state(&job), "SUCCEEDED", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    // Epoch 2 was reported; its checkpoint follows the report, so the job
    // resumes from epoch 1 or later.
    let resumed = job["resumed_from_epoch"].as_u64().unwrap();
    assert!((1..60).contains(&resumed), "{job}");
    assert_eq!(epoch(&job), 60, "{job}");
    assert_eq!(
        job["progress"]["loss_curve"].as_array().unwrap().len(),
        60,
        "{job}"
    );
    let mut model = services
        .http
        .get(&format!("{}/models/resumed", services.registry))
        .call()
        .unwrap();
    assert_eq!(model.status().as_u16(), 200);
    let model: Value = serde_json::from_str(&model.body_mut().read_to_string().unwrap()).unwrap();
    let provenance = &model["versions"][0]["metadata"]["provenance"];
    assert_eq!(provenance["attempts"], 2, "{model}");
    assert_eq!(provenance["resumed_from_epoch"], resumed, "{model}");
}

#[test]
fn a_crashing_worker_fails_its_job_and_the_service_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let mut services = Services::start(1, data.path());
    let id = services.submit(&digits(5000));
    services.wait_job(&id, Duration::from_secs(60), |j| epoch(j) >= 1);
    let training = services.node_pid("training");
    let worker = workers(training);
    assert_eq!(worker.len(), 1);
    kill9(worker[0]);
    let job = services.wait_job(&id, Duration::from_secs(30), |j| state(j) == "FAILED");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("killed by signal 9 (SIGKILL)"), "{error}");
    assert_eq!(
        services.node_pid("training"),
        training,
        "the service did not restart"
    );
    let (status, _) = services.call("GET", "/health", None);
    assert_eq!(status, 200);
    let next = services.submit(&digits(2));
    services.wait_job(&next, Duration::from_secs(60), |j| state(j) == "SUCCEEDED");
}

#[test]
fn a_job_resumes_after_the_services_are_stopped_and_started_again() {
    let data = tempfile::tempdir().unwrap();
    let mut services = Services::start(1, data.path());
    let id = services.submit(&digits(60));
    services.wait_job(&id, Duration::from_secs(60), |j| epoch(j) >= 2);
    services.launcher.signal("INT").unwrap();
    let status = services.launcher.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        services.launcher.output().join("\n")
    );
    drop(services);

    // Stopped, the job stays RUNNING (its worker checkpointed); started again, it resumes.
    let mut services = Services::start(1, data.path());
    let job = services.wait_job(&id, Duration::from_secs(120), |j| {
        matches!(state(j), "SUCCEEDED" | "FAILED" | "CANCELLED")
    });
    assert_eq!(state(&job), "SUCCEEDED", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(job["resumed_from_epoch"].as_u64().unwrap() >= 2, "{job}");
    assert_eq!(epoch(&job), 60);
}

async fn open_bus(router: &str) -> evospike_bus::Bus {
    let config =
        evospike_bus::BusConfig::peer(&["tcp/127.0.0.1:0".to_string()], &[router.to_string()]);
    for _ in 0..200 {
        if let Ok(bus) = evospike_bus::Bus::open(config.clone()).await {
            return bus;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot reach the router at {router}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_methods_answer_and_progress_is_published() {
    use evospike_bus::BusError;
    use evospike_schemas::proto::{
        CancelJobRequest, ErrorCode, GetJobRequest, JobState, ListJobsReply, ListJobsRequest,
        TrainConfig, TrainJob, TrainRequest,
    };
    let data = tempfile::tempdir().unwrap();
    let services = Services::start(1, data.path());
    let bus = open_bus(&services.router).await;
    let key = |method: &str| bus.keys().service("training", method).unwrap();
    let progress = bus
        .message_subscriber::<TrainJob>(&key("progress"))
        .unwrap();
    let timeout = Duration::from_secs(10);

    let refused = bus
        .request::<_, TrainJob>(
            &key("train"),
            &TrainRequest {
                model_type: "spiking_lm".into(),
                dataset_path: "builtin:digits".into(),
                ..Default::default()
            },
            timeout,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, BusError::Remote { code: ErrorCode::InvalidArgument, message, .. } if message.contains("spiking_lm")),
        "{refused}"
    );
    let request = TrainRequest {
        model_type: "classifier".into(),
        dataset_path: "builtin:digits".into(),
        config: Some(TrainConfig {
            epochs: Some(2),
            hidden: vec![32],
            steps: Some(10),
            threads: Some(1),
            ..Default::default()
        }),
        learning_rate: Some(0.005),
        ..Default::default()
    };
    let job: TrainJob = bus.request(&key("train"), &request, timeout).await.unwrap();
    assert_eq!(job.state(), JobState::Pending);

    // Every change is published: PENDING, RUNNING, each epoch, SUCCEEDED.
    let mut epochs_seen = Vec::new();
    let last = loop {
        let update = tokio::time::timeout(Duration::from_secs(60), progress.recv())
            .await
            .expect("progress is published")
            .unwrap()
            .message;
        if update.job_id != job.job_id {
            continue;
        }
        let p = update.progress.clone().unwrap_or_default();
        if update.state() == JobState::Running && p.epoch > 0 {
            epochs_seen.push(p.epoch);
        }
        if update.state() == JobState::Succeeded {
            break update;
        }
        assert_ne!(update.state(), JobState::Failed, "{update:?}");
    };
    epochs_seen.dedup();
    assert_eq!(epochs_seen, [1, 2]);
    assert_eq!(last.model_id, format!("job-{}", job.job_id));

    let got: TrainJob = bus
        .request(
            &key("get_job"),
            &GetJobRequest {
                job_id: job.job_id.clone(),
            },
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(got, last);
    let listed: ListJobsReply = bus
        .request(
            &key("list_jobs"),
            &ListJobsRequest {
                state: JobState::Succeeded as i32,
            },
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(listed.jobs, [last]);
    let conflict = bus
        .request::<_, TrainJob>(
            &key("cancel_job"),
            &CancelJobRequest {
                job_id: job.job_id.clone(),
            },
            timeout,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&conflict, BusError::Remote { code: ErrorCode::InvalidArgument, message, .. } if message.contains("already SUCCEEDED")),
        "{conflict}"
    );
    let unknown = bus
        .request::<_, TrainJob>(
            &key("get_job"),
            &GetJobRequest {
                job_id: "nope".into(),
            },
            timeout,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &unknown,
            BusError::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{unknown}"
    );
}

#[test]
fn without_a_registry_a_trained_job_fails_saying_so() {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .args(["run", "training", "--local"])
        .arg("-p")
        .arg(format!("data_dir={}", data.path().display()))
        .args(["-p", "registry_timeout_s=1"])
        .env("SERVICE_HOST", "127.0.0.1")
        .env("SERVICE_PORT", "0")
        .env("RUST_LOG", "info");
    let mut node = Child::spawn(&mut command).unwrap();
    let url = url_in(
        &node
            .wait_for_line(|l| l.contains("serving http://"), Duration::from_secs(60))
            .expect("the training service starts"),
    );
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reply = http
        .post(&format!("{url}/train"))
        .header("Content-Type", "application/json")
        .send(digits(2).to_string())
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let job: Value = serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
    let id = job["job_id"].as_str().unwrap();
    let mut last = Value::Null;
    wait_until(Duration::from_secs(60), || {
        let mut reply = http.get(&format!("{url}/jobs/{id}")).call().unwrap();
        last = serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        state(&last) == "FAILED"
    })
    .unwrap_or_else(|_| panic!("{last}"));
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains("model registry") && error.contains("registry/get_model"),
        "{error}"
    );
    assert_eq!(epoch(&last), 2, "it trained before it failed: {last}");
    node.signal("INT").unwrap();
    assert!(node.wait_exit(Duration::from_secs(15)).is_some());
}

#[test]
fn a_job_with_config_workers_trains_data_parallel() {
    let data = tempfile::tempdir().unwrap();
    let mut services = Services::start(1, data.path());
    let mut body = digits(2);
    body["config"]["workers"] = json!(2);
    body["model_id"] = json!("parallel");
    let id = services.submit(&body);
    let job = services.wait_job(&id, Duration::from_secs(120), |j| {
        matches!(state(j), "SUCCEEDED" | "FAILED" | "CANCELLED")
    });
    assert_eq!(state(&job), "SUCCEEDED", "{job}");
    assert_eq!(job["request"]["config"]["workers"], 2, "{job}");
    let mut model = services
        .http
        .get(&format!("{}/models/parallel", services.registry))
        .call()
        .unwrap();
    assert_eq!(model.status().as_u16(), 200);
    let model: Value = serde_json::from_str(&model.body_mut().read_to_string().unwrap()).unwrap();
    let metrics = &model["versions"][0]["metadata"]["metrics"];
    assert_eq!(metrics["dp_workers"], 2.0, "{model}");
    // 1438 training digits in batches of 32, two epochs, every step from the workers.
    assert_eq!(metrics["dp_steps"], 2.0 * 45.0, "{model}");

    // A learner that cannot train data-parallel is refused, naming the field.
    let mut bad = digits(2);
    bad["config"]["workers"] = json!(2);
    bad["learner"] = json!("STDPUnsupervised");
    let (status, error) = services.call("POST", "/train", Some(&bad.to_string()));
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("config.workers"), "{error}");
}
