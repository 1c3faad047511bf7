//! A whole pipeline — encoder → layer → layer → readout — in one process on the
//! in-process transport: every step arrives, in order, and the readout scores.

use std::time::Duration;

use clap::Parser;
use evospike_bus::{Bus, BusConfig};
use evospike_node::NodeArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn args(name: &str, params: &[String]) -> NodeArgs {
    let mut argv = vec![
        "node".to_string(),
        "--local".into(),
        "--name".into(),
        name.into(),
    ];
    for p in params {
        argv.push("-p".into());
        argv.push(p.clone());
    }
    Cli::parse_from(argv).node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_pipeline_computes_every_step_in_order() {
    const STEPS: u64 = 300;
    let steps = format!("max_steps={STEPS}");
    let observer = Bus::open(BusConfig::local("default")).await.unwrap();
    let layer2_spikes = observer.spike_subscriber("layer2/spikes").unwrap();
    let scores = observer.spike_subscriber("readout/scores").unwrap();

    let nodes = vec![
        (
            "encoder",
            args(
                "encoder",
                &[
                    "source=\"generator:bars\"".into(),
                    "steps_per_sample=30".into(),
                    steps.clone(),
                ],
            ),
        ),
        (
            "layer",
            args(
                "layer1",
                &[
                    "size=200".into(),
                    r#"inputs=[{"topic":"encoder/spikes","p":0.3,"weight":6.0,"seed":1}]"#.into(),
                    steps.clone(),
                ],
            ),
        ),
        (
            "layer",
            args(
                "layer2",
                &[
                    "size=50".into(),
                    r#"inputs=[{"topic":"layer1/spikes","p":0.3,"weight":4.0,"seed":2}]"#.into(),
                    steps.clone(),
                ],
            ),
        ),
        (
            "readout",
            args(
                "readout",
                &[
                    "input=\"layer2/spikes\"".into(),
                    "steps_per_sample=30".into(),
                    steps.clone(),
                ],
            ),
        ),
    ];
    let mut tasks = Vec::new();
    for (kind, node_args) in nodes {
        tasks.push(tokio::spawn(async move {
            evospike_node::run(kind, node_args).await
        }));
    }

    let mut active = 0usize;
    for expected in 0..STEPS {
        let msg = tokio::time::timeout(Duration::from_secs(30), layer2_spikes.recv())
            .await
            .expect("step in time")
            .unwrap();
        assert_eq!(msg.view().header.step.to_native(), expected);
        assert_eq!(msg.view().len(), 50);
        active += msg.view().active_count();
    }
    assert!(active > 0, "layer2 never spiked: the network is silent");
    for window in 0..STEPS / 30 {
        let msg = tokio::time::timeout(Duration::from_secs(30), scores.recv())
            .await
            .expect("scores in time")
            .unwrap();
        assert_eq!(msg.view().header.step.to_native(), window * 30 + 29);
        assert_eq!(msg.view().analog().unwrap().len(), 10);
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("node ends")
            .unwrap()
            .unwrap();
    }
    assert_eq!(layer2_spikes.stats().copies, 0);
}
