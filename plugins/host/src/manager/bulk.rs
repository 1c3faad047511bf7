//! Starting and stopping every plugin, in dependency-then-priority order.

use evospike_plugin_api::{PluginMetadata, PluginStatus, PluginType};

use super::{PluginManager, StartReport, StopReport};
use crate::error::{DependencyError, HostError};
use crate::order::start_order;

impl PluginManager {
    /// The order [`start_all`](Self::start_all) would use for the enabled plugins.
    pub fn start_order(&self) -> Result<Vec<String>, HostError> {
        let metadata: Vec<&PluginMetadata> = self
            .registry
            .entries()
            .filter(|e| e.status() != &PluginStatus::Unloaded)
            .map(|e| e.metadata())
            .collect();
        Ok(start_order(&metadata, |n| self.config.is_enabled(n))?)
    }

    /// Initialize and activate every enabled plugin: dependencies first, then by
    /// priority. A dependency error (missing, disabled, incompatible, cycle) is
    /// returned before anything starts. A plugin that fails is marked failed and
    /// its dependents are skipped (marked failed with the reason); the rest start.
    pub fn start_all(&mut self) -> Result<StartReport, HostError> {
        self.config
            .check_known(self.registry.entries().map(|e| e.metadata().name.as_str()))?;
        let order = self.start_order()?;
        let mut report = StartReport {
            disabled: self
                .registry
                .entries()
                .map(|e| e.metadata().name.clone())
                .filter(|n| !self.config.is_enabled(n))
                .collect(),
            ..StartReport::default()
        };
        for name in &order {
            let Some(entry) = self.registry.find_name(name) else {
                continue;
            };
            let plugin_type = entry.metadata().plugin_type;
            match self.start_one(plugin_type, name) {
                Ok(true) => report.started.push(name.clone()),
                Ok(false) => {}
                Err(reason) => report.failed.push((name.clone(), reason)),
            }
        }
        self.start_order = order;
        Ok(report)
    }

    /// Bring one plugin to Active. `Ok(false)` if it already was.
    fn start_one(&mut self, plugin_type: PluginType, name: &str) -> Result<bool, String> {
        let status = self.status(plugin_type, name).map_err(|e| e.to_string())?;
        match status {
            PluginStatus::Active => return Ok(false),
            PluginStatus::Failed(reason) => return Err(reason),
            _ => {}
        }
        let deps = self
            .metadata_of(plugin_type, name)
            .map_err(|e| e.to_string())?
            .dependencies;
        for dep in deps {
            let dep_status = self
                .registry
                .find_name(&dep.name)
                .map(|e| e.status().clone());
            if dep_status != Some(PluginStatus::Active) {
                let reason = DependencyError::NotActive {
                    plugin: name.to_owned(),
                    dependency: dep.name.clone(),
                    status: dep_status.unwrap_or(PluginStatus::Unloaded),
                }
                .to_string();
                if let Ok(entry) = self.registry.entry_mut(plugin_type, name) {
                    entry.status = PluginStatus::Failed(reason.clone());
                }
                return Err(reason);
            }
        }
        if matches!(status, PluginStatus::Discovered) {
            self.initialize_plugin(plugin_type, name)
                .map_err(|e| e.to_string())?;
        }
        self.activate_plugin(plugin_type, name)
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Deactivate every active plugin, in reverse start order (plugins activated
    /// one by one, outside `start_all`, stop first, newest first).
    pub fn stop_all(&mut self) -> StopReport {
        let mut order: Vec<(PluginType, String)> = Vec::new();
        let in_start_order = |n: &str| self.start_order.iter().any(|s| s == n);
        let mut others: Vec<(PluginType, String)> = self
            .registry
            .entries()
            .filter(|e| e.status() == &PluginStatus::Active && !in_start_order(&e.metadata().name))
            .map(|e| (e.metadata().plugin_type, e.metadata().name.clone()))
            .collect();
        others.reverse();
        order.extend(others);
        for name in self.start_order.iter().rev() {
            if let Some(e) = self.registry.find_name(name) {
                if e.status() == &PluginStatus::Active {
                    order.push((e.metadata().plugin_type, name.clone()));
                }
            }
        }
        let mut report = StopReport::default();
        for (plugin_type, name) in order {
            match self.deactivate_plugin(plugin_type, &name) {
                Ok(()) => report.stopped.push(name),
                Err(e) => report.failed.push((name, e.to_string())),
            }
        }
        report
    }
}
