//! The manager with test-only plugins (the built-ins are tested in the
//! `evospike-plugins` bundle): dependency order and errors, failure isolation,
//! config, hooks, reload, unload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use evospike_plugin_api::hooks::HookRegistrar;
use evospike_plugin_api::{
    Dependency, HookHandler, Plugin, PluginConfig, PluginError, PluginMetadata, PluginStatus,
    PluginType, Priority,
};
use evospike_plugin_host::{DependencyError, HookError, HostError, PluginManager, PluginsConfig};
use semver::{Version, VersionReq};
use serde_json::json;

/// Shared record of lifecycle calls, as "Name.call".
type Log = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
struct Probe {
    meta: PluginMetadata,
    log: Log,
    fail_on: Option<&'static str>,
    panic_on: Option<&'static str>,
    hook: Option<(&'static str, Priority)>,
    initialized: Arc<AtomicUsize>,
}

impl Probe {
    fn new(name: &str, plugin_type: PluginType, log: &Log) -> Self {
        Self {
            meta: PluginMetadata::new(name, Version::new(1, 0, 0), plugin_type),
            log: Arc::clone(log),
            fail_on: None,
            panic_on: None,
            hook: None,
            initialized: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn priority(mut self, p: u32) -> Self {
        self.meta = self.meta.with_priority(Priority(p));
        self
    }

    fn depends_on(mut self, name: &str, req: &str) -> Self {
        self.meta = self
            .meta
            .with_dependency(Dependency::new(name, VersionReq::parse(req).unwrap()));
        self
    }

    fn record(&self, call: &str) -> Result<(), PluginError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.{call}", self.meta.name));
        if self.panic_on == Some(call) {
            panic!("{} panics in {call}", self.meta.name);
        }
        if self.fail_on == Some(call) {
            return Err(PluginError::failed(
                &self.meta.name,
                format!("{call} refused"),
            ));
        }
        Ok(())
    }
}

impl Plugin for Probe {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }
    fn initialize(&mut self, config: &PluginConfig) -> Result<(), PluginError> {
        self.initialized.fetch_add(1, Ordering::SeqCst);
        if let Some(v) = config.get("level") {
            if !v.is_u64() {
                return Err(PluginError::invalid_config(
                    &self.meta.name,
                    "level",
                    "must be a non-negative integer",
                ));
            }
        }
        self.record("initialize")
    }
    fn activate(&mut self) -> Result<(), PluginError> {
        self.record("activate")
    }
    fn execute(&mut self, input: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        self.record("execute")?;
        Ok(json!({ "from": self.meta.name, "input": input }))
    }
    fn deactivate(&mut self) -> Result<(), PluginError> {
        self.record("deactivate")
    }
    fn register_hooks(&self, hooks: &mut dyn HookRegistrar) -> Result<(), PluginError> {
        if let Some((point, priority)) = self.hook {
            let (log, name) = (Arc::clone(&self.log), self.meta.name.clone());
            hooks.register(
                point,
                priority,
                HookHandler::Before(Arc::new(move |data| {
                    log.lock().unwrap().push(format!("{name}.hook"));
                    data.as_array_mut()
                        .expect("array")
                        .push(json!(name.clone()));
                    Ok(())
                })),
            );
        }
        Ok(())
    }
}

fn manager_with(plugins: Vec<Probe>) -> PluginManager {
    let mut m = PluginManager::new();
    for p in plugins {
        m.register_builtin(Box::new(p)).unwrap();
    }
    m
}

fn calls(log: &Log, suffix: &str) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|c| c.ends_with(suffix))
        .map(|c| c.trim_end_matches(suffix).to_owned())
        .collect()
}

#[test]
fn start_all_follows_dependencies_then_priority_and_stop_all_reverses() {
    let log = Log::default();
    let mut m = manager_with(vec![
        Probe::new("Model", PluginType::Neuron, &log).depends_on("Metrics", "^1"),
        Probe::new("Metrics", PluginType::Monitoring, &log).depends_on("Bus", "^1.0"),
        Probe::new("Bus", PluginType::Communication, &log),
        Probe::new("Filter", PluginType::Functional, &log).priority(35),
        Probe::new("Guard", PluginType::Functional, &log).priority(20),
    ]);
    let report = m.start_all().unwrap();
    assert_eq!(
        report.started,
        ["Bus", "Guard", "Metrics", "Filter", "Model"]
    );
    assert_eq!(calls(&log, ".activate"), report.started);
    let stop = m.stop_all();
    assert_eq!(stop.stopped, ["Model", "Filter", "Metrics", "Guard", "Bus"]);
    assert_eq!(calls(&log, ".deactivate"), stop.stopped);
}

#[test]
fn missing_dependency_is_an_error_naming_both_plugins() {
    let log = Log::default();
    let mut m = manager_with(vec![
        Probe::new("Model", PluginType::Neuron, &log).depends_on("Bus", "^1")
    ]);
    let err = m.start_all().unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `Model` depends on `Bus` (^1), which is not registered"
    );
    let err = m
        .initialize_plugin(PluginType::Neuron, "Model")
        .unwrap_err();
    assert!(
        matches!(err, HostError::Dependency(DependencyError::Missing { .. })),
        "{err}"
    );
    assert!(log.lock().unwrap().is_empty(), "nothing started");
}

#[test]
fn incompatible_dependency_version_is_an_error() {
    let log = Log::default();
    let mut m = manager_with(vec![
        Probe::new("Model", PluginType::Neuron, &log).depends_on("Bus", "^2"),
        Probe::new("Bus", PluginType::Communication, &log),
    ]);
    let err = m.start_all().unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `Model` needs `Bus` ^2, but version 1.0.0 is registered"
    );
}

#[test]
fn dependency_cycle_is_an_error_naming_the_plugins() {
    let log = Log::default();
    let mut m = manager_with(vec![
        Probe::new("A", PluginType::Functional, &log).depends_on("B", "*"),
        Probe::new("B", PluginType::Functional, &log).depends_on("A", "*"),
        Probe::new("C", PluginType::Functional, &log),
    ]);
    let err = m.start_all().unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: A -> B -> A");
    assert!(log.lock().unwrap().is_empty(), "nothing started");
}

#[test]
fn failing_plugin_is_marked_failed_and_the_others_carry_on() {
    let log = Log::default();
    let mut broken = Probe::new("Broken", PluginType::Functional, &log).priority(10);
    broken.fail_on = Some("activate");
    let mut crashy = Probe::new("Crashy", PluginType::Learning, &log).priority(15);
    crashy.panic_on = Some("initialize");
    let mut m = manager_with(vec![
        broken,
        crashy,
        Probe::new("NeedsBroken", PluginType::Functional, &log).depends_on("Broken", "*"),
        Probe::new("Fine", PluginType::Monitoring, &log),
    ]);
    let report = m.start_all().unwrap();
    assert_eq!(report.started, ["Fine"]);
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, ["Broken", "Crashy", "NeedsBroken"]);
    assert_eq!(
        m.status(PluginType::Functional, "Broken").unwrap(),
        PluginStatus::Failed("plugin `Broken` failed: activate refused".into())
    );
    assert_eq!(
        m.status(PluginType::Learning, "Crashy").unwrap(),
        PluginStatus::Failed(
            "plugin `Crashy` panicked during initialize: Crashy panics in initialize".into()
        )
    );
    match m.status(PluginType::Functional, "NeedsBroken").unwrap() {
        PluginStatus::Failed(reason) => {
            assert!(reason.contains("dependency `Broken` is failed"), "{reason}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        m.execute_plugin(PluginType::Monitoring, "Fine", &json!(1))
            .unwrap()["from"],
        "Fine"
    );
    let health = m.health_check(PluginType::Functional, "Broken").unwrap();
    assert_eq!(health.priority, Priority(10));
    assert!(matches!(
        health.state,
        evospike_plugin_api::PluginHealth::Unhealthy(_)
    ));
}

#[test]
fn disabled_plugin_is_never_initialized() {
    let log = Log::default();
    let off = Probe::new("Off", PluginType::Monitoring, &log);
    let initialized = Arc::clone(&off.initialized);
    let mut m = manager_with(vec![off, Probe::new("On", PluginType::Monitoring, &log)]);
    m.set_config(PluginsConfig::from_toml_str("[plugins.Off]\nenabled = false").unwrap())
        .unwrap();
    let report = m.start_all().unwrap();
    assert_eq!(
        (report.started, report.disabled),
        (vec!["On".to_owned()], vec!["Off".to_owned()])
    );
    let err = m
        .initialize_plugin(PluginType::Monitoring, "Off")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `Off` is disabled by its config (`plugins.Off.enabled = false`)"
    );
    assert_eq!(initialized.load(Ordering::SeqCst), 0);
    assert!(
        !m.health_check(PluginType::Monitoring, "Off")
            .unwrap()
            .enabled
    );
    m.stop_all();
    assert_eq!(initialized.load(Ordering::SeqCst), 0);
}

#[test]
fn plugin_settings_are_validated_with_a_clear_error() {
    let log = Log::default();
    let mut m = manager_with(vec![Probe::new("Leveled", PluginType::Monitoring, &log)]);
    m.set_config(PluginsConfig::from_toml_str("[plugins.Leveled]\nlevel = -1").unwrap())
        .unwrap();
    let err = m
        .initialize_plugin(PluginType::Monitoring, "Leveled")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "initialize of plugin `Leveled` failed: plugin `Leveled`: invalid config setting `level`: must be a non-negative integer"
    );
    let err = m
        .set_config(PluginsConfig::from_toml_str("[plugins.Leveld]").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("`plugins.Leveld`"), "{err}");
}

#[test]
fn hooks_registered_by_plugins_run_in_priority_order_and_go_away_on_deactivate() {
    let log = Log::default();
    let mut late = Probe::new("Late", PluginType::Monitoring, &log);
    late.hook = Some(("node.step", Priority(40)));
    let mut early = Probe::new("Early", PluginType::Functional, &log);
    early.hook = Some(("node.step", Priority(10)));
    let mut middle = Probe::new("Middle", PluginType::Learning, &log);
    middle.hook = Some(("node.step", Priority(25)));
    let mut m = manager_with(vec![late, early, middle]);
    m.start_all().unwrap();

    let mut data = json!([]);
    m.run_hook("node.step", &mut data, |d| {
        d.as_array_mut().unwrap().push(json!("op"));
        Ok(())
    })
    .unwrap();
    assert_eq!(data, json!(["Early", "Middle", "Late", "op"]));

    m.deactivate_plugin(PluginType::Learning, "Middle").unwrap();
    let mut data = json!([]);
    m.run_hook("node.step", &mut data, |_| Ok(())).unwrap();
    assert_eq!(data, json!(["Early", "Late"]));

    m.hooks_mut().register(
        "host",
        "node.step",
        Priority(5),
        HookHandler::Before(Arc::new(|_| Err(PluginError::failed("host", "stop here")))),
    );
    let err = m
        .run_hook("node.step", &mut json!([]), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, HostError::Hook(HookError::Handler { ref owner, .. }) if owner == "host"),
        "{err}"
    );
}

#[test]
fn lifecycle_transitions_are_checked() {
    let log = Log::default();
    let mut m = manager_with(vec![Probe::new("P", PluginType::Functional, &log)]);
    let err = m.activate_plugin(PluginType::Functional, "P").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot activate plugin `P`: it is discovered"
    );
    let err = m
        .execute_plugin(PluginType::Functional, "P", &json!(null))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot execute plugin `P`: it is discovered"
    );
    m.initialize_plugin(PluginType::Functional, "P").unwrap();
    m.activate_plugin(PluginType::Functional, "P").unwrap();
    m.deactivate_plugin(PluginType::Functional, "P").unwrap();
    assert_eq!(
        m.status(PluginType::Functional, "P").unwrap(),
        PluginStatus::Inactive
    );
    m.activate_plugin(PluginType::Functional, "P").unwrap();
    assert_eq!(
        calls(&log, ""),
        ["P.initialize", "P.activate", "P.deactivate", "P.activate"]
    );
}

#[test]
fn unload_then_register_again_and_reload_built_in() {
    let log = Log::default();
    let mut m = manager_with(vec![Probe::new("P", PluginType::Functional, &log)]);
    m.start_all().unwrap();
    m.reload_plugin(PluginType::Functional, "P").unwrap();
    assert_eq!(
        m.status(PluginType::Functional, "P").unwrap(),
        PluginStatus::Active
    );
    assert_eq!(
        calls(&log, ""),
        [
            "P.initialize",
            "P.activate",
            "P.deactivate",
            "P.initialize",
            "P.activate"
        ]
    );

    m.unload_plugin(PluginType::Functional, "P").unwrap();
    assert_eq!(
        m.status(PluginType::Functional, "P").unwrap(),
        PluginStatus::Unloaded
    );
    assert!(m.get_plugin(PluginType::Functional, "P").is_err());
    let err = m.reload_plugin(PluginType::Functional, "P").unwrap_err();
    assert!(matches!(err, HostError::InvalidTransition { .. }), "{err}");
    m.register_builtin(Box::new(Probe::new("P", PluginType::Functional, &log)))
        .unwrap();
    assert_eq!(
        m.status(PluginType::Functional, "P").unwrap(),
        PluginStatus::Discovered
    );

    let err = m
        .register_builtin(Box::new(Probe::new("P", PluginType::Neuron, &log)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot register neuron plugin `P`: a functional plugin of that name is already registered"
    );
}
