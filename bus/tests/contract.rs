//! The COMMUNICATION contract: every transport passes the same suite.
//!
//! Each check takes two buses (`a`, `b`) that can reach each other: two sessions
//! of the same local domain, or two Zenoh peers on loopback (one listens, one
//! connects). `contract_suite!` instantiates every check for every transport.

use std::time::Duration;

use evospike_bus::{Bus, BusConfig, BusError};
use evospike_schemas::proto::{Empty, ErrorCode, ErrorReply, LogLevel, LogRecord, NodeInfo};
use evospike_schemas::{SchemaError, SpikeTensor};

const WAIT: Duration = Duration::from_secs(10);

async fn local_pair(name: &str) -> (Bus, Bus) {
    let a = Bus::open(BusConfig::local(name)).await.unwrap();
    let b = Bus::open(BusConfig::local(name)).await.unwrap();
    (a, b)
}

async fn zenoh_pair(_name: &str) -> (Bus, Bus) {
    let endpoint = evospike_testkit::loopback_endpoint();
    let a = Bus::open(BusConfig::peer(std::slice::from_ref(&endpoint), &[]))
        .await
        .unwrap();
    let b = Bus::open(BusConfig::peer(&[], &[endpoint])).await.unwrap();
    (a, b)
}

async fn spikes_arrive_in_order_and_in_place((a, b): (Bus, Bus)) {
    let subscriber = a.spike_subscriber("layer/spikes").unwrap();
    let mut publisher = b.spike_publisher("layer/spikes").unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());
    for step in 0..50u64 {
        let mut tensor = SpikeTensor::builder("layer")
            .shape([256])
            .step(step)
            .sparse(vec![step as u32, 255])
            .unwrap();
        publisher.publish(&mut tensor).unwrap();
    }
    for step in 0..50u64 {
        let msg = subscriber.recv().await.unwrap();
        let view = msg.view();
        assert_eq!(view.header.step.to_native(), step);
        assert_eq!(view.header.seq.to_native(), step);
        assert_eq!(view.source(), "layer");
        assert_eq!(
            view.active_indices().collect::<Vec<_>>(),
            vec![step as u32, 255]
        );
    }
    assert_eq!(subscriber.stats().received, 50);
    assert_eq!(subscriber.stats().invalid, 0);
}

async fn malformed_payloads_are_typed_errors_and_the_stream_goes_on((a, b): (Bus, Bus)) {
    let subscriber = a.spike_subscriber("noisy").unwrap();
    let key = b.keys().topic("noisy").unwrap();
    let raw = b.raw_publisher(&key).unwrap();
    let mut publisher = b.spike_publisher("noisy").unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());

    let mut garbage = raw.loan(37).unwrap();
    garbage.fill(0xAB);
    raw.put(garbage).unwrap();
    let mut tensor = SpikeTensor::builder("n")
        .shape([8])
        .sparse(vec![1])
        .unwrap();
    publisher.publish(&mut tensor).unwrap();

    match subscriber.recv().await {
        Err(BusError::Payload {
            key: got,
            source: SchemaError::Malformed { len: 37, .. },
        }) => assert_eq!(got, key),
        other => panic!("expected a malformed-payload error, got {other:?}"),
    }
    let msg = subscriber.recv().await.unwrap();
    assert_eq!(msg.view().active_count(), 1);
    assert_eq!(subscriber.stats().invalid, 1);
}

async fn messages_round_trip((a, b): (Bus, Bus)) {
    let key = a.keys().log("enc").unwrap();
    let subscriber = a
        .message_subscriber::<LogRecord>(&a.keys().all("log"))
        .unwrap();
    let publisher = b.message_publisher::<LogRecord>(&key).unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());
    let record = LogRecord {
        level: LogLevel::Info as i32,
        node: "enc".into(),
        message: "hello".into(),
        ..Default::default()
    };
    publisher.publish(&record).unwrap();
    let got = subscriber.recv().await.unwrap();
    assert_eq!(got.key, key);
    assert_eq!(got.message, record);
}

async fn services_answer_and_errors_are_typed((a, b): (Bus, Bus)) {
    let key = a.keys().service("registry", "info").unwrap();
    let _service = a
        .serve::<NodeInfo, NodeInfo, _>(&key, "registry", |request| {
            if request.name.is_empty() {
                return Err(ErrorReply::new(
                    ErrorCode::InvalidArgument,
                    "name is required",
                ));
            }
            Ok(NodeInfo {
                name: request.name.to_uppercase(),
                ..Default::default()
            })
        })
        .unwrap();
    let request = NodeInfo {
        name: "layer".into(),
        ..Default::default()
    };
    // `request` waits (up to its timeout) for the queryable to be discovered.
    let reply = b
        .request::<NodeInfo, NodeInfo>(&key, &request, WAIT)
        .await
        .unwrap();
    assert_eq!(reply.name, "LAYER");

    let err = b
        .request::<NodeInfo, NodeInfo>(&key, &NodeInfo::default(), WAIT)
        .await
        .unwrap_err();
    match err {
        BusError::Remote {
            code: ErrorCode::InvalidArgument,
            message,
            key: got,
        } => {
            assert_eq!(message, "name is required");
            assert_eq!(got, key);
        }
        other => panic!("expected a remote error, got {other}"),
    }

    // A request of the wrong type is refused by the envelope check, not misread.
    let err = b
        .request::<Empty, NodeInfo>(&key, &Empty {}, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Remote {
                code: ErrorCode::InvalidArgument,
                ..
            }
        ),
        "{err}"
    );
}

async fn missing_service_times_out_naming_the_key((_a, b): (Bus, Bus)) {
    let key = b.keys().service("nobody", "home").unwrap();
    let started = std::time::Instant::now();
    let err = b
        .request::<Empty, Empty>(&key, &Empty {}, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Timeout { key: k, .. } if *k == key),
        "{err}"
    );
    assert!(err.to_string().contains(&key));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "gave up before its timeout: {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeout not honoured: {:?}",
        started.elapsed()
    );
}

async fn liveliness_lists_nodes((a, b): (Bus, Bus)) {
    let token = a.announce_node("layer1").unwrap();
    let _other = a.announce_node("readout").unwrap();
    let mut nodes = Vec::new();
    for _ in 0..100 {
        nodes = b.nodes(Duration::from_millis(200)).await.unwrap();
        if nodes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(nodes, vec!["layer1", "readout"]);
    drop(token);
    for _ in 0..100 {
        nodes = b.nodes(Duration::from_millis(200)).await.unwrap();
        if nodes.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(nodes, vec!["readout"]);
}

async fn wildcards_match_topics((a, b): (Bus, Bus)) {
    let subscriber = a.spike_subscriber("*/spikes").unwrap();
    let mut one = b.spike_publisher("l1/spikes").unwrap();
    let mut two = b.spike_publisher("l2/spikes").unwrap();
    let mut other = b.spike_publisher("l3/rates").unwrap();
    assert!(one.wait_for_subscribers(WAIT).await.unwrap());
    assert!(two.wait_for_subscribers(WAIT).await.unwrap());
    assert!(!other
        .wait_for_subscribers(Duration::from_millis(50))
        .await
        .unwrap());
    for publisher in [&mut other, &mut one, &mut two] {
        let mut tensor = SpikeTensor::builder(publisher.key())
            .shape([1])
            .sparse(vec![0])
            .unwrap();
        publisher.publish(&mut tensor).unwrap();
    }
    let mut keys = vec![
        subscriber.recv().await.unwrap().key().to_string(),
        subscriber.recv().await.unwrap().key().to_string(),
    ];
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "evospike/default/topic/l1/spikes",
            "evospike/default/topic/l2/spikes"
        ]
    );
    assert!(subscriber
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
}

macro_rules! contract_suite {
    ($transport:ident, $pair:ident) => {
        mod $transport {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn spikes_arrive_in_order_and_in_place() {
                super::spikes_arrive_in_order_and_in_place(
                    $pair(concat!(stringify!($transport), "-spikes")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn malformed_payloads_are_typed_errors_and_the_stream_goes_on() {
                super::malformed_payloads_are_typed_errors_and_the_stream_goes_on(
                    $pair(concat!(stringify!($transport), "-bad")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn messages_round_trip() {
                super::messages_round_trip($pair(concat!(stringify!($transport), "-msg")).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn services_answer_and_errors_are_typed() {
                super::services_answer_and_errors_are_typed(
                    $pair(concat!(stringify!($transport), "-svc")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn missing_service_times_out_naming_the_key() {
                super::missing_service_times_out_naming_the_key(
                    $pair(concat!(stringify!($transport), "-nosvc")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn liveliness_lists_nodes() {
                super::liveliness_lists_nodes(
                    $pair(concat!(stringify!($transport), "-live")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wildcards_match_topics() {
                super::wildcards_match_topics(
                    $pair(concat!(stringify!($transport), "-wild")).await,
                )
                .await;
            }
        }
    };
}

contract_suite!(local, local_pair);
contract_suite!(zenoh, zenoh_pair);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_payloads_are_never_copied() {
    let (a, b) = local_pair("local-nocopy").await;
    let subscriber = a.spike_subscriber("t").unwrap();
    let mut publisher = b.spike_publisher("t").unwrap();
    let mut tensor = SpikeTensor::zeros("n", &[1 << 16]).unwrap();
    publisher.publish(&mut tensor).unwrap();
    let msg = subscriber.recv().await.unwrap();
    assert!(!msg.was_copied());
    assert_eq!(a.receive_stats().copies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_an_endpoint_nobody_listens_on_fails_naming_it() {
    let endpoint = evospike_testkit::loopback_endpoint();
    let mut config = BusConfig::peer(&[], std::slice::from_ref(&endpoint));
    config.connect_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = Bus::open(config).await.unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&endpoint),
        "error must name the endpoint: {err}"
    );
    // Zenoh appends its own source location to its errors; users never see it.
    assert!(!err.to_string().contains(".rs:"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "open hung for {:?}",
        started.elapsed()
    );
}
