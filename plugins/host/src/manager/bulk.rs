//! Starting and stopping every plugin, in dependency-then-priority order.

use evospike_plugin_api::{MiddlewarePlugin, Plugin, PluginMetadata, PluginStatus, PluginType};

use super::{PluginManager, StartReport, StopReport};
use crate::config::{PluginSection, PluginsConfig};
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

    /// Every active plugin with the family view `view` (e.g.
    /// [`Plugin::as_monitor`](evospike_plugin_api::Plugin::as_monitor)), in the
    /// order [`start_all`](Self::start_all) started them — dependencies first,
    /// then priority, then registration order. Plugins activated outside
    /// `start_all` are not part of it. Allocates nothing.
    pub fn active_views<'a, T: ?Sized + 'a>(
        &'a self,
        view: impl Fn(&'a dyn Plugin) -> Option<&'a T> + 'a,
    ) -> impl Iterator<Item = (&'a PluginMetadata, &'a T)> + 'a {
        self.start_order.iter().filter_map(move |name| {
            let entry = self.registry.find_name(name)?;
            if entry.status() != &PluginStatus::Active {
                return None;
            }
            Some((entry.metadata(), view(entry.plugin()?)?))
        })
    }

    /// The HTTP middleware chain: the active plugins with a middleware view
    /// ([`Plugin::as_middleware`](evospike_plugin_api::Plugin::as_middleware))
    /// in start order, so security (20) runs before middleware (30). A front
    /// end walks it on every request.
    pub fn middleware_chain(
        &self,
    ) -> impl Iterator<Item = (&PluginMetadata, &dyn MiddlewarePlugin)> + '_ {
        self.active_views(|p| p.as_middleware())
    }

    /// Applies a node's `plugins:` parameter (`name → {enabled, settings…}`)
    /// and starts every enabled plugin. A registered plugin without a section
    /// is enabled only if `on_by_default(name)`; a section enables its plugin
    /// unless it says `enabled: false`. The enabled plugins are initialized one
    /// by one first, so a bad setting comes back as the plugin's own typed
    /// error ([`HostError::Plugin`] with
    /// [`PluginError::InvalidConfig`](evospike_plugin_api::PluginError::InvalidConfig));
    /// a section naming no registered plugin is [`ConfigError::UnknownPlugin`](crate::ConfigError::UnknownPlugin);
    /// a plugin that then fails to activate is [`HostError::NotStarted`].
    pub fn configure_and_start(
        &mut self,
        plugins: &serde_json::Map<String, serde_json::Value>,
        on_by_default: impl Fn(&str) -> bool,
    ) -> Result<StartReport, HostError> {
        let mut config =
            PluginsConfig::from_plugins_value(&serde_json::Value::Object(plugins.clone()))?;
        let unmentioned: Vec<String> = self
            .registry
            .entries()
            .map(|e| e.metadata().name.clone())
            .filter(|n| !config.names().any(|c| c == n) && !on_by_default(n))
            .collect();
        for name in unmentioned {
            config.set(
                name,
                PluginSection {
                    enabled: false,
                    ..PluginSection::default()
                },
            );
        }
        self.set_config(config)?;
        for name in self.start_order()? {
            let Some(plugin_type) = self
                .registry
                .find_name(&name)
                .map(|e| e.metadata().plugin_type)
            else {
                continue;
            };
            if self.status(plugin_type, &name)? == PluginStatus::Discovered {
                self.initialize_plugin(plugin_type, &name)?;
            }
        }
        let report = self.start_all()?;
        match report.failed.first() {
            Some((name, reason)) => Err(HostError::NotStarted {
                name: name.clone(),
                reason: reason.clone(),
            }),
            None => Ok(report),
        }
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

#[cfg(test)]
mod tests {
    use evospike_plugin_api::{
        MiddlewarePlugin, MiddlewareRequest, Plugin, PluginMetadata, PluginType, Priority,
        Rejection,
    };
    use semver::Version;

    use crate::{PluginManager, PluginsConfig};

    /// Rejects every request with its own status, so the first in the chain answers.
    #[derive(Debug)]
    struct Reject(PluginMetadata, u16);
    impl Plugin for Reject {
        fn metadata(&self) -> &PluginMetadata {
            &self.0
        }
        fn as_middleware(&self) -> Option<&dyn MiddlewarePlugin> {
            Some(self)
        }
    }
    impl MiddlewarePlugin for Reject {
        fn check(&self, _: &MiddlewareRequest<'_>) -> Result<(), Rejection> {
            Err(Rejection::new(self.1, self.0.name.clone()))
        }
    }

    #[derive(Debug)]
    struct Plain(PluginMetadata);
    impl Plugin for Plain {
        fn metadata(&self) -> &PluginMetadata {
            &self.0
        }
    }

    fn meta(name: &str, priority: Priority) -> PluginMetadata {
        PluginMetadata::new(name, Version::new(1, 0, 0), PluginType::Functional)
            .with_priority(priority)
    }

    #[test]
    fn the_middleware_chain_is_the_active_middleware_in_priority_order() {
        let mut m = PluginManager::new();
        m.register_builtin(Box::new(Reject(meta("Late", Priority::MIDDLEWARE), 429)))
            .unwrap();
        m.register_builtin(Box::new(Plain(meta("NotMiddleware", Priority::SECURITY))))
            .unwrap();
        m.register_builtin(Box::new(Reject(meta("Off", Priority::INFRASTRUCTURE), 403)))
            .unwrap();
        m.register_builtin(Box::new(Reject(meta("Early", Priority::SECURITY), 401)))
            .unwrap();
        m.set_config(PluginsConfig::from_toml_str("[plugins.Off]\nenabled = false").unwrap())
            .unwrap();
        assert_eq!(m.middleware_chain().count(), 0, "nothing started yet");
        m.start_all().unwrap();
        let names: Vec<&str> = m
            .middleware_chain()
            .map(|(meta, _)| meta.name.as_str())
            .collect();
        assert_eq!(names, ["Early", "Late"]);
        let headers: &[(&str, &str)] = &[];
        let request = MiddlewareRequest {
            method: "GET",
            path: "/",
            query: None,
            headers: &headers,
            client: None,
            body: None,
        };
        let first = m
            .middleware_chain()
            .find_map(|(_, p)| p.check(&request).err());
        assert_eq!(first.unwrap().status, 401);
        m.stop_all();
        assert_eq!(
            m.middleware_chain().count(),
            0,
            "inactive plugins leave the chain"
        );
    }
}
