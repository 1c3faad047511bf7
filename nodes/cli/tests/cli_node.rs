//! `evospike node …` and the health-based `topic list`/`info`, against a node
//! played by the test itself (liveliness token + health queryable).

mod common;

use common::{run, Router, DEADLINE};
use evospike_schemas::proto::{Empty, Health, HealthState, NodeInfo};
use evospike_testkit::wait_until;
use serde_json::Value;

fn fake_health() -> Health {
    Health {
        node: Some(NodeInfo {
            name: "fake-layer".into(),
            namespace: "default".into(),
            kind: "layer".into(),
            pid: 4242,
            hostname: "testhost".into(),
            version: "0.1.0".into(),
            publishes: vec!["fake/spikes".into()],
            subscribes: vec!["input/spikes".into()],
            ..Default::default()
        }),
        state: HealthState::Active as i32,
        uptime_s: 125.0,
        ..Default::default()
    }
}

#[test]
fn nodes_are_listed_and_described_from_their_health() {
    let router = Router::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);
    let _token = bus.announce_node("fake-layer").unwrap();
    let health_key = bus.keys().health("fake-layer").unwrap();
    let _health = bus
        .serve::<Empty, Health, _>(&health_key, "fake-layer", |_| Ok(fake_health()))
        .unwrap();

    // Declarations reach the router asynchronously: wait until the node shows.
    let mut listed = None;
    let found = wait_until(DEADLINE, || {
        let out = run(&mut router.command(&["node", "list"]));
        let ok = out.success && out.stdout_lines().contains(&"fake-layer");
        listed = Some(out);
        ok
    });
    assert!(
        found.is_ok(),
        "node list never showed fake-layer: {listed:?}"
    );

    let table = run(&mut router.command(&["node", "list", "--health"]));
    assert!(table.success, "{table:?}");
    let row = table
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("fake-layer"))
        .expect("a row for the node");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["fake-layer", "layer", "active", "4242", "2m05s", "testhost"],
        "{table:?}"
    );

    let info = run(&mut router.command(&["node", "info", "fake-layer"]));
    assert!(info.success, "{info:?}");
    for expected in [
        "kind:        layer",
        "state:       active",
        "publishes:   fake/spikes",
        "subscribes:  input/spikes",
    ] {
        assert!(
            info.stdout.lines().any(|l| l == expected),
            "missing {expected:?} in {info:?}"
        );
    }
    let json = run(&mut router.command(&["node", "info", "fake-layer", "--json"]));
    let value: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(value["state"], "active");
    assert_eq!(value["node"]["publishes"][0], "fake/spikes");

    let topics = run(&mut router.command(&["topic", "list"]));
    assert!(topics.success, "{topics:?}");
    let fake = topics
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("fake/spikes"))
        .expect("fake/spikes listed");
    assert_eq!(
        fake.split_whitespace().collect::<Vec<_>>(),
        ["fake/spikes", "fake-layer", "-"],
        "{topics:?}"
    );
    assert!(topics
        .stdout
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["input/spikes", "-", "fake-layer"]));

    let info = run(&mut router.command(&["topic", "info", "fake/spikes", "--timeout", "0.5"]));
    assert!(info.success, "{info:?}");
    assert!(info.stdout.contains("publishers:   fake-layer"), "{info:?}");
    assert!(
        info.stdout.contains("last message: none within 0.5s"),
        "{info:?}"
    );
}

#[test]
fn unknown_nodes_and_topics_are_errors() {
    let router = Router::start();
    let info = run(&mut router.command(&["node", "info", "ghost", "--timeout", "0.5"]));
    assert!(!info.success);
    assert!(
        info.stderr
            .contains("error: no node named \"ghost\" in namespace \"default\""),
        "{info:?}"
    );

    let topic = run(&mut router.command(&["topic", "info", "nowhere", "--timeout", "0.5"]));
    assert!(!topic.success);
    assert!(
        topic.stderr.contains("error: unknown topic \"nowhere\""),
        "{topic:?}"
    );

    let echo = run(&mut router.command(&["topic", "echo", "silent", "--timeout", "0.5"]));
    assert!(!echo.success);
    assert!(
        echo.stderr
            .contains("error: no message on silent within 0.5s"),
        "{echo:?}"
    );
}

/// Regression: health replies to one wildcard query came back consolidated into
/// one (they all carried the query's key), so `node list --health` showed every
/// node but one as silent.
#[test]
fn every_node_answers_in_node_list_health() {
    let router = Router::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = router.bus(&runtime);
    let names = ["fake-a", "fake-b", "fake-c"];
    let mut keep = Vec::new();
    for name in names {
        keep.push(bus.announce_node(name).unwrap());
        let health = Health {
            node: Some(NodeInfo {
                name: name.into(),
                kind: "layer".into(),
                ..Default::default()
            }),
            state: HealthState::Active as i32,
            ..Default::default()
        };
        let key = bus.keys().health(name).unwrap();
        keep.push(
            bus.serve::<Empty, Health, _>(&key, name, move |_| Ok(health.clone()))
                .unwrap(),
        );
    }
    let mut last = None;
    let all_alive = wait_until(DEADLINE, || {
        let out = run(&mut router.command(&["node", "list"]));
        let ok = names.iter().all(|n| out.stdout_lines().contains(n));
        last = Some(out);
        ok
    });
    assert!(all_alive.is_ok(), "{last:?}");
    let out = run(&mut router.command(&["node", "list", "--health", "--json"]));
    assert!(out.success, "{out:?}");
    let nodes: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    for name in names {
        let node = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .expect("listed");
        assert_eq!(node["health"]["state"], "active", "{node}");
    }
}
