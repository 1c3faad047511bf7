//! Logging: readable lines on stderr (filtered by `RUST_LOG`, default
//! [`DEFAULT_FILTER`]), and the same events published as [`LogRecord`]s on the
//! node's log topic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use evospike_bus::Bus;
use evospike_schemas::proto::{LogLevel, LogRecord};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Records waiting to be published; bounded so a stalled bus never blocks logging.
const QUEUE: usize = 1024;

/// What is logged without `RUST_LOG`.
pub const DEFAULT_FILTER: &str = "info,zenoh=error";

static SENDER: OnceLock<mpsc::Sender<LogRecord>> = OnceLock::new();

/// Installs the global subscriber (once per process): stderr output and the bus
/// forwarder. Returns the receiving end for [`forward_logs`], or `None` when logging
/// was already installed.
pub fn init_logging() -> Option<mpsc::Receiver<LogRecord>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    if SENDER.set(tx).is_err() {
        return None;
    }
    // Zenoh's own warnings name its source files and repeat what the bus reports
    // as an error anyway; `RUST_LOG=zenoh=warn` shows them.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // Zenoh's own events are not forwarded: publishing them would log again.
    let bus_filter =
        tracing_subscriber::filter::filter_fn(|meta| !meta.target().starts_with("zenoh"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(BusLayer.with_filter(bus_filter));
    if registry.try_init().is_err() {
        return None;
    }
    Some(rx)
}

/// Publishes queued records on `evospike/<ns>/log/<node>` until the queue closes.
pub async fn forward_logs(bus: Bus, node: String, mut records: mpsc::Receiver<LogRecord>) {
    let publisher = match bus
        .keys()
        .log(&node)
        .map(|key| bus.message_publisher::<LogRecord>(&key))
    {
        Ok(Ok(publisher)) => publisher,
        Ok(Err(err)) | Err(err) => {
            eprintln!("logs of {node} are not published on the bus: {err}");
            return;
        }
    };
    while let Some(mut record) = records.recv().await {
        record.node.clone_from(&node);
        // A failed publish must not log (it would feed itself); it is dropped.
        let _ = publisher.publish(&record);
    }
}

struct BusLayer;

#[derive(Default)]
struct Fields {
    message: String,
    fields: HashMap<String, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .insert(field.name().to_string(), value.to_string());
        }
    }
}

fn level(level: &tracing::Level) -> LogLevel {
    match *level {
        tracing::Level::TRACE => LogLevel::Trace,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::ERROR => LogLevel::Error,
    }
}

impl<S: tracing::Subscriber> Layer<S> for BusLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let Some(sender) = SENDER.get() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let record = LogRecord {
            timestamp_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            level: level(event.metadata().level()) as i32,
            node: String::new(),
            target: event.metadata().target().to_string(),
            message: fields.message,
            fields: fields.fields,
        };
        // Full queue: the record still reached stderr; the bus copy is dropped.
        let _ = sender.try_send(record);
    }
}

/// Waits (at most half a second) until the queued records have been handed to the bus.
pub async fn flush() {
    let Some(sender) = SENDER.get() else { return };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while sender.capacity() < sender.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
