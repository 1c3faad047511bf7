//! `logs`: the log consumer as a node — `evospike run logs`.

use evospike_schemas::contract::{NodeTopics, Watch};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evospike_bus::schemas::proto::{ErrorCode, ErrorReply, LogPage, LogQuery, LogRecord};
use evospike_bus::MessageSubscriber;
use evospike_node::kind::NodeKind;
use evospike_node::node::Node;
use evospike_node::params::{Check, Params};
use evospike_node::{NodeError, OrFail};
use evospike_schemas::proto::HealthState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::store::{LogError, LogStore};

/// The service this kind runs, as its start-up errors name it.
const SERVICE: &str = "logs";

/// The `logs` kind.
#[derive(Debug)]
pub struct LogsKind;

/// Parameters of a `logs` node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Directory of the stored log (`logs.redb`).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Records kept; the oldest go first past it.
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Milliseconds records wait to be written together (each write is durable).
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
}

fn default_data_dir() -> String {
    "logs-data".to_owned()
}
fn default_max_records() -> u64 {
    1_000_000
}
fn default_flush_ms() -> u64 {
    100
}

impl Params for LogsParams {
    fn check(&self, check: &mut Check<'_>) {
        if self.data_dir.is_empty() {
            check.fail("data_dir", "".into(), "must name a directory");
        }
        check.at_least("max_records", self.max_records, 1);
        check.at_least("flush_ms", self.flush_ms, 1);
    }
}

/// Records written at once at most.
const BATCH: usize = 1024;

impl NodeKind for LogsKind {
    const NAME: &'static str = SERVICE;
    const SUMMARY: &'static str =
        "the log consumer: stores the log records of every node and serves them to `evospike log`";
    type Params = LogsParams;

    /// It reads every node's log records and answers `evospike log`.
    fn topics(_params: &LogsParams, _node: &str) -> NodeTopics {
        NodeTopics {
            serves: vec!["logs".into()],
            watches: vec![Watch::Logs],
            ..NodeTopics::default()
        }
    }

    async fn run(node: Node, params: LogsParams) -> Result<(), NodeError> {
        let dir = PathBuf::from(&params.data_dir);
        let opening = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || LogStore::open(&dir, params.max_records))
        };
        let store = opening
            .await
            .or_fail(SERVICE, "open its store")?
            .or_fail(SERVICE, format!("open its store in {}", dir.display()))?;
        let store = Arc::new(Mutex::new(store));
        let bus = node.bus().clone();
        let subscriber: MessageSubscriber<LogRecord> =
            bus.message_subscriber(&bus.keys().all("log"))?;
        let query_store = store.clone();
        let _query = bus.serve_async::<LogQuery, LogPage, _, _>(
            &bus.keys().service("logs", "query")?,
            node.name(),
            move |query, _| {
                let store = query_store.clone();
                async move {
                    let result = tokio::task::spawn_blocking(move || {
                        store
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .query(&query)
                    })
                    .await;
                    match result {
                        Ok(Ok(page)) => Ok(page),
                        Ok(Err(LogError::Invalid(m))) => {
                            Err(ErrorReply::new(ErrorCode::InvalidArgument, m))
                        }
                        Ok(Err(e)) => Err(ErrorReply::new(ErrorCode::Internal, e.to_string())),
                        Err(e) => Err(ErrorReply::new(ErrorCode::Internal, e.to_string())),
                    }
                }
            },
        )?;
        tracing::info!(data_dir = %dir.display(), "node {} (logs) storing every node's logs", node.name());
        node.set_state(HealthState::Active);

        let flush_every = Duration::from_millis(params.flush_ms);
        let mut pending: Vec<LogRecord> = Vec::new();
        let mut tick = tokio::time::interval(flush_every);
        let stopped = node.stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                received = subscriber.recv() => match received {
                    Ok(keyed) => {
                        pending.push(keyed.message);
                        if pending.len() < BATCH {
                            continue;
                        }
                    }
                    Err(err) => {
                        tracing::debug!(%err, "a log message could not be read");
                        continue;
                    }
                },
                _ = tick.tick() => {}
                () = &mut stopped => break,
            }
            write(&store, &mut pending).await;
        }
        // What arrived until the end is kept too.
        while let Ok(Some(keyed)) = subscriber.recv_timeout(Duration::ZERO) {
            pending.push(keyed.message);
        }
        write(&store, &mut pending).await;
        Ok(())
    }
}

async fn write(store: &Arc<Mutex<LogStore>>, pending: &mut Vec<LogRecord>) {
    if pending.is_empty() {
        return;
    }
    let records = std::mem::take(pending);
    let store = store.clone();
    let count = records.len();
    let result = tokio::task::spawn_blocking(move || {
        store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&records)
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(%err, count, "log records could not be stored"),
        Err(err) => tracing::error!(%err, count, "log records could not be stored"),
    }
}
