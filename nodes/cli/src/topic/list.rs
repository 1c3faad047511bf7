//! `evospike topic list` and `evospike topic info`: the topic graph from the
//! nodes' health, optionally joined with what is actually seen on the bus.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use evospike_bus::{KeyKind, Subscription};
use serde_json::json;

use super::decode::{age, Decoded};
use super::{decode, next_sample, topic_key_expr, Next};
use crate::connect::{gather_health, seconds, Connection, Endpoints, NodeHealth, TopicGraph};
use crate::out::Out;
use crate::table;

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Also listen to every topic for SECONDS and list the keys actually seen.
    #[arg(long, value_name = "SECONDS")]
    sniff: Option<f64>,
    /// How long to wait for the nodes' health replies.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    timeout: f64,
    /// A JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Messages seen on one topic while sniffing.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Seen {
    messages: u64,
    bytes: u64,
}

pub(crate) async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let sniff = args.sniff.map(|s| seconds(s, "--sniff")).transpose()?;
    let bus = args.connection.open().await?;
    // Subscribe before asking the nodes, so both happen during the same time.
    let sniffer = match sniff {
        Some(_) => Some(
            bus.subscribe_raw(&bus.keys().all_topics())
                .context("cannot subscribe to every topic")?,
        ),
        None => None,
    };
    let started = tokio::time::Instant::now();
    let nodes = gather_health(&bus, timeout).await?;
    warn_unhealthy(&nodes);
    let graph = TopicGraph::from_health(&nodes);

    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    if let (Some(sniffer), Some(sniff)) = (&sniffer, sniff) {
        let deadline = started + sniff;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Next::Sample(sample) = next_sample(sniffer, Some(left)).await? else {
                break;
            };
            if let Some(KeyKind::Topic(topic)) = bus.keys().parse(sample.key()) {
                let entry = seen.entry(topic.to_string()).or_default();
                entry.messages += 1;
                entry.bytes += sample.len() as u64;
            }
        }
    }

    let mut topics: BTreeMap<String, (Endpoints, Option<Seen>)> = graph
        .topics
        .into_iter()
        .map(|(topic, ends)| (topic, (ends, None)))
        .collect();
    for (topic, count) in seen {
        topics.entry(topic).or_default().1 = Some(count);
    }

    let mut out = Out::new();
    if args.json {
        let items: Vec<_> = topics
            .iter()
            .map(|(topic, (ends, seen))| {
                json!({ "topic": topic, "publishers": ends.publishers, "subscribers": ends.subscribers, "seen": seen })
            })
            .collect();
        out.line(serde_json::Value::Array(items))?;
        return Ok(ExitCode::SUCCESS);
    }
    if topics.is_empty() {
        let sniffed = sniff
            .map(|s| format!(" and none was seen in {:.1}s", s.as_secs_f64()))
            .unwrap_or_default();
        eprintln!("no topics: {} node(s) answered{sniffed}", nodes.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut headers = vec!["TOPIC", "PUBLISHERS", "SUBSCRIBERS"];
    if sniff.is_some() {
        headers.push("SEEN");
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|(topic, (ends, seen))| {
            let mut row = vec![
                topic.clone(),
                table::list(&ends.publishers),
                table::list(&ends.subscribers),
            ];
            if sniff.is_some() {
                row.push(match seen {
                    Some(seen) => format!(
                        "{} msgs, {}",
                        seen.messages,
                        table::bytes(seen.bytes as f64)
                    ),
                    None => "-".to_string(),
                });
            }
            row
        })
        .collect();
    for line in table::render(&headers, &rows) {
        out.line(line)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Nodes whose health query failed are named on stderr; the listing goes on without them.
fn warn_unhealthy(nodes: &[NodeHealth]) {
    for node in nodes {
        if let Err(err) = &node.health {
            eprintln!(
                "warning: node {} did not report its health: {err}",
                node.name
            );
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// Topic name.
    topic: String,
    /// How long to wait for a message (and for the nodes' health replies).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    timeout: f64,
    /// A JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let bus = args.connection.open().await?;
    let key = topic_key_expr(bus.keys(), &args.topic)?;
    let subscription = bus
        .subscribe_raw(&key)
        .with_context(|| format!("cannot subscribe to {key}"))?;
    let nodes = gather_health(&bus, timeout.min(Duration::from_secs(1))).await?;
    warn_unhealthy(&nodes);
    let ends = TopicGraph::from_health(&nodes)
        .topics
        .remove(&args.topic)
        .unwrap_or_default();
    let message = next_message(&subscription, timeout).await?;

    if ends.publishers.is_empty() && ends.subscribers.is_empty() && message.is_none() {
        bail!(
            "unknown topic {:?}: no node publishes or subscribes it, and no message arrived within {:.1}s",
            args.topic,
            timeout.as_secs_f64()
        );
    }
    let mut out = Out::new();
    if args.json {
        let last = match &message {
            Some(Ok(decoded)) => decoded.json(&key),
            Some(Err(err)) => json!({ "error": err }),
            None => serde_json::Value::Null,
        };
        out.line(json!({
            "topic": args.topic,
            "key": key,
            "publishers": ends.publishers,
            "subscribers": ends.subscribers,
            "lastMessage": last,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out.line(format!("topic:        {}", args.topic))?;
    out.line(format!("key:          {key}"))?;
    out.line(format!("publishers:   {}", table::list(&ends.publishers)))?;
    out.line(format!("subscribers:  {}", table::list(&ends.subscribers)))?;
    match &message {
        Some(Ok(Decoded::Spikes(s))) => {
            out.line(format!(
                "type:         SpikeTensor, shape {:?} ({} elements), encoding {}",
                s.shape, s.len, s.encoding
            ))?;
            out.line(format!("size:         {}", table::bytes(s.bytes as f64)))?;
            out.line(format!(
                "last message: step={} seq={} source={} active={}/{} ({:.1} ms after publication)",
                s.step,
                s.seq,
                s.source,
                s.active,
                s.len,
                age(s.timestamp_ns).as_secs_f64() * 1e3
            ))?;
        }
        Some(Ok(other)) => out.line(format!("last message: {}", other.text(false)))?,
        Some(Err(err)) => out.line(format!("last message: undecodable: {err}"))?,
        None => out.line(format!(
            "last message: none within {:.1}s",
            timeout.as_secs_f64()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The first message to arrive within `timeout`, decoded (or why it could not be).
async fn next_message(
    subscription: &Subscription,
    timeout: Duration,
) -> anyhow::Result<Option<Result<Decoded, String>>> {
    match next_sample(subscription, Some(timeout)).await? {
        Next::Sample(sample) => Ok(Some(decode(&sample, 10).map_err(|err| format!("{err:#}")))),
        Next::Interrupted | Next::TimedOut => Ok(None),
    }
}
