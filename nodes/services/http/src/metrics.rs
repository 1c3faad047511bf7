//! Request counters and service gauges, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A service's metrics: what the kit counts for every request, plus gauges the
/// service sets itself ([`Metrics::set_gauge`]).
#[derive(Debug)]
pub struct Metrics {
    service: &'static str,
    in_flight: AtomicI64,
    requests: Mutex<BTreeMap<(String, String, u16), Counted>>,
    gauges: Mutex<BTreeMap<&'static str, (&'static str, f64)>>,
    counters: Mutex<BTreeMap<&'static str, (&'static str, f64)>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    count: u64,
    seconds: f64,
}

impl Metrics {
    pub(crate) fn new(service: &'static str) -> Metrics {
        Metrics {
            service,
            in_flight: AtomicI64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            gauges: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finished(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let entry = requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.seconds += took.as_secs_f64();
    }

    /// Sets gauge `name` (a Prometheus metric name, e.g. `registry_models`).
    pub fn set_gauge(&self, name: &'static str, help: &'static str, value: f64) {
        self.gauges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, (help, value));
    }

    /// Sets counter `name` (a Prometheus metric name ending in `_total`) to the
    /// service's own running count.
    pub fn set_counter(&self, name: &'static str, help: &'static str, value: f64) {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, (help, value));
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let service = self.service;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((method, route, status), counted) in &requests {
            let _ = writeln!(
                out,
                "http_requests_total{{service=\"{service}\",method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                counted.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Time to answer HTTP requests."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds summary");
        let mut by_route: BTreeMap<(&str, &str), Counted> = BTreeMap::new();
        for ((method, route, _), counted) in &requests {
            let entry = by_route.entry((method, route)).or_default();
            entry.count += counted.count;
            entry.seconds += counted.seconds;
        }
        for ((method, route), counted) in by_route {
            let labels = format!(
                "service=\"{service}\",method=\"{method}\",route=\"{}\"",
                escape(route)
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                counted.seconds
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                counted.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_requests_in_flight HTTP requests being answered."
        );
        let _ = writeln!(out, "# TYPE http_requests_in_flight gauge");
        let _ = writeln!(
            out,
            "http_requests_in_flight{{service=\"{service}\"}} {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        for (kind, values) in [("gauge", &self.gauges), ("counter", &self.counters)] {
            for (name, (help, value)) in values.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name}{{service=\"{service}\"}} {value}");
            }
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_durations_and_gauges() {
        let metrics = Metrics::new("registry");
        metrics.started();
        metrics.finished("GET", "/models/{model_id}", 404, Duration::from_millis(5));
        metrics.set_gauge("registry_models", "Models registered.", 2.0);
        metrics.set_counter("registry_uploads_total", "Uploads.", 3.0);
        let text = metrics.render();
        assert!(text.contains(
            "http_requests_total{service=\"registry\",method=\"GET\",route=\"/models/{model_id}\",status=\"404\"} 1"
        ), "{text}");
        assert!(text.contains("http_request_duration_seconds_count{service=\"registry\",method=\"GET\",route=\"/models/{model_id}\"} 1"));
        assert!(text.contains("http_requests_in_flight{service=\"registry\"} 0"));
        assert!(
            text.contains("# TYPE registry_models gauge\nregistry_models{service=\"registry\"} 2")
        );
        assert!(text.contains(
            "# TYPE registry_uploads_total counter\nregistry_uploads_total{service=\"registry\"} 3"
        ));
    }
}
