//! The MONITORING plugins monitoring hosts (`DataMonitor`, `InsightEngine`,
//! from `evospike-monitor`), configured by its `plugins:` parameter.
//!
//! Monitoring feeds them: every spike tensor of its `spike_topics` (each
//! publishing layer is announced to the plugins once, then each step is handed
//! over without allocating), and every metric sample it collects from the bus.
//! Once per interval it takes their reports: the measurements are published on
//! the bus as the measured layers' metrics (and so collected back like any
//! node's), the findings become alerts.

use std::collections::HashMap;
use std::sync::Mutex;

use evospike_plugin_api::{LayerId, MonitorPlugin, MonitorReport};
use evospike_plugin_host::{initialize_plugin_system, HostError, PluginManager};
use evospike_schemas::ArchivedSpikeTensor;

/// A publishing layer's size and, per plugin in chain order, its id there.
type Watched = (usize, Vec<Option<LayerId>>);

/// The started plugins and the layers they watch.
#[derive(Debug)]
pub(crate) struct MonitorPlugins {
    manager: PluginManager,
    /// Per publishing layer (its node name).
    layers: Mutex<HashMap<String, Watched>>,
}

impl MonitorPlugins {
    /// Registers the built-in MONITORING plugins and starts those `plugins`
    /// names (none is on by default). Errors name the plugin and the key.
    pub(crate) fn start(
        plugins: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<MonitorPlugins, HostError> {
        let no_dirs: [&str; 0] = [];
        let mut manager = initialize_plugin_system(evospike_monitor::builtin_plugins(), &no_dirs)?;
        manager.configure_and_start(plugins, |_| false)?;
        Ok(MonitorPlugins {
            manager,
            layers: Mutex::new(HashMap::new()),
        })
    }

    fn views(&self) -> impl Iterator<Item = &dyn MonitorPlugin> + '_ {
        self.manager
            .active_views(|p| p.as_monitor())
            .map(|(_, view)| view)
    }

    /// The names of the plugins running.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.manager
            .active_views(|p| p.as_monitor())
            .map(|(meta, _)| meta.name.as_str())
            .collect()
    }

    /// One spike tensor from a watched topic (its source is the layer).
    pub(crate) fn observe_tensor(&self, tensor: &ArchivedSpikeTensor) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let (source, neurons) = (tensor.source(), tensor.len());
        let known = layers.get(source).is_some_and(|(n, _)| *n == neurons);
        if !known {
            let ids = self
                .views()
                .map(|p| p.watch_layer(source, neurons))
                .collect();
            layers.insert(source.to_owned(), (neurons, ids));
        }
        let Some((_, ids)) = layers.get(source) else {
            return;
        };
        let step = tensor.header.step.to_native();
        for (plugin, id) in self.views().zip(ids) {
            if let Some(id) = id {
                plugin.observe_spikes(*id, step, &mut tensor.active_indices());
            }
        }
    }

    /// A metric sample collected from the bus.
    pub(crate) fn observe_metric(&self, node: &str, name: &str, value: f64) {
        for plugin in self.views() {
            plugin.observe_metric(node, name, value);
        }
    }

    /// Every plugin's report for the interval that ended.
    pub(crate) fn report(&self) -> MonitorReport {
        let mut report = MonitorReport::default();
        for plugin in self.views() {
            plugin.report(&mut report);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::SpikeTensor;
    use serde_json::json;

    fn start(plugins: serde_json::Value) -> Result<MonitorPlugins, HostError> {
        MonitorPlugins::start(plugins.as_object().unwrap())
    }

    #[test]
    fn spikes_in_measurements_and_findings_out() {
        let plugins = start(json!({"DataMonitor": {}, "InsightEngine": {"for_s": 0}})).unwrap();
        assert_eq!(plugins.names(), ["DataMonitor", "InsightEngine"]);
        for step in 0..50 {
            let active = if step % 2 == 0 { vec![1, 3] } else { vec![] };
            let tensor = SpikeTensor::builder("layer1")
                .shape([4])
                .step(step)
                .sparse(active)
                .unwrap();
            let bytes = tensor.to_aligned_bytes();
            plugins.observe_tensor(SpikeTensor::view(&bytes).unwrap());
            let silent = SpikeTensor::builder("layer2")
                .shape([8])
                .step(step)
                .sparse(vec![])
                .unwrap();
            let bytes = silent.to_aligned_bytes();
            plugins.observe_tensor(SpikeTensor::view(&bytes).unwrap());
        }
        let report = plugins.report();
        let rate = |node: &str| {
            report
                .measurements
                .iter()
                .find(|m| m.node == node && m.name == "layer_rate_hz")
                .map(|m| m.value)
        };
        // Two of four neurons every other 1 ms step: 250 Hz.
        assert_eq!(rate("layer1"), Some(250.0));
        assert_eq!(rate("layer2"), Some(0.0));
        // The engine sees the measurements as they come back from the bus.
        for m in &report.measurements {
            plugins.observe_metric(&m.node, &m.name, m.value);
        }
        let findings = plugins.report().findings;
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            (findings[0].rule.as_str(), findings[0].node.as_str()),
            ("insight_silent_layer", "layer2")
        );
    }

    #[test]
    fn none_run_unless_named_and_bad_config_is_refused() {
        assert!(start(json!({})).unwrap().names().is_empty());
        assert!(start(json!({"DataMonitor": {"enabled": false}}))
            .unwrap()
            .names()
            .is_empty());
        let err = start(json!({"DataMonitr": {}})).unwrap_err();
        assert!(err.to_string().contains("DataMonitr"), "{err}");
        let err = start(json!({"InsightEngine": {"silent": 1}})).unwrap_err();
        assert!(err.to_string().contains("`silent`"), "{err}");
    }
}
