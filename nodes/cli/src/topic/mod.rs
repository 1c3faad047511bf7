//! `evospike topic …`: the topic tools, as a ROS 2 user knows them.
//!
//! Topics are named by their short names (`layer1/spikes`); [`Target`] maps a name
//! (or `--log NODE` / `--metric NODE`, or a full `evospike/…` key expression) to the
//! key expression to subscribe to. What arrives is decoded by the kind of key it
//! arrived on ([`decode`]): spike tensors on topics, `LogRecord`s on log keys,
//! `MetricBatch`es on metric keys.

mod decode;
mod echo;
mod list;
mod publish;
mod raster;
mod rate;
mod window;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use evospike_bus::transport::Received;
use evospike_bus::{KeySpace, Subscription};

pub(crate) use decode::{decode, Decoded};

/// The topic tools.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// List topics: who publishes and subscribes them (from the nodes' health).
    List(list::ListArgs),
    /// Print the messages of a topic (spike tensors), or a node's logs or metrics.
    Echo(echo::EchoArgs),
    /// Measure the publishing rate of a topic.
    Hz(rate::RateArgs),
    /// Measure the bandwidth of a topic.
    Bw(rate::RateArgs),
    /// Show a topic's publishers, subscribers and last message.
    Info(list::InfoArgs),
    /// Publish spike tensors from the command line.
    Pub(publish::PubArgs),
    /// Draw a live spike raster of a topic in the terminal (neurons × time).
    Raster(raster::RasterArgs),
}

pub(crate) async fn run(command: TopicCommand) -> anyhow::Result<ExitCode> {
    match command {
        TopicCommand::List(args) => list::list(args).await,
        TopicCommand::Echo(args) => echo::echo(args).await,
        TopicCommand::Hz(args) => rate::measure(args, rate::Measure::Rate).await,
        TopicCommand::Bw(args) => rate::measure(args, rate::Measure::Bandwidth).await,
        TopicCommand::Info(args) => list::info(args).await,
        TopicCommand::Pub(args) => publish::publish(args).await,
        TopicCommand::Raster(args) => raster::raster(args).await,
    }
}

/// What to subscribe to, as given on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Target {
    /// Topic name (`layer1/spikes`, wildcards `*`/`**` allowed), or a full key
    /// expression starting with `evospike/`.
    #[arg(required_unless_present_any = ["log", "metric"], conflicts_with_all = ["log", "metric"])]
    pub(crate) topic: Option<String>,
    /// Echo the log records of NODE (all nodes without a value).
    #[arg(long, value_name = "NODE", num_args = 0..=1, default_missing_value = "*", conflicts_with = "metric")]
    pub(crate) log: Option<String>,
    /// Echo the metrics of NODE (all nodes without a value).
    #[arg(long, value_name = "NODE", num_args = 0..=1, default_missing_value = "*")]
    pub(crate) metric: Option<String>,
}

impl Target {
    /// The key expression to subscribe to in `keys`' namespace.
    pub(crate) fn key_expr(&self, keys: &KeySpace) -> anyhow::Result<String> {
        let node_key = |kind: &str, node: &str| -> anyhow::Result<String> {
            if node == "*" {
                return Ok(keys.all(kind));
            }
            let key = if kind == "log" {
                keys.log(node)
            } else {
                keys.metric(node)
            };
            key.with_context(|| format!("--{kind} {node}"))
        };
        match (&self.topic, &self.log, &self.metric) {
            (Some(topic), None, None) => topic_key_expr(keys, topic),
            (None, Some(node), None) => node_key("log", node),
            (None, None, Some(node)) => node_key("metric", node),
            _ => Err(crate::exit::invalid(
                "give exactly one of TOPIC, --log NODE or --metric NODE",
            )),
        }
    }

    /// A short label for messages and headers.
    pub(crate) fn label(&self) -> String {
        match (&self.topic, &self.log, &self.metric) {
            (Some(topic), _, _) => topic.clone(),
            (_, Some(node), _) => format!("the log of {node}"),
            (_, _, Some(node)) => format!("the metrics of {node}"),
            _ => String::new(),
        }
    }
}

/// The key expression of a topic name: a short name (validated by the key layout),
/// a short name with wildcards, or a full key expression.
pub(crate) fn topic_key_expr(keys: &KeySpace, topic: &str) -> anyhow::Result<String> {
    if topic.starts_with("evospike/") {
        return Ok(topic.to_string());
    }
    if topic.contains('*') {
        let prefix = keys.all_topics();
        let prefix = prefix.trim_end_matches("**");
        return Ok(format!("{prefix}{topic}"));
    }
    keys.topic(topic)
        .with_context(|| format!("invalid topic name {topic:?}"))
}

/// What waiting for the next sample ended with.
// A sample is moved once per message; boxing it would allocate for each one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Next {
    Sample(Received),
    /// Ctrl-C.
    Interrupted,
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// Waits for the next sample, Ctrl-C, or `timeout`.
pub(crate) async fn next_sample(
    subscription: &Subscription,
    timeout: Option<Duration>,
) -> anyhow::Result<Next> {
    let deadline = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        sample = subscription.recv() => Ok(Next::Sample(sample?)),
        _ = tokio::signal::ctrl_c() => Ok(Next::Interrupted),
        () = deadline => Ok(Next::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeySpace {
        KeySpace::new("lab").unwrap()
    }

    #[test]
    fn short_names_map_to_topic_keys() {
        assert_eq!(
            topic_key_expr(&keys(), "layer1/spikes").unwrap(),
            "evospike/lab/topic/layer1/spikes"
        );
        assert_eq!(
            topic_key_expr(&keys(), "layer*/spikes").unwrap(),
            "evospike/lab/topic/layer*/spikes"
        );
        assert_eq!(
            topic_key_expr(&keys(), "evospike/x/log/**").unwrap(),
            "evospike/x/log/**"
        );
        let err = topic_key_expr(&keys(), "a//b").unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid topic name \"a//b\""),
            "{err:#}"
        );
    }

    #[test]
    fn log_and_metric_targets_map_to_node_keys() {
        let log = Target {
            log: Some("enc".into()),
            ..Target::default()
        };
        assert_eq!(log.key_expr(&keys()).unwrap(), "evospike/lab/log/enc");
        let all = Target {
            metric: Some("*".into()),
            ..Target::default()
        };
        assert_eq!(all.key_expr(&keys()).unwrap(), "evospike/lab/metric/**");
        let bad = Target {
            log: Some("a/b".into()),
            ..Target::default()
        };
        assert!(bad.key_expr(&keys()).is_err());
    }
}
