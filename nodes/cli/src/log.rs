//! `evospike log`: the log records the log consumer (`evospike run logs`) stored,
//! filtered by node, level and time, and followed as they arrive.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use evospike_bus::BusError;
use evospike_schemas::proto::{ErrorCode, LogLevel, LogPage, LogQuery, LogRecord};
use serde_json::json;

use crate::connect::Connection;
use crate::exit::invalid;
use crate::out::Out;

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `--follow` asks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Only this node's records.
    #[arg(long)]
    node: Option<String>,
    /// Only records at this level or above: trace, debug, info, warn, error.
    #[arg(long)]
    level: Option<String>,
    /// Only records from this long ago (`30s`, `10m`, `2h`, `1day`) or since
    /// this time (RFC 3339, e.g. `2026-11-28T12:00:00Z`).
    #[arg(long)]
    since: Option<String>,
    /// Keep printing records as they are stored, until Ctrl-C.
    #[arg(long, short)]
    follow: bool,
    /// At most this many records before following (the oldest first).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn since_unix_ns(since: &str) -> anyhow::Result<u64> {
    let now = SystemTime::now();
    let at = if let Ok(ago) = humantime::parse_duration(since) {
        now.checked_sub(ago).unwrap_or(UNIX_EPOCH)
    } else if let Ok(at) = humantime::parse_rfc3339_weak(since) {
        at
    } else {
        return Err(invalid(format!(
            "--since `{since}` is neither a duration (30s, 10m, 2h) nor a time (2026-11-28T12:00:00Z)"
        )));
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

fn level_name(level: i32) -> &'static str {
    match LogLevel::try_from(level).unwrap_or(LogLevel::Unspecified) {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
        LogLevel::Unspecified => "-",
    }
}

fn line(record: &LogRecord) -> String {
    let time = humantime::format_rfc3339_millis(
        UNIX_EPOCH + Duration::from_nanos(record.timestamp_unix_ns),
    );
    let mut text = format!(
        "{time} {:<5} {}: {}",
        level_name(record.level),
        record.node,
        record.message
    );
    for (k, v) in &record.fields {
        text.push_str(&format!(" {k}={v}"));
    }
    text
}

pub(crate) async fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    if let Some(level) = &args.level {
        if !["trace", "debug", "info", "warn", "warning", "error"]
            .contains(&level.to_ascii_lowercase().as_str())
        {
            return Err(invalid(format!(
                "--level `{level}` is not a log level (trace, debug, info, warn, error)"
            )));
        }
    }
    let mut query = LogQuery {
        node: args.node.clone().unwrap_or_default(),
        level: args.level.clone().unwrap_or_default(),
        since_unix_ns: args
            .since
            .as_deref()
            .map(since_unix_ns)
            .transpose()?
            .unwrap_or(0),
        after_seq: 0,
        limit: args.limit,
    };
    let bus = args.connection.open().await?;
    let key = bus.keys().service("logs", "query")?;
    let mut out = Out::new();
    let ask = |query: LogQuery| {
        let (bus, key) = (bus.clone(), key.clone());
        async move {
            bus.request::<LogQuery, LogPage>(&key, &query, QUERY_TIMEOUT)
                .await
                .map_err(|err| match err {
                    BusError::Timeout { .. } => anyhow::Error::new(err).context(
                        "no log consumer answered — is a `logs` node running (`evospike run logs`)?",
                    ),
                    BusError::Remote {
                        code: ErrorCode::InvalidArgument,
                        ref message,
                        ..
                    } => invalid(message.clone()),
                    other => anyhow::Error::new(other).context("the log query failed"),
                })
        }
    };
    let print = |page: &LogPage, out: &mut Out| -> anyhow::Result<()> {
        for stored in &page.logs {
            let Some(record) = &stored.record else {
                continue;
            };
            if args.json {
                out.line(json!({"seq": stored.seq, "record": record}))?;
            } else {
                out.line(line(record))?;
            }
        }
        Ok(())
    };
    let page = ask(query.clone()).await?;
    print(&page, &mut out)?;
    query.after_seq = page.last_seq;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Following: everything stored from now on, without a count limit.
    query.limit = 0;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
        let page = ask(query.clone()).await.context("following the log")?;
        print(&page, &mut out)?;
        query.after_seq = page.last_seq;
    }
}
