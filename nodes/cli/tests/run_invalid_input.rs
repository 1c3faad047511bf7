//! A flood of junk on a layer's input: the node keeps running, logs a bounded
//! number of lines about it, and its metrics count every message.

mod common;

use std::time::{Duration, Instant};

use common::{Router, DEADLINE};
use evospike_schemas::proto::{Empty, Health, MetricBatch};
use evospike_testkit::Child;

const JUNK: u64 = 1000;

#[test]
fn a_thousand_malformed_payloads_are_counted_not_logged_one_by_one() {
    let router = Router::start();
    let mut layer = Child::spawn(&mut router.command(&[
        "run",
        "layer",
        "--name",
        "layer1",
        "-p",
        "size=10",
        "-p",
        r#"inputs=[{"topic":"junk/spikes"}]"#,
    ]))
    .expect("spawn the layer");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut bus_config = evospike_bus::BusConfig::peer(&[], std::slice::from_ref(&router.endpoint));
    // Plain network buffers: the test exits long before anyone reads shared memory.
    bus_config.shared_memory = false;
    let bus = runtime
        .block_on(evospike_bus::Bus::open(bus_config))
        .unwrap();
    let keys = bus.keys().clone();
    let metrics = bus
        .message_subscriber::<MetricBatch>(&keys.metric("layer1").unwrap())
        .unwrap();
    let publisher = bus
        .raw_publisher(&keys.topic("junk/spikes").unwrap())
        .unwrap();
    let start = Instant::now();
    while !publisher.has_subscribers().unwrap() {
        assert!(
            start.elapsed() < DEADLINE,
            "the layer never subscribed: {:?}",
            layer.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    for i in 0..JUNK {
        let text = format!("not a spike tensor #{i}");
        let mut buf = publisher.loan(text.len()).unwrap();
        buf.copy_from_slice(text.as_bytes());
        publisher.put(buf).unwrap();
    }

    // Every one is counted in the node's metrics.
    let counted = |batch: &MetricBatch| {
        batch
            .samples
            .iter()
            .find(|s| s.name == "invalid_inputs_total")
            .map_or(0.0, |s| s.value)
    };
    let mut last = 0.0;
    while last < JUNK as f64 {
        assert!(
            start.elapsed() < DEADLINE,
            "metrics counted {last} of {JUNK}; output: {:?}",
            layer.output()
        );
        if let Some(batch) = metrics.recv_timeout(Duration::from_secs(2)).unwrap() {
            last = counted(&batch.message);
        }
    }
    assert_eq!(last, JUNK as f64);

    // Still running and answering.
    let health: Health = runtime
        .block_on(bus.request::<Empty, Health>(
            &keys.health("layer1").unwrap(),
            &Empty {},
            Duration::from_secs(5),
        ))
        .expect("the layer answers its health query after the flood");
    assert_eq!(health.node.map(|n| n.name).as_deref(), Some("layer1"));

    layer.signal("INT").unwrap();
    let status = layer
        .wait_exit(DEADLINE)
        .expect("the layer stops on SIGINT");
    assert!(status.success(), "{status:?}: {:?}", layer.output());
    let output = layer.output().to_vec();
    let warnings: Vec<&String> = output.iter().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("invalid tensor dropped")),
        "{output:#?}"
    );
    assert!(
        warnings.len() <= 10,
        "{} warning lines:\n{warnings:#?}",
        warnings.len()
    );
}
