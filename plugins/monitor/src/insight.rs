//! `InsightEngine`: alerts from the layers' measured rates.

use std::collections::BTreeMap;
use std::sync::Mutex;

use evospike_plugin_api::{
    crate_version, Finding, MonitorPlugin, MonitorReport, Plugin, PluginConfig, PluginError,
    PluginMetadata, PluginType,
};
use serde::Deserialize;

use evospike_plugin_api::settings;

/// Watches every layer's `layer_rate_hz` (as [`DataMonitor`](crate::DataMonitor)
/// publishes it) and reports, per layer:
///
/// - `insight_silent_layer` — the rate is below `silent_hz` (0.1 Hz);
/// - `insight_runaway_layer` — the rate is above `runaway_hz` (500 Hz);
/// - `insight_rate_drift` — the rate is more than `drift` (0.5, i.e. 50 %) away
///   from the layer's baseline, the mean of its first `baseline_windows` (5)
///   measurements (a baseline below `silent_hz` is none).
///
/// Each becomes an alert that fires after holding `for_s` seconds (2). A layer
/// not measured for `stale_reports` (5) intervals is forgotten.
#[derive(Debug)]
pub struct InsightEngine {
    meta: PluginMetadata,
    settings: Settings,
    layers: Mutex<BTreeMap<String, Layer>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Settings {
    #[serde(default = "default_silent")]
    silent_hz: f64,
    #[serde(default = "default_runaway")]
    runaway_hz: f64,
    #[serde(default = "default_drift")]
    drift: f64,
    #[serde(default = "default_baseline")]
    baseline_windows: u32,
    #[serde(default = "default_for")]
    for_s: f64,
    #[serde(default = "default_stale")]
    stale_reports: u32,
}

fn default_silent() -> f64 {
    0.1
}
fn default_runaway() -> f64 {
    500.0
}
fn default_drift() -> f64 {
    0.5
}
fn default_baseline() -> u32 {
    5
}
fn default_for() -> f64 {
    2.0
}
fn default_stale() -> u32 {
    5
}

const KEYS: &[&str] = &[
    "silent_hz",
    "runaway_hz",
    "drift",
    "baseline_windows",
    "for_s",
    "stale_reports",
];

/// What the engine knows of one layer.
#[derive(Debug, Clone, Default)]
struct Layer {
    rate: f64,
    baseline_sum: f64,
    baseline_n: u32,
    /// Reports since the last measurement.
    unseen: u32,
}

impl InsightEngine {
    /// The plugin with default settings.
    pub fn new() -> Self {
        let meta = PluginMetadata::new("InsightEngine", crate_version!(), PluginType::Monitoring)
            .with_description(
                "alerts on silent, runaway and drifting layers from their measured rates",
            )
            .with_author("evospike")
            .with_capability("insight");
        let settings = Settings {
            silent_hz: default_silent(),
            runaway_hz: default_runaway(),
            drift: default_drift(),
            baseline_windows: default_baseline(),
            for_s: default_for(),
            stale_reports: default_stale(),
        };
        Self {
            meta,
            settings,
            layers: Mutex::new(BTreeMap::new()),
        }
    }

    fn findings(&self, node: &str, layer: &Layer, out: &mut Vec<Finding>) {
        let s = &self.settings;
        let rate = layer.rate;
        let mut find = |rule: &str, message: String| {
            out.push(Finding {
                rule: rule.to_owned(),
                node: node.to_owned(),
                value: rate,
                message,
                for_s: s.for_s,
            })
        };
        if rate < s.silent_hz {
            find(
                "insight_silent_layer",
                format!(
                    "{node} fires at {rate:.2} Hz (silent below {} Hz)",
                    s.silent_hz
                ),
            );
        }
        if rate > s.runaway_hz {
            find(
                "insight_runaway_layer",
                format!(
                    "{node} fires at {rate:.0} Hz (runaway above {} Hz)",
                    s.runaway_hz
                ),
            );
        }
        if layer.baseline_n == s.baseline_windows {
            let baseline = layer.baseline_sum / f64::from(layer.baseline_n);
            if baseline >= s.silent_hz && ((rate - baseline) / baseline).abs() > s.drift {
                find(
                    "insight_rate_drift",
                    format!(
                        "{node} fires at {rate:.1} Hz, {:+.0}% from its baseline of {baseline:.1} Hz",
                        (rate - baseline) / baseline * 100.0
                    ),
                );
            }
        }
    }
}

impl Default for InsightEngine {
    fn default() -> Self {
        Self::new()
    }
}

fn positive(plugin: &str, key: &str, value: f64) -> Result<(), PluginError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(PluginError::invalid_config(
            plugin,
            key,
            format!("must be a number >= 0, not {value}"),
        ))
    }
}

impl Plugin for InsightEngine {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        let name = &self.meta.name;
        let s: Settings = settings::read(name, KEYS, config)?;
        positive(name, "silent_hz", s.silent_hz)?;
        positive(name, "runaway_hz", s.runaway_hz)?;
        positive(name, "drift", s.drift)?;
        positive(name, "for_s", s.for_s)?;
        if s.runaway_hz <= s.silent_hz {
            return Err(PluginError::invalid_config(
                name,
                "runaway_hz",
                format!("must be above silent_hz ({})", s.silent_hz),
            ));
        }
        for (key, value) in [
            ("baseline_windows", s.baseline_windows),
            ("stale_reports", s.stale_reports),
        ] {
            if value < 1 {
                return Err(PluginError::invalid_config(name, key, "must be at least 1"));
            }
        }
        self.settings = s;
        Ok(())
    }

    fn as_monitor(&self) -> Option<&dyn MonitorPlugin> {
        Some(self)
    }
}

impl MonitorPlugin for InsightEngine {
    fn observe_metric(&self, node: &str, name: &str, value: f64) {
        if name != crate::RATE_METRIC || !value.is_finite() {
            return;
        }
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let layer = match layers.get_mut(node) {
            Some(layer) => layer,
            None => layers.entry(node.to_owned()).or_default(),
        };
        layer.rate = value;
        layer.unseen = 0;
        if layer.baseline_n < self.settings.baseline_windows {
            layer.baseline_sum += value;
            layer.baseline_n += 1;
        }
    }

    fn report(&self, report: &mut MonitorReport) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let stale = self.settings.stale_reports;
        layers.retain(|_, layer| {
            layer.unseen += 1;
            layer.unseen <= stale
        });
        for (node, layer) in layers.iter() {
            self.findings(node, layer, &mut report.findings);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine(config: serde_json::Value) -> InsightEngine {
        let mut engine = InsightEngine::new();
        engine.initialize(config.as_object().unwrap()).unwrap();
        engine
    }

    fn rules(engine: &InsightEngine) -> Vec<(String, String)> {
        let mut report = MonitorReport::default();
        engine.report(&mut report);
        report
            .findings
            .into_iter()
            .map(|f| (f.rule, f.node))
            .collect()
    }

    #[test]
    fn silent_runaway_and_drifting_layers() {
        let e = engine(json!({"baseline_windows": 2, "runaway_hz": 300}));
        e.observe_metric("quiet", "layer_rate_hz", 0.0);
        e.observe_metric("wild", "layer_rate_hz", 900.0);
        e.observe_metric("steady", "layer_rate_hz", 20.0);
        e.observe_metric("steady", "spikes_per_s", 0.0); // not a rate: ignored
        let found = rules(&e);
        assert!(found.contains(&("insight_silent_layer".into(), "quiet".into())));
        assert!(found.contains(&("insight_runaway_layer".into(), "wild".into())));
        assert!(!found.iter().any(|(_, n)| n == "steady"), "{found:?}");
        // Baseline of steady: 20 and 22 → 21 Hz; 25 is within 50 %, 5 is not.
        e.observe_metric("steady", "layer_rate_hz", 22.0);
        e.observe_metric("steady", "layer_rate_hz", 25.0);
        assert!(!rules(&e).iter().any(|(_, n)| n == "steady"));
        e.observe_metric("steady", "layer_rate_hz", 5.0);
        let found = rules(&e);
        assert!(
            found.contains(&("insight_rate_drift".into(), "steady".into())),
            "{found:?}"
        );
    }

    #[test]
    fn layers_no_longer_measured_are_forgotten() {
        let e = engine(json!({"stale_reports": 2}));
        e.observe_metric("gone", "layer_rate_hz", 0.0);
        assert_eq!(rules(&e).len(), 1);
        assert_eq!(rules(&e).len(), 1);
        assert!(rules(&e).is_empty());
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (config, key) in [
            (json!({"silent": 1}), "silent"),
            (json!({"drift": -1}), "drift"),
            (json!({"silent_hz": 10, "runaway_hz": 5}), "runaway_hz"),
            (json!({"baseline_windows": 0}), "baseline_windows"),
            (json!({"for_s": "soon"}), "for_s"),
        ] {
            let err = InsightEngine::new()
                .initialize(config.as_object().unwrap())
                .unwrap_err();
            assert!(
                matches!(err, PluginError::InvalidConfig { key: ref k, .. } if k == key),
                "{config}: {err}"
            );
        }
    }
}
