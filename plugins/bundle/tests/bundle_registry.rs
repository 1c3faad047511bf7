//! The bundle registers every built-in plugin: the seed's LIFNeuron check (look-up
//! by type and name, initialize, activate, build a layer), the full list, and a
//! start/stop of all of them with an empty config.

use evospike_plugin_api::{LayerSpec, PluginStatus, PluginType, Priority};
use evospike_plugins::{builtin_plugins, plugin_manager};

#[test]
fn seed_check_lif_neuron_by_type_and_name_initializes_and_activates() {
    let no_dirs: [&std::path::Path; 0] = [];
    let mut manager = plugin_manager(&no_dirs).unwrap();
    let lif = manager.get_plugin(PluginType::Neuron, "LIFNeuron").unwrap();
    assert_eq!(lif.metadata().name, "LIFNeuron");
    assert_eq!(lif.metadata().plugin_type, PluginType::Neuron);
    manager
        .initialize_plugin(PluginType::Neuron, "LIFNeuron")
        .unwrap();
    manager
        .activate_plugin(PluginType::Neuron, "LIFNeuron")
        .unwrap();
    assert_eq!(
        manager.status(PluginType::Neuron, "LIFNeuron").unwrap(),
        PluginStatus::Active
    );
    let layer = manager
        .neuron("LIFNeuron")
        .unwrap()
        .create_layer(&LayerSpec {
            num_neurons: 4,
            dt_ms: 0.1,
            params: Default::default(),
            seed: 1,
        })
        .unwrap();
    assert_eq!(layer.len(), 4);
}

#[test]
fn all_built_in_plugins_are_registered() {
    let no_dirs: [&std::path::Path; 0] = [];
    let manager = plugin_manager(&no_dirs).unwrap();
    for (t, name) in builtin_plugins()
        .iter()
        .map(|p| (p.metadata().plugin_type, p.metadata().name.clone()))
    {
        assert!(manager.get_plugin(t, &name).is_ok(), "{t} {name}");
    }
    let expected = [
        (PluginType::Neuron, "LIFNeuron"),
        (PluginType::Neuron, "IzhikevichNeuron"),
        (PluginType::Neuron, "EntangledSynchrony"),
        (PluginType::Encoder, "RateEncoder"),
        (PluginType::Encoder, "LatencyEncoder"),
        (PluginType::Encoder, "TASEncoder"),
        (PluginType::Plasticity, "STDP"),
        (PluginType::Plasticity, "MetaPlasticity"),
        (PluginType::Plasticity, "Homeostasis"),
    ];
    for (t, name) in expected {
        assert!(
            manager.get_plugin(t, name).is_ok(),
            "built-in {t} plugin {name} is missing"
        );
    }
    assert!(manager.registry().neuron("IzhikevichNeuron").is_some());
    assert!(manager.registry().encoder("RateEncoder").is_some());
    assert!(manager.registry().plasticity("STDP").is_some());
    assert!(
        manager
            .get_plugin(PluginType::Encoder, "LIFNeuron")
            .is_err(),
        "look-up is by type and name"
    );
}

#[test]
fn built_ins_start_and_stop_with_an_empty_config() {
    let no_dirs: [&std::path::Path; 0] = [];
    let mut manager = plugin_manager(&no_dirs).unwrap();
    let report = manager.start_all().unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.started.len(), manager.registry().len());
    for health in manager.health_all() {
        assert_eq!(health.status, PluginStatus::Active, "{}", health.name);
        assert_eq!(health.priority, Priority::BUSINESS, "{}", health.name);
    }
    assert_eq!(manager.stop_all().stopped.len(), report.started.len());
}
