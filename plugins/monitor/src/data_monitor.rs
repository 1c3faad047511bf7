//! `DataMonitor`: per-layer statistics from spike streams.

use std::sync::Mutex;

use evospike_plugin_api::{
    crate_version, LayerId, Measurement, MonitorPlugin, MonitorReport, Plugin, PluginConfig,
    PluginError, PluginMetadata, PluginType,
};
use serde::Deserialize;

use crate::stats::LayerStats;
use evospike_plugin_api::settings;

/// Measures each watched layer once per interval: `layer_rate_hz`,
/// `layer_isi_cv`, `layer_fano`, `layer_synchrony` (the last three when the
/// window had enough spikes) and `layer_window_steps`.
///
/// Settings: `dt_ms` (1.0: the layers' time step), `bin_steps` (10: the bin of
/// the Fano factor and synchrony). A layer whose window had no step is not
/// reported (it is not running; monitoring's `node_down` covers that).
#[derive(Debug)]
pub struct DataMonitor {
    meta: PluginMetadata,
    dt_ms: f64,
    bin_steps: u32,
    layers: Mutex<Vec<(String, LayerStats)>>,
}

#[derive(Deserialize)]
struct Settings {
    #[serde(default = "default_dt")]
    dt_ms: f64,
    #[serde(default = "default_bin")]
    bin_steps: u32,
}

fn default_dt() -> f64 {
    1.0
}
fn default_bin() -> u32 {
    10
}

impl DataMonitor {
    /// The plugin with default settings.
    pub fn new() -> Self {
        let meta = PluginMetadata::new("DataMonitor", crate_version!(), PluginType::Monitoring)
            .with_description("per-layer firing rate, ISI CV, Fano factor and synchrony from spike topics, published as metrics")
            .with_author("evospike")
            .with_capability("spike-statistics");
        Self {
            meta,
            dt_ms: default_dt(),
            bin_steps: default_bin(),
            layers: Mutex::new(Vec::new()),
        }
    }
}

impl Default for DataMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Plugin for DataMonitor {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        let name = &self.meta.name;
        let s: Settings = settings::read(name, &["dt_ms", "bin_steps"], config)?;
        if !s.dt_ms.is_finite() || s.dt_ms <= 0.0 {
            return Err(PluginError::invalid_config(
                name,
                "dt_ms",
                format!("must be a positive number of milliseconds, not {}", s.dt_ms),
            ));
        }
        if s.bin_steps < 1 {
            return Err(PluginError::invalid_config(
                name,
                "bin_steps",
                "must be at least 1",
            ));
        }
        self.dt_ms = s.dt_ms;
        self.bin_steps = s.bin_steps;
        Ok(())
    }

    fn as_monitor(&self) -> Option<&dyn MonitorPlugin> {
        Some(self)
    }
}

impl MonitorPlugin for DataMonitor {
    fn watch_layer(&self, node: &str, neurons: usize) -> Option<LayerId> {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = LayerStats::new(neurons, self.bin_steps);
        if let Some(i) = layers.iter().position(|(n, _)| n == node) {
            // The layer came back with another size: start over.
            if layers[i].1.neurons() != neurons {
                layers[i].1 = fresh;
            }
            return Some(LayerId(i));
        }
        layers.push((node.to_owned(), fresh));
        Some(LayerId(layers.len() - 1))
    }

    fn observe_spikes(&self, layer: LayerId, step: u64, active: &mut dyn Iterator<Item = u32>) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, stats)) = layers.get_mut(layer.0) {
            stats.step(step, active);
        }
    }

    fn report(&self, report: &mut MonitorReport) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        for (node, stats) in layers.iter_mut() {
            let window = stats.finish(self.dt_ms);
            if window.steps == 0 {
                continue;
            }
            let mut measure = |name: &str, value: Option<f64>| {
                if let Some(value) = value {
                    report.measurements.push(Measurement {
                        node: node.clone(),
                        name: name.to_owned(),
                        value,
                    });
                }
            };
            measure(crate::RATE_METRIC, Some(window.rate_hz));
            measure("layer_isi_cv", window.isi_cv);
            measure("layer_fano", window.fano);
            measure("layer_synchrony", window.synchrony);
            measure("layer_window_steps", Some(window.steps as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_running_layer_and_refuses_bad_settings() {
        let mut monitor = DataMonitor::new();
        let config = json!({"dt_ms": 0.5, "bin_steps": 5});
        monitor.initialize(config.as_object().unwrap()).unwrap();
        let a = monitor.watch_layer("a", 4).unwrap();
        let b = monitor.watch_layer("b", 4).unwrap();
        assert_eq!(monitor.watch_layer("a", 4), Some(a));
        for step in 0..20 {
            monitor.observe_spikes(a, step, &mut [1u32, 2].into_iter());
        }
        let mut report = MonitorReport::default();
        monitor.report(&mut report);
        let of = |node: &str, name: &str| {
            report
                .measurements
                .iter()
                .find(|m| m.node == node && m.name == name)
                .map(|m| m.value)
        };
        // Two of four neurons every 0.5 ms step: 1 kHz on average.
        assert_eq!(of("a", "layer_rate_hz"), Some(1000.0));
        assert_eq!(of("a", "layer_isi_cv"), Some(0.0));
        assert_eq!(of("a", "layer_window_steps"), Some(20.0));
        assert_eq!(of("b", "layer_rate_hz"), None, "b did not step");
        let _ = b;

        let config = json!({"dt": 1});
        let err = DataMonitor::new()
            .initialize(config.as_object().unwrap())
            .unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidConfig { ref key, .. } if key == "dt"),
            "{err}"
        );
        let config = json!({"dt_ms": -1});
        assert!(DataMonitor::new()
            .initialize(config.as_object().unwrap())
            .is_err());
    }
}
