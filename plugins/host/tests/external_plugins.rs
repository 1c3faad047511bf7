//! External plugins end to end: the example cdylib loaded from a plugin dir, ABI
//! checks, panic isolation, reload of a rebuilt library, host-side allocation per
//! step, and a scaffolded crate built and loaded.

mod fixtures;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use evospike_example_neuron::ExampleNeuron;
use evospike_plugin_api::{
    spike_words_len, LayerSpec, NeuronPlugin, Params, PluginError, PluginHealth, PluginStatus,
    PluginType,
};
use evospike_plugin_host::loader::{read_manifest, ExternalPlugin};
use evospike_plugin_host::{
    initialize_plugin_system, HostError, LoadError, PluginManager, PluginsConfig,
};
use fixtures::{fixtures, install, plugin_dir_with};
use serde_json::json;

/// Counts allocations made by the current thread while counting is on. The plugin
/// cdylib has its own std and allocator, so only host-side allocations are seen.
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only
// const-initialized thread-locals (no allocation, no destructor).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn count_allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

fn spec(num_neurons: usize) -> LayerSpec {
    LayerSpec {
        num_neurons,
        dt_ms: 1.0,
        params: Params::new(),
        seed: 0,
    }
}

fn example_manager(library: &std::path::Path) -> (tempfile::TempDir, PluginManager) {
    let dir = plugin_dir_with(library);
    let manager = initialize_plugin_system(Vec::new(), &[dir.path()]).unwrap();
    (dir, manager)
}

#[test]
fn example_plugin_loads_from_a_temporary_plugin_dir_and_runs() {
    let (_dir, mut manager) = example_manager(&fixtures().example);
    assert!(
        manager.load_errors().is_empty(),
        "{:?}",
        manager.load_errors()
    );
    let plugin = manager
        .get_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    assert_eq!(
        plugin.metadata().description,
        "Non-leaky integrate-and-fire neurons (example external plugin)"
    );
    assert_eq!(
        manager.registry().by_capability("integrate-and-fire")[0].name,
        "ExampleNeuron"
    );

    let config = PluginsConfig::from_toml_str("[plugins.ExampleNeuron]\ngain = 2.0").unwrap();
    manager.set_config(config).unwrap();
    manager
        .initialize_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    manager
        .activate_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    let reply = manager
        .execute_plugin(PluginType::Neuron, "ExampleNeuron", &json!({"x": 1}))
        .unwrap();
    assert_eq!(
        reply,
        json!({"plugin": "ExampleNeuron", "variant": "a", "gain": 2.0, "echo": {"x": 1}})
    );

    let health = manager
        .health_check(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    assert_eq!(
        (health.status, health.state, health.enabled),
        (PluginStatus::Active, PluginHealth::Healthy, true)
    );

    // gain 2: 0.3 → v = 0.6 (silent), then 1.2 (spike) for neuron 0; 0.6 → 1.2 spikes at once.
    let mut layer = manager
        .neuron("ExampleNeuron")
        .unwrap()
        .create_layer(&spec(3))
        .unwrap();
    let mut spikes = [0u64; 1];
    layer.step(&[0.3, 0.6, 0.0], &mut spikes);
    assert_eq!(spikes[0], 0b010);
    assert_eq!(layer.state("v").unwrap(), &[0.6, 0.0, 0.0]);
    layer.step(&[0.3, 0.0, 0.0], &mut spikes);
    assert_eq!(spikes[0], 0b001);
    assert!(layer.state("nope").is_none());
    assert!(layer.fault().is_none());

    let err = manager
        .initialize_plugin(PluginType::Neuron, "Missing")
        .unwrap_err();
    assert!(matches!(err, HostError::NotFound { .. }), "{err}");
}

#[test]
fn external_layer_behaves_exactly_like_the_in_process_layer() {
    let (_dir, manager) = example_manager(&fixtures().example);
    let mut params = Params::new();
    params.insert("threshold".into(), json!(1.5));
    let spec = LayerSpec {
        params,
        ..spec(130)
    };
    let mut external = manager
        .neuron("ExampleNeuron")
        .unwrap()
        .create_layer(&spec)
        .unwrap();
    let mut builtin = ExampleNeuron::new().create_layer(&spec).unwrap();
    let words = spike_words_len(130);
    let (mut a, mut b) = (vec![0u64; words], vec![0u64; words]);
    let mut total = 0;
    for t in 0..200u32 {
        let input: Vec<f32> = (0..130u32)
            .map(|i| ((i * 7 + t * 13) % 17) as f32 / 20.0)
            .collect();
        external.step(&input, &mut a);
        builtin.step(&input, &mut b);
        assert_eq!(a, b, "step {t}");
        total += a.iter().map(|w| w.count_ones()).sum::<u32>();
    }
    assert!(
        total > 1000,
        "the layers should be active, got {total} spikes"
    );
    assert_eq!(external.state("v"), builtin.state("v"));
    external.reset();
    assert!(external.state("v").unwrap().iter().all(|v| *v == 0.0));
}

#[test]
fn external_layer_step_does_not_allocate_on_the_host_side() {
    let (_dir, manager) = example_manager(&fixtures().example);
    let mut layer = manager
        .neuron("ExampleNeuron")
        .unwrap()
        .create_layer(&spec(1000))
        .unwrap();
    let input = vec![0.4f32; 1000];
    let mut spikes = vec![0u64; spike_words_len(1000)];
    layer.step(&input, &mut spikes); // warm-up: rkyv's thread-local arena
    let allocations = count_allocations(|| {
        for _ in 0..100 {
            layer.step(&input, &mut spikes);
        }
    });
    assert!(layer.fault().is_none(), "{:?}", layer.fault());
    assert_eq!(allocations, 0, "host-side allocations in 100 steps");
}

#[test]
fn library_with_wrong_abi_version_is_rejected_naming_both_sides() {
    let dir = plugin_dir_with(&fixtures().abi_mismatch);
    let discovered = read_manifest(&dir.path().join("example_neuron.plugin.toml")).unwrap();
    let err = ExternalPlugin::load(&discovered).unwrap_err();
    assert!(matches!(err, LoadError::Incompatible { .. }), "{err}");
    let message = err.to_string();
    let abi = evospike_plugin_api::abi::ABI_MAJOR;
    for needle in [
        format!("plugin ABI major version {} != host's {abi}", abi + 1),
        format!(
            "host:   plugin ABI {abi}.0, evospike-plugin-api {}",
            evospike_plugin_api::abi::API_VERSION
        ),
        format!("plugin: plugin ABI {}.0", abi + 1),
        "fix: rebuild the plugin against evospike-plugin-api".to_owned(),
    ] {
        assert!(
            message.contains(&needle),
            "missing {needle:?} in:\n{message}"
        );
    }

    // Through the manager: registered as failed with that reason, others unaffected.
    let manager = initialize_plugin_system(Vec::new(), &[dir.path()]).unwrap();
    assert_eq!(manager.load_errors().len(), 1);
    match manager.status(PluginType::Neuron, "ExampleNeuron").unwrap() {
        PluginStatus::Failed(reason) => assert!(reason.contains("incompatible plugin"), "{reason}"),
        other => panic!("expected failed, got {other}"),
    }
}

#[test]
fn file_that_is_not_a_library_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
    let plugin_dir = plugin_dir_with(&garbage);
    let discovered = read_manifest(&plugin_dir.path().join("example_neuron.plugin.toml")).unwrap();
    let err = ExternalPlugin::load(&discovered).unwrap_err();
    assert!(matches!(err, LoadError::Open { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&discovered.library_path.display().to_string()),
        "{err}"
    );
}

#[test]
fn panicking_plugin_is_isolated_and_marked_failed() {
    let (_dir, mut manager) = example_manager(&fixtures().panicking);
    manager
        .initialize_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    manager
        .activate_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();

    // A layer made before the panic: a NaN input makes this build panic mid-step.
    let mut layer = manager
        .neuron("ExampleNeuron")
        .unwrap()
        .create_layer(&spec(2))
        .unwrap();
    let mut spikes = [u64::MAX];
    layer.step(&[f32::NAN, 0.0], &mut spikes);
    assert_eq!(spikes, [0], "a faulted layer outputs no spikes");
    match layer.fault() {
        Some(PluginError::Panicked {
            plugin,
            operation,
            message,
        }) => {
            assert_eq!(
                (plugin.as_str(), operation.as_str()),
                ("ExampleNeuron", "step")
            );
            assert!(message.contains("panic on a NaN input"), "{message}");
        }
        other => panic!("expected a panic fault, got {other:?}"),
    }

    let err = manager
        .execute_plugin(PluginType::Neuron, "ExampleNeuron", &json!(null))
        .unwrap_err();
    match &err {
        HostError::Plugin {
            source: PluginError::Panicked { message, .. },
            ..
        } => {
            assert!(message.contains("built to panic in execute"), "{message}")
        }
        other => panic!("expected a caught panic, got {other}"),
    }
    let status = manager.status(PluginType::Neuron, "ExampleNeuron").unwrap();
    assert!(
        matches!(&status, PluginStatus::Failed(r) if r.contains("panicked during execute")),
        "{status}"
    );
    let err = manager
        .execute_plugin(PluginType::Neuron, "ExampleNeuron", &json!(null))
        .unwrap_err();
    assert!(matches!(err, HostError::InvalidTransition { .. }), "{err}");
    let health = manager
        .health_check(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    assert!(matches!(health.state, PluginHealth::Unhealthy(_)));
    // The node carries on: a stop of everything still works.
    assert!(manager.stop_all().failed.is_empty());
}

#[test]
fn reload_picks_up_a_rebuilt_library() {
    let (dir, mut manager) = example_manager(&fixtures().example);
    let report = manager.start_all().unwrap();
    assert!(
        report.started.contains(&"ExampleNeuron".to_owned()),
        "{report:?}"
    );
    let run = |m: &mut PluginManager| {
        m.execute_plugin(PluginType::Neuron, "ExampleNeuron", &json!(0))
            .unwrap()["variant"]
            .clone()
    };
    assert_eq!(run(&mut manager), json!("a"));
    let old_layer_spikes = {
        let mut layer = manager
            .neuron("ExampleNeuron")
            .unwrap()
            .create_layer(&spec(1))
            .unwrap();
        let mut s = [0u64];
        layer.step(&[0.6], &mut s);
        s[0]
    };
    assert_eq!(old_layer_spikes, 0);

    install(dir.path(), &fixtures().variant_b);
    manager
        .reload_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    assert_eq!(
        manager.status(PluginType::Neuron, "ExampleNeuron").unwrap(),
        PluginStatus::Active
    );
    assert_eq!(run(&mut manager), json!("b"));
    let mut layer = manager
        .neuron("ExampleNeuron")
        .unwrap()
        .create_layer(&spec(1))
        .unwrap();
    let mut s = [0u64];
    layer.step(&[0.6], &mut s);
    assert_eq!(s[0], 1, "variant b fires at half the threshold");

    // And back again: every reload loads a fresh copy.
    install(dir.path(), &fixtures().example);
    manager
        .reload_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap();
    assert_eq!(run(&mut manager), json!("a"));
}

#[test]
fn failed_reload_keeps_the_running_plugin() {
    let (dir, mut manager) = example_manager(&fixtures().example);
    manager.start_all().unwrap();
    install(dir.path(), &fixtures().abi_mismatch);
    let err = manager
        .reload_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap_err();
    assert!(
        matches!(err, HostError::Load(LoadError::Incompatible { .. })),
        "{err}"
    );
    assert_eq!(
        manager.status(PluginType::Neuron, "ExampleNeuron").unwrap(),
        PluginStatus::Active
    );
    let reply = manager
        .execute_plugin(PluginType::Neuron, "ExampleNeuron", &json!(0))
        .unwrap();
    assert_eq!(reply["variant"], json!("a"));
}

#[test]
fn disabled_external_plugin_is_never_initialized() {
    let (_dir, mut manager) = example_manager(&fixtures().example);
    manager
        .set_config(
            PluginsConfig::from_toml_str("[plugins.ExampleNeuron]\nenabled = false\ngain = -5")
                .unwrap(),
        )
        .unwrap();
    let report = manager.start_all().unwrap();
    assert!(report.disabled.contains(&"ExampleNeuron".to_owned()));
    // The invalid gain would fail initialize: it is never called.
    assert_eq!(
        manager.status(PluginType::Neuron, "ExampleNeuron").unwrap(),
        PluginStatus::Discovered
    );
    let err = manager
        .initialize_plugin(PluginType::Neuron, "ExampleNeuron")
        .unwrap_err();
    assert!(matches!(err, HostError::Disabled { .. }), "{err}");
}

#[test]
fn invalid_setting_marks_the_external_plugin_failed_with_a_clear_reason() {
    let (_dir, mut manager) = example_manager(&fixtures().example);
    manager
        .set_config(
            PluginsConfig::from_toml_str("[plugins.ExampleNeuron]\ngain = \"high\"").unwrap(),
        )
        .unwrap();
    let report = manager.start_all().unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let status = manager.status(PluginType::Neuron, "ExampleNeuron").unwrap();
    assert_eq!(
        status,
        PluginStatus::Failed(
            "plugin `ExampleNeuron`: invalid config setting `gain`: must be a number, got \"high\""
                .into()
        )
    );
}

#[test]
fn scaffolded_plugin_crate_builds_and_loads() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = evospike_plugin_host::scaffold::new_plugin(
        work.path(),
        "ScaffoldNeuron",
        PluginType::Neuron,
    )
    .unwrap();
    // Same dependency versions as the workspace, so the shared target dir is reused.
    std::fs::copy(
        fixtures::workspace_root().join("Cargo.lock"),
        crate_dir.join("Cargo.lock"),
    )
    .unwrap();
    let status = fixtures::cargo()
        .arg("build")
        .arg("--quiet")
        .arg("--offline")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(fixtures::nested_target_dir())
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded crate must build");

    let plugin_dir = tempfile::tempdir().unwrap();
    let lib = evospike_plugin_host::loader::library_file_name("scaffold_neuron");
    std::fs::copy(
        fixtures::nested_target_dir().join("debug").join(&lib),
        plugin_dir.path().join(&lib),
    )
    .unwrap();
    std::fs::copy(
        crate_dir.join("scaffold_neuron.plugin.toml"),
        plugin_dir.path().join("scaffold_neuron.plugin.toml"),
    )
    .unwrap();
    let mut manager = initialize_plugin_system(Vec::new(), &[plugin_dir.path()]).unwrap();
    assert!(
        manager.load_errors().is_empty(),
        "{:?}",
        manager.load_errors()
    );
    manager
        .set_config(PluginsConfig::from_toml_str("[plugins.ScaffoldNeuron]\nscale = 3.0").unwrap())
        .unwrap();
    manager.start_all().unwrap();
    assert_eq!(
        manager
            .status(PluginType::Neuron, "ScaffoldNeuron")
            .unwrap(),
        PluginStatus::Active
    );
    let reply = manager
        .execute_plugin(PluginType::Neuron, "ScaffoldNeuron", &json!(2.0))
        .unwrap();
    assert_eq!(reply, json!(6.0));
    let mut layer = manager
        .neuron("ScaffoldNeuron")
        .unwrap()
        .create_layer(&spec(2))
        .unwrap();
    let mut s = [0u64];
    layer.step(&[0.4, 0.2], &mut s);
    assert_eq!(s[0], 0b01, "scale 3: 1.2 fires, 0.6 does not");
}
