//! The COMMUNICATION contract: every transport passes the same suite.
//!
//! Each check takes two buses (`a`, `b`) that can reach each other: two sessions
//! of the same local domain, or two Zenoh peers on loopback (one listens, one
//! connects). `contract_suite!` instantiates every check for every transport.

use std::time::Duration;

use evospike_bus::{Bus, BusConfig, BusError};
use evospike_schemas::proto::{Empty, ErrorCode, ErrorReply, LogLevel, LogRecord, NodeInfo};
use evospike_schemas::{SchemaError, SpikeLayout, SpikeTensor};

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

/// A producer computes straight into loaned buffers: nothing is copied on the way
/// out, and the receiver reads what was written in place.
async fn loaned_tensors_arrive_without_a_copy((a, b): (Bus, Bus)) {
    let subscriber = a.spike_subscriber("loaned/spikes").unwrap();
    let mut publisher = b.spike_publisher("loaned/spikes").unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());
    let bits = SpikeLayout::bitset("loaned", &[1000]).unwrap();
    let values = SpikeLayout::analog("loaned", &[3]).unwrap();
    for step in 0..20u64 {
        let mut loan = publisher.loan(&bits).unwrap();
        let words = loan.bitset_mut().unwrap();
        words.fill(0);
        words[0] = 1 << step;
        words[15] = 1 << 39; // element 999, the last one
        assert_eq!(loan.publish(step).unwrap(), 2 * step);
        let mut loan = publisher.loan(&values).unwrap();
        assert!(loan.bitset_mut().is_none());
        loan.analog_mut()
            .unwrap()
            .copy_from_slice(&[step as f32, 0.0, -1.0]);
        loan.publish(step).unwrap();
    }
    for step in 0..20u64 {
        let msg = subscriber.recv().await.unwrap();
        let view = msg.view();
        assert_eq!(view.header.step.to_native(), step);
        assert_eq!(view.header.seq.to_native(), 2 * step);
        assert_eq!(
            view.active_indices().collect::<Vec<_>>(),
            vec![step as u32, 999]
        );
        assert!(!msg.was_copied());
        let msg = subscriber.recv().await.unwrap();
        assert_eq!(msg.view().analog().unwrap(), &[step as f32, 0.0, -1.0]);
    }
    let sent = b.send_stats();
    assert_eq!((sent.sent, sent.loaned, sent.copies), (40, 40, 0));
    assert_eq!(a.receive_stats().copies, 0);
}

/// A loaned bitset with bits past its last element is refused before it is sent,
/// and a dropped loan sends nothing.
async fn bad_loans_are_refused_and_dropped_loans_send_nothing((a, b): (Bus, Bus)) {
    let subscriber = a.spike_subscriber("loaned/bad").unwrap();
    let mut publisher = b.spike_publisher("loaned/bad").unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());
    let layout = SpikeLayout::bitset("l", &[70]).unwrap();
    let mut loan = publisher.loan(&layout).unwrap();
    loan.bitset_mut().unwrap().fill(u64::MAX);
    let err = loan.publish(0).unwrap_err();
    assert!(matches!(err, BusError::Publish { .. }), "{err}");
    assert!(err.to_string().contains("beyond element 70"), "{err}");
    drop(publisher.loan(&layout).unwrap());
    let mut loan = publisher.loan(&layout).unwrap();
    loan.bitset_mut().unwrap().fill(0);
    assert_eq!(
        loan.publish(9).unwrap(),
        0,
        "refused loans use no sequence number"
    );
    let msg = subscriber.recv().await.unwrap();
    assert_eq!(msg.view().header.step.to_native(), 9);
    assert!(subscriber
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert_eq!(b.send_stats().sent, 1);
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
            async fn loaned_tensors_arrive_without_a_copy() {
                super::loaned_tensors_arrive_without_a_copy(
                    $pair(concat!(stringify!($transport), "-loan")).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_loans_are_refused_and_dropped_loans_send_nothing() {
                super::bad_loans_are_refused_and_dropped_loans_send_nothing(
                    $pair(concat!(stringify!($transport), "-badloan")).await,
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
    // Serializing an owned tensor is the one copy, and it is counted.
    let sent = b.send_stats();
    assert_eq!((sent.sent, sent.copies, sent.loaned), (1, 1, 0));
    assert_eq!(sent.bytes_copied, tensor.serialized_len() as u64);
}

/// Shared memory follows the data: a session maps none until it sends a tensor,
/// then a pool sized to what it sends, far below the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zenoh_pools_are_made_on_first_send_and_sized_to_the_data() {
    let (a, b) = zenoh_pair("pools").await;
    assert_eq!(b.config().shm_pool_bytes, 256 << 20, "the default cap");
    assert_eq!((a.shm_pool_bytes(), b.shm_pool_bytes()), (0, 0));
    let subscriber = a.spike_subscriber("small").unwrap();
    let mut publisher = b.spike_publisher("small").unwrap();
    assert!(publisher.wait_for_subscribers(WAIT).await.unwrap());
    let layout = SpikeLayout::bitset("n", &[128]).unwrap();
    let mut loan = publisher.loan(&layout).unwrap();
    assert!(loan.is_shm());
    loan.bitset_mut().unwrap().fill(1);
    loan.publish(0).unwrap();
    assert!(subscriber.recv().await.unwrap().is_shm());
    // (queue + 2) tensors of this size, rounded up to a power of two: well under
    // a MiB for 128 neurons. The receiver maps nothing of its own.
    let in_flight = (b.config().queue_capacity + 2) * 4;
    let expected = (layout.len() * in_flight).next_power_of_two().max(64 << 10);
    assert_eq!(b.shm_pool_bytes(), expected);
    assert!(expected <= 1 << 20, "{expected}");
    assert_eq!(a.shm_pool_bytes(), 0);
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
