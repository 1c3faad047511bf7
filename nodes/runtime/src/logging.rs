//! Logging: readable lines on stderr (filtered by `RUST_LOG`, default
//! [`DEFAULT_FILTER`]), and the same events published as [`LogRecord`]s on the
//! node's log topic.
//!
//! A record carries the fields of its event and of the spans it happened in
//! (the innermost span's value wins, the event's own over any span's): a
//! handler running inside the span a service opens for each request (its
//! `request_id`) logs that ID without naming it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use evospike_bus::Bus;
use evospike_schemas::proto::{LogLevel, LogRecord};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
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
    if SENDER.set(tx.clone()).is_err() {
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
        .with(BusLayer { sender: tx }.with_filter(bus_filter));
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

/// Turns events into [`LogRecord`]s for the bus.
struct BusLayer {
    sender: mpsc::Sender<LogRecord>,
}

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

impl<S> Layer<S> for BusLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if !fields.fields.is_empty() {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Innermost span first: a field already set stays.
        for span in ctx.event_scope(event).into_iter().flatten() {
            if let Some(SpanFields(inherited)) = span.extensions().get::<SpanFields>() {
                for (name, value) in inherited {
                    fields
                        .fields
                        .entry(name.clone())
                        .or_insert_with(|| value.clone());
                }
            }
        }
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
        let _ = self.sender.try_send(record);
    }
}

/// The fields a span was opened with, kept for the records of its events.
struct SpanFields(HashMap<String, String>);

/// Waits (at most half a second) until the queued records have been handed to the bus.
pub async fn flush() {
    let Some(sender) = SENDER.get() else { return };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while sender.capacity() < sender.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records a closure's events make, through a [`BusLayer`] of its own.
    fn records_of(f: impl FnOnce()) -> Vec<LogRecord> {
        let (sender, mut receiver) = mpsc::channel(16);
        let subscriber = tracing_subscriber::registry().with(BusLayer { sender });
        tracing::subscriber::with_default(subscriber, f);
        std::iter::from_fn(|| receiver.try_recv().ok()).collect()
    }

    #[test]
    fn a_record_carries_the_fields_of_the_spans_it_happened_in() {
        let records = records_of(|| {
            let request = tracing::info_span!("request", request_id = "r-1", route = "/infer");
            let _request = request.enter();
            let call = tracing::info_span!("call", caller = "gateway", route = "inner");
            let _call = call.enter();
            tracing::info!(model = "m", "loading model");
            tracing::warn!(request_id = "own", "an event's own field wins");
        });
        assert_eq!(records.len(), 2);
        let fields = &records[0].fields;
        assert_eq!(records[0].message, "loading model");
        assert_eq!(fields["model"], "m");
        assert_eq!(fields["request_id"], "r-1");
        assert_eq!(fields["caller"], "gateway");
        assert_eq!(fields["route"], "inner", "the innermost span wins");
        assert_eq!(records[1].fields["request_id"], "own");
    }

    #[test]
    fn outside_any_span_a_record_has_only_its_own_fields() {
        let records = records_of(|| tracing::info!(n = 3, "alone"));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].fields.len(), 1);
        assert_eq!(records[0].fields["n"], "3");
    }
}
