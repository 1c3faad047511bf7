//! MONITORING plugins that watch a running network: spike streams in,
//! measurements and findings out.
//!
//! A node that hosts them (the monitoring service) subscribes to the spike
//! topics its config names, announces each layer it sees once with
//! [`MonitorPlugin::watch_layer`], and hands every step's spikes to
//! [`MonitorPlugin::observe_spikes`] — the hot path, which must not allocate.
//! Every metric sample it sees on the bus goes to
//! [`MonitorPlugin::observe_metric`]. Once per interval it asks each plugin for
//! a [`MonitorReport`]: the measurements are published as metrics on the bus
//! (so every consumer of metrics sees them), the findings become alerts.
//!
//! The methods take `&self` (the host shares the plugins between its tasks):
//! a plugin keeps its state behind its own lock.

use crate::Plugin;

/// A layer a plugin watches, as returned by [`MonitorPlugin::watch_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerId(pub usize);

/// One measurement to publish: metric `name` of node `node`.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The node measured (the layer's node name).
    pub node: String,
    /// Metric name (`layer_rate_hz`, …).
    pub name: String,
    /// Its value.
    pub value: f64,
}

/// A condition that holds now and should be an alert while it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The alert's rule name (`insight_silent_layer`, …).
    pub rule: String,
    /// The node it is about.
    pub node: String,
    /// The value that triggered it.
    pub value: f64,
    /// What it means, for people.
    pub message: String,
    /// Seconds it must keep holding before the alert fires (pending until then).
    pub for_s: f64,
}

/// What a plugin reports at the end of an interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorReport {
    /// Metrics to publish.
    pub measurements: Vec<Measurement>,
    /// Conditions holding now.
    pub findings: Vec<Finding>,
}

/// A MONITORING plugin's view for a host that feeds it spikes and metrics.
pub trait MonitorPlugin: Plugin {
    /// Starts watching layer `node` of `neurons` neurons (allocating its state
    /// once). `None` if the plugin does not read spikes.
    fn watch_layer(&self, node: &str, neurons: usize) -> Option<LayerId> {
        let _ = (node, neurons);
        None
    }

    /// The spikes of one step of a watched layer, as increasing neuron indices.
    /// Called for every step: must not allocate.
    fn observe_spikes(&self, layer: LayerId, step: u64, active: &mut dyn Iterator<Item = u32>) {
        let _ = (layer, step, active);
    }

    /// A metric sample seen on the bus.
    fn observe_metric(&self, node: &str, name: &str, value: f64) {
        let _ = (node, name, value);
    }

    /// The interval is over: add measurements and findings to `report`.
    fn report(&self, report: &mut MonitorReport);
}
