//! Step synchronisation: gaps and duplicates are detected, counted and reported,
//! never silently skipped.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use evospike_bus::{Bus, BusConfig};
use evospike_node::node::Node;
use evospike_node::sync::{Delivery, StepInput};
use evospike_node::NodeArgs;
use evospike_schemas::SpikeTensor;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_and_duplicates_are_counted_and_the_missing_step_is_silent() {
    let domain = "step-sync";
    let bus = Bus::open(BusConfig::local(domain)).await.unwrap();
    let args = Cli::parse_from(["node", "--name", "probe", "--local"]).node;
    let node = Node::start("layer", &args, bus.clone()).await.unwrap();
    let mut input = StepInput::new(&node, "up/spikes").unwrap();

    let mut publisher = bus.spike_publisher("up/spikes").unwrap();
    // Steps 0, 1, 3 (2 is missing), then 1 again (a duplicate), then 4.
    for step in [0u64, 1, 3, 1, 4] {
        let mut tensor = SpikeTensor::builder("up")
            .shape([70])
            .step(step)
            .sparse(vec![step as u32])
            .unwrap();
        publisher.publish(&mut tensor).unwrap();
    }

    let mut seen = Vec::new();
    for t in 0..5u64 {
        let delivery =
            tokio::time::timeout(Duration::from_secs(5), input.take(t, &node, node.metrics()))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        let words = input.words(&delivery).to_vec();
        let active: Vec<usize> = (0..70)
            .filter(|i| words[i / 64] >> (i % 64) & 1 == 1)
            .collect();
        seen.push((t, matches!(delivery, Delivery::Tensor(_)), active));
    }
    assert_eq!(
        seen,
        vec![
            (0, true, vec![0]),
            (1, true, vec![1]),
            (2, false, vec![]), // the gap: computed with the input silent
            (3, true, vec![3]),
            (4, true, vec![4]), // the late step 1 was dropped on the way
        ]
    );
    assert_eq!(node.metrics().gaps.load(Ordering::Relaxed), 1);
    assert_eq!(node.metrics().duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(input.len(), Some(70));
}
