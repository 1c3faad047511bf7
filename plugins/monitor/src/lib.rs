//! The built-in MONITORING plugins: the design's `DataMonitor` and `InsightEngine`.
//!
//! - [`DataMonitor`] reads the spike streams of the layers its host watches
//!   and, once per interval, measures each layer ([`stats`]): firing rate
//!   (`layer_rate_hz`), inter-spike-interval CV (`layer_isi_cv`), Fano factor
//!   (`layer_fano`) and synchrony (`layer_synchrony`). Its host publishes them
//!   as the layer's metrics on the bus.
//! - [`InsightEngine`] reads those metrics (from the bus, whoever measured
//!   them) and reports what deserves an alert: a silent layer
//!   (`insight_silent_layer`), a runaway one (`insight_runaway_layer`) and a
//!   rate drifting from its baseline (`insight_rate_drift`).
//!
//! Both are ordinary plugins with a [`MonitorPlugin`] view; the monitoring
//! service loads them from its `plugins:` parameter.
//!
//! ```
//! use evospike_plugin_api::{MonitorReport, Plugin, PluginConfig};
//!
//! let mut monitor = evospike_monitor::DataMonitor::new();
//! monitor.initialize(&PluginConfig::new()).unwrap();
//! let view = monitor.as_monitor().unwrap();
//! let layer = view.watch_layer("layer1", 2).unwrap();
//! for step in 0..100 {
//!     view.observe_spikes(layer, step, &mut [0u32].into_iter()); // neuron 0 fires every step
//! }
//! let mut report = MonitorReport::default();
//! view.report(&mut report);
//! let rate = report.measurements.iter().find(|m| m.name == "layer_rate_hz").unwrap();
//! assert_eq!(rate.value, 500.0); // one of two neurons at 1 kHz (dt = 1 ms)
//! ```
#![warn(missing_docs)]

mod data_monitor;
mod insight;
pub mod stats;

pub use data_monitor::DataMonitor;
pub use evospike_plugin_api::MonitorPlugin;
pub use insight::InsightEngine;

use evospike_plugin_api::Plugin;

/// Every built-in MONITORING plugin, fresh and uninitialized.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![Box::new(DataMonitor::new()), Box::new(InsightEngine::new())]
}

/// Name of the rate measurement [`InsightEngine`] watches.
pub const RATE_METRIC: &str = "layer_rate_hz";
