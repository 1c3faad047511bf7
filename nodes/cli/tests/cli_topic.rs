//! `evospike topic …` against a router of the test's own, with `evospike topic
//! pub` or the bus library on the publishing side.

mod common;

use common::{run, start, Router};
use evospike_schemas::SpikeTensor;
use serde_json::Value;

#[test]
fn echo_once_prints_one_decoded_tensor() {
    let router = Router::start();
    let echo = start(&mut router.command(&[
        "topic",
        "echo",
        "layer1/spikes",
        "--once",
        "--timeout",
        "30",
    ]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "layer1/spikes",
        "--indices",
        "1,5,9",
        "--shape",
        "100",
        "--count",
        "1",
        "--wait",
        "--source",
        "layer1",
    ]));
    assert!(publish.success, "{publish:?}");
    let echo = echo.finish();
    assert!(echo.success, "{echo:?}");
    assert_eq!(
        echo.stdout_lines(),
        ["step=0 seq=0 source=layer1 shape=[100] encoding=sparse active=3/100 indices=[1, 5, 9]"]
    );
}

#[test]
fn echo_count_json_gives_one_object_per_message() {
    let router = Router::start();
    let echo = start(&mut router.command(&[
        "topic",
        "echo",
        "a/b",
        "--count",
        "3",
        "--json",
        "--timeout",
        "30",
    ]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "a/b",
        "--indices",
        "0-14",
        "--shape",
        "4x8",
        "--encoding",
        "bitset",
        "--count",
        "3",
        "--rate",
        "200",
        "--step",
        "10",
        "--wait",
        "--quiet",
    ]));
    assert!(publish.success, "{publish:?}");
    assert!(
        publish.stdout.is_empty(),
        "--quiet prints nothing: {publish:?}"
    );
    let echo = echo.finish();
    assert!(echo.success, "{echo:?}");
    let objects: Vec<Value> = echo
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{echo:?}");
    for (i, object) in objects.iter().enumerate() {
        assert_eq!(object["type"], "SpikeTensor");
        assert_eq!(object["key"], "evospike/default/topic/a/b");
        assert_eq!(object["step"], 10 + i as u64);
        assert_eq!(object["seq"], i as u64);
        assert_eq!(object["shape"], serde_json::json!([4, 8]));
        assert_eq!(object["encoding"], "bitset");
        assert_eq!(object["active"], 15);
        assert_eq!(
            object["indices"],
            serde_json::json!((0..10).collect::<Vec<u32>>())
        );
        assert_eq!(object["indicesTruncated"], true);
    }
}

#[test]
fn malformed_payload_is_reported_and_echo_goes_on() {
    let router = Router::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);
    let echo =
        start(&mut router.command(&["topic", "echo", "noisy", "--count", "1", "--timeout", "30"]));

    let key = bus.keys().topic("noisy").unwrap();
    let raw = bus.raw_publisher(&key).unwrap();
    let mut publisher = bus.spike_publisher("noisy").unwrap();
    let deadline = common::DEADLINE;
    assert!(
        runtime
            .block_on(publisher.wait_for_subscribers(deadline))
            .unwrap(),
        "echo never subscribed"
    );
    let mut garbage = raw.loan(37).unwrap();
    garbage.fill(0xAB);
    raw.put(garbage).unwrap();
    let mut tensor = SpikeTensor::builder("n")
        .shape([8])
        .step(3)
        .sparse(vec![7])
        .unwrap();
    publisher.publish(&mut tensor).unwrap();

    let echo = echo.finish();
    assert!(echo.success, "{echo:?}");
    assert!(
        echo.stderr
            .contains("error: invalid payload on evospike/default/topic/noisy (37 bytes): "),
        "{echo:?}"
    );
    assert_eq!(
        echo.stdout_lines(),
        ["step=3 seq=0 source=n shape=[8] encoding=sparse active=1/8 indices=[7]"]
    );
}

fn rate_report(output: &common::Finished, field: &str) -> Value {
    let last = output.stdout_lines().last().copied().unwrap_or_default();
    let report: Value =
        serde_json::from_str(last).unwrap_or_else(|err| panic!("{err}: {output:?}"));
    assert_eq!(report["final"], true, "{output:?}");
    report[field].clone()
}

#[test]
fn hz_and_bw_report_over_a_bounded_count() {
    let router = Router::start();
    let tensor = SpikeTensor::builder("evospike-cli")
        .shape([64])
        .sparse(vec![1, 2, 3])
        .unwrap();

    let hz = start(&mut router.command(&["topic", "hz", "t", "--count", "20", "--json"]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "t",
        "--indices",
        "1-3",
        "--shape",
        "64",
        "--rate",
        "100",
        "--count",
        "20",
        "--wait",
        "-q",
    ]));
    assert!(publish.success, "{publish:?}");
    let hz = hz.finish();
    assert!(hz.success, "{hz:?}");
    let rate = rate_report(&hz, "rate");
    assert_eq!(rate["window"], 20);
    let hz_value = rate["rateHz"].as_f64().unwrap();
    // Published at 100 Hz; a loaded machine delays some messages, never speeds them up much.
    assert!(hz_value > 10.0 && hz_value < 400.0, "{rate}");
    let interval = &rate["intervalS"];
    assert!(interval["min"].as_f64().unwrap() <= interval["mean"].as_f64().unwrap());
    assert!(interval["mean"].as_f64().unwrap() <= interval["max"].as_f64().unwrap());
    assert!(interval["stdDev"].as_f64().unwrap() >= 0.0);

    // Another topic, so that the finished `hz` cannot count as a subscriber.
    let bw = start(&mut router.command(&["topic", "bw", "u", "--count", "10", "--json"]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "u",
        "--indices",
        "1-3",
        "--shape",
        "64",
        "--rate",
        "100",
        "--count",
        "10",
        "--wait",
        "-q",
    ]));
    assert!(publish.success, "{publish:?}");
    let bw = bw.finish();
    assert!(bw.success, "{bw:?}");
    let bandwidth = rate_report(&bw, "bandwidth");
    let size = tensor.serialized_len() as f64;
    assert_eq!(
        bandwidth["sizeBytes"]["mean"].as_f64().unwrap(),
        size,
        "{bandwidth}"
    );
    assert_eq!(bandwidth["sizeBytes"]["stdDev"].as_f64().unwrap(), 0.0);
    assert!(bandwidth["bytesPerS"].as_f64().unwrap() > 0.0);
}

#[test]
fn raster_steps_renders_one_fixed_size_frame() {
    let router = Router::start();
    let raster = start(&mut router.command(&[
        "topic",
        "raster",
        "layer1/spikes",
        "--steps",
        "5",
        "--ascii",
        "--timeout",
        "30",
    ]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "layer1/spikes",
        "--indices",
        "0,1,2,3,4,50,99",
        "--shape",
        "100",
        "--count",
        "5",
        "--rate",
        "100",
        "--wait",
        "-q",
    ]));
    assert!(publish.success, "{publish:?}");
    let raster = raster.finish();
    assert!(raster.success, "{raster:?}");
    let lines = raster.stdout_lines();
    // Not a terminal: 80×24, so 100 neurons are drawn 5 per row on 20 rows.
    assert_eq!(lines.len(), 1 + 20 + 2, "{}", raster.stdout);
    assert!(
        lines.iter().all(|l| l.chars().count() <= 80),
        "{}",
        raster.stdout
    );
    assert!(
        lines[0].starts_with("layer1/spikes  100 neurons (5/row)  steps 0–4  last step: 7 active"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1], " 0 │#####",
        "all five of neurons 0-4 fired at every step"
    );
    assert_eq!(lines[2], " 5 │     ");
    assert_eq!(lines[11], "50 │.....", "one of five");
    assert_eq!(lines[20], "95 │.....");
    assert_eq!(lines[21], "   └─────");
    assert_eq!(lines[22], "    0   4");
    assert!(
        !raster.stdout.contains('\x1b'),
        "no terminal control sequences in a pipe"
    );
}

#[test]
fn info_and_list_show_a_topic_seen_on_the_bus() {
    let router = Router::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);
    // A publisher that keeps publishing until the checks are done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher_thread = {
        let (bus, stop) = (bus.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut publisher = bus.spike_publisher("seen/spikes").unwrap();
            let mut step = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tensor = SpikeTensor::builder("seer")
                    .shape([16])
                    .step(step)
                    .sparse(vec![2, 3])
                    .unwrap();
                publisher.publish(&mut tensor).unwrap();
                step += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let info = run(&mut router.command(&["topic", "info", "seen/spikes", "--timeout", "30"]));
    let list = run(&mut router.command(&["topic", "list", "--sniff", "1", "--json"]));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher_thread.join().unwrap();

    assert!(info.success, "{info:?}");
    assert!(
        info.stdout
            .contains("key:          evospike/default/topic/seen/spikes"),
        "{info:?}"
    );
    assert!(
        info.stdout
            .contains("type:         SpikeTensor, shape [16] (16 elements), encoding sparse"),
        "{info:?}"
    );
    assert!(info.stdout.contains("source=seer active=2/16"), "{info:?}");

    assert!(list.success, "{list:?}");
    let topics: Value = serde_json::from_str(list.stdout.trim()).unwrap();
    let seen = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "seen/spikes")
        .expect("topic sniffed");
    assert!(seen["seen"]["messages"].as_u64().unwrap() > 0, "{seen}");
}

#[test]
fn echo_decodes_logs_and_metrics_by_key() {
    use evospike_schemas::proto::{LogLevel, LogRecord, MetricBatch, MetricSample};
    let router = Router::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);

    let logs =
        start(&mut router.command(&["topic", "echo", "--log", "enc", "--once", "--timeout", "30"]));
    let metrics = start(&mut router.command(&[
        "topic",
        "echo",
        "--metric",
        "--once",
        "--json",
        "--timeout",
        "30",
    ]));
    let log_publisher = bus
        .message_publisher::<LogRecord>(&bus.keys().log("enc").unwrap())
        .unwrap();
    let metric_publisher = bus
        .message_publisher::<MetricBatch>(&bus.keys().metric("enc").unwrap())
        .unwrap();
    assert!(runtime
        .block_on(log_publisher.wait_for_subscribers(common::DEADLINE))
        .unwrap());
    assert!(runtime
        .block_on(metric_publisher.wait_for_subscribers(common::DEADLINE))
        .unwrap());
    let record = LogRecord {
        timestamp_unix_ns: 1_700_000_000_000_000_000,
        level: LogLevel::Warn as i32,
        node: "enc".into(),
        target: "evospike_node".into(),
        message: "input late".into(),
        fields: [("step".to_string(), "12".to_string())].into(),
    };
    log_publisher.publish(&record).unwrap();
    let sample = |name: &str, value| MetricSample {
        node: "enc".into(),
        name: name.into(),
        value,
        ..Default::default()
    };
    metric_publisher
        .publish(&MetricBatch {
            samples: vec![sample("steps_per_s", 100.0), sample("spikes_per_s", 3.5)],
        })
        .unwrap();

    let logs = logs.finish();
    assert!(logs.success, "{logs:?}");
    assert_eq!(
        logs.stdout_lines(),
        ["[WARN] 2023-11-14T22:13:20.000Z enc evospike_node: input late step=12"]
    );
    let metrics = metrics.finish();
    assert!(metrics.success, "{metrics:?}");
    let value: Value = serde_json::from_str(metrics.stdout.trim()).unwrap();
    assert_eq!(value["type"], "MetricBatch");
    assert_eq!(value["key"], "evospike/default/metric/enc");
    assert_eq!(value["samples"][1]["name"], "spikes_per_s");
    assert_eq!(value["samples"][1]["value"], 3.5);
}

/// On a terminal the raster redraws in place with ANSI sequences and restores the
/// cursor at the end. The terminal is a pseudo-terminal made by util-linux
/// `script`, which every Debian-like machine has.
#[test]
fn raster_redraws_in_place_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let router = Router::start();
    let raster = format!(
        "{} topic raster tt --steps 3 --width 40 --height 10 --ascii --timeout 30 --connect {}",
        env!("CARGO_BIN_EXE_evospike"),
        router.endpoint
    );
    let terminal = start(std::process::Command::new("script").args(["-qec", &raster, "/dev/null"]));
    let publish = run(&mut router.command(&[
        "topic",
        "pub",
        "tt",
        "--indices",
        "0,3",
        "--shape",
        "8",
        "--count",
        "3",
        "--rate",
        "100",
        "--wait",
        "-q",
    ]));
    assert!(publish.success, "{publish:?}");
    let terminal = terminal.finish();
    assert!(terminal.success, "{terminal:?}");
    let screen = &terminal.stdout;
    assert!(
        screen.starts_with("\x1b[?25l\x1b[2J\x1b[H"),
        "hides the cursor and clears: {screen:?}"
    );
    assert!(
        screen.contains("0 │ooo\x1b[K"),
        "the last frame shows three steps: {screen:?}"
    );
    assert!(
        screen.trim_end().ends_with("\x1b[?25h"),
        "the cursor comes back: {screen:?}"
    );
}
