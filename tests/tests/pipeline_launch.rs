//! The pipeline as separate processes, started from `launch/demo.yaml` by
//! `evospike launch`: its output decodes with `evospike topic echo`, a killed layer
//! comes back and the pipeline goes on, and Ctrl-C leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evospike_bus::{Bus, BusConfig};
use evospike_schemas::proto::{Empty, Health};
use evospike_testkit::{loopback_endpoint, wait_until, workspace_bin, Child};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/demo.yaml")
}

/// `evospike launch launch/demo.yaml`, its model trained into `log_dir/model`.
fn launch(router: &str, log_dir: &Path, extra: &[&str]) -> Child {
    let mut command = Command::new(workspace_bin("evospike"));
    command
        .arg("launch")
        .arg(demo())
        .args(["--arg", &format!("router={router}")])
        .arg("--arg")
        .arg(format!("model={}", log_dir.join("model").display()))
        .arg("--log-dir")
        .arg(log_dir)
        .args(extra)
        .env("RUST_LOG", "info");
    Child::spawn(&mut command).expect("start evospike launch")
}

async fn observer(router: &str) -> Bus {
    let config = BusConfig::peer(&["tcp/127.0.0.1:0".to_string()], &[router.to_string()]);
    let mut last_error = None;
    for _ in 0..100 {
        match Bus::open(config.clone()).await {
            Ok(bus) => return bus,
            Err(err) => last_error = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot reach the router at {router}: {last_error:?}");
}

/// PID of every node that answers its health queryable, by name.
async fn node_pids(bus: &Bus) -> Vec<(String, u32)> {
    let key = format!("evospike/{}/health/*", bus.keys().namespace());
    let replies = bus
        .request_all::<Empty, Health>(&key, &Empty {}, Duration::from_secs(2))
        .await
        .unwrap();
    let mut pids: Vec<(String, u32)> = replies
        .into_iter()
        .filter_map(|(_, health)| health.ok()?.node.map(|info| (info.name, info.pid)))
        .collect();
    pids.sort();
    pids
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_as_processes_and_echo_decodes_its_output() {
    let router = loopback_endpoint();
    let logs = tempfile::tempdir().unwrap();
    let mut launcher = launch(
        &router,
        logs.path(),
        &["--arg", "steps=1500", "--arg", "rate=300"],
    );

    let echo = Command::new(workspace_bin("evospike"))
        .args([
            "topic",
            "echo",
            "readout/scores",
            "--once",
            "--json",
            "--timeout",
            "60",
            "--connect",
            &router,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&echo.stdout);
    assert!(
        echo.status.success(),
        "echo failed: {}\n{stdout}",
        String::from_utf8_lossy(&echo.stderr)
    );
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["source"], "readout", "{line}");
    assert_eq!(line["shape"], serde_json::json!([10]), "{line}");

    // Finite steps: every node ends by itself and the launch exits cleanly.
    let status = launcher
        .wait_exit(Duration::from_secs(60))
        .expect("the launch ends once every node is done");
    assert!(
        status.success(),
        "launch failed: {status}\n{}",
        launcher.output().join("\n")
    );
    let output = launcher.output().join("\n");
    for node in ["router", "train", "encoder", "hidden", "output", "readout"] {
        assert!(
            output.contains(&format!("[{node}")),
            "no output from {node}:\n{output}"
        );
        assert!(
            logs.path().join(format!("{node}.log")).exists(),
            "no log file for {node}"
        );
    }
    assert!(output.contains("layer output done"), "{output}");
    assert!(output.contains("model written"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_layer_respawns_the_pipeline_goes_on_and_ctrl_c_leaves_nothing() {
    let router = loopback_endpoint();
    let logs = tempfile::tempdir().unwrap();
    let mut launcher = launch(&router, logs.path(), &["--arg", "rate=200"]);
    let bus = observer(&router).await;
    let scores = bus.spike_subscriber("readout/scores").unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), scores.recv())
        .await
        .expect("scores")
        .unwrap();
    let before = first.view().header.step.to_native();

    let mut pids = node_pids(&bus).await;
    // The train node may still be closing its session after writing the model.
    pids.retain(|(name, _)| name != "train");
    assert_eq!(
        pids.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["encoder", "hidden", "output", "readout", "router"]
    );
    let layer1 = pids.iter().find(|(n, _)| n == "hidden").unwrap().1;
    Command::new("kill")
        .args(["-9", &layer1.to_string()])
        .status()
        .unwrap();

    // A new hidden-layer process answers, and scores keep coming for later steps.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let respawned = loop {
        let found = node_pids(&bus)
            .await
            .into_iter()
            .find(|(n, pid)| n == "hidden" && *pid != layer1);
        if found.is_some() || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, new_pid) = respawned.expect("the hidden layer came back");
    let mut after = before;
    while after < before + 500 {
        let msg = tokio::time::timeout(Duration::from_secs(60), scores.recv())
            .await
            .expect("scores go on")
            .unwrap();
        after = msg.view().header.step.to_native();
    }
    launcher
        .wait_for_line(
            |l| l.contains("joined the pipeline at step"),
            Duration::from_secs(10),
        )
        .unwrap();

    // Ctrl-C: everything ends within the shutdown timeouts, nothing is left.
    let all: Vec<u32> = node_pids(&bus)
        .await
        .into_iter()
        .map(|(_, pid)| pid)
        .collect();
    assert!(all.contains(&new_pid));
    drop(scores);
    drop(bus);
    launcher.signal("INT").unwrap();
    let status = launcher
        .wait_exit(Duration::from_secs(10))
        .expect("launch ends within the timeout");
    assert!(
        status.success(),
        "{status}: {}",
        launcher.output().join("\n")
    );
    wait_until(Duration::from_secs(5), || {
        all.iter().all(|pid| !alive(*pid))
    })
    .unwrap_or_else(|_| {
        panic!(
            "processes left: {:?}",
            all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        )
    });
}

/// Regression: a free-running encoder finishes thousands of steps ahead of the
/// layers; it must wait for them (drain) instead of taking its queued steps with it.
#[test]
fn free_running_pipeline_delivers_every_step_before_nodes_exit() {
    let router = loopback_endpoint();
    let logs = tempfile::tempdir().unwrap();
    let mut launcher = launch(
        &router,
        logs.path(),
        &["--arg", "steps=6000", "--arg", "rate=0"],
    );
    let status = launcher
        .wait_exit(Duration::from_secs(90))
        .expect("the pipeline finishes");
    let output = launcher.output().join("\n");
    assert!(status.success(), "{status}\n{output}");
    for node in ["hidden", "output"] {
        assert!(
            output.contains(&format!("layer {node} done steps=6000")),
            "{node} did not compute every step:\n{output}"
        );
    }
    assert!(
        output.contains("readout readout done steps=6000"),
        "{output}"
    );
    // The demo trains on 80% of the digits and is scored on the rest: live
    // accuracy on digits the model never saw.
    let accuracy: f64 = output
        .lines()
        .find_map(|l| l.split("readout accuracy windows=240 accuracy=").nth(1))
        .unwrap_or_else(|| panic!("no accuracy line:\n{output}"))
        .trim()
        .parse()
        .unwrap();
    assert!(accuracy >= 0.95, "live accuracy {accuracy}");
}
