//! Every kind rejects an unknown key and an out-of-range value with a message
//! naming node, key and value; the messages are snapshots (`snapshots/`), so a
//! changed wording is a visible diff.

use serde_json::{json, Value};

use crate::NodeKinds;

/// The error text of checking `params` for node `node` of `kind`.
fn rejected(kind: &str, node: &str, params: Value) -> String {
    let kinds = NodeKinds::builtin();
    let params = params.as_object().cloned().expect("params are an object");
    kinds
        .get(kind)
        .unwrap()
        .check(node, &params)
        .expect_err("the parameters must be rejected")
        .to_string()
}

fn accepted(kind: &str, params: Value) {
    let kinds = NodeKinds::builtin();
    let params = params.as_object().cloned().expect("params are an object");
    if let Err(err) = kinds.get(kind).unwrap().check("n", &params) {
        panic!("{kind} rejected {params:?}:\n{err}");
    }
}

#[test]
fn router_rejects_unknown_parameters() {
    insta::assert_snapshot!(rejected(
        "router",
        "router",
        json!({"listen": "tcp/127.0.0.1:7447"})
    ));
    accepted("router", json!({}));
    accepted("router", json!({"connect": ["tls/10.0.0.1:7447"]}));
}

#[test]
fn encoder_rejects_a_typo_and_values_out_of_range() {
    insta::assert_snapshot!(
        "encoder_typo",
        rejected("encoder", "enc", json!({"steps_per_sampel": 50}))
    );
    insta::assert_snapshot!(
        "encoder_out_of_range",
        rejected(
            "encoder",
            "enc",
            json!({"steps_per_sample": 0, "steps_per_second": -5, "dt_ms": 0.0, "output": "a//b"})
        )
    );
    insta::assert_snapshot!(
        "encoder_missing_file",
        rejected("encoder", "enc", json!({"source": "/no/such/digits.csv"}))
    );
    accepted("encoder", json!({}));
    accepted(
        "encoder",
        json!({"source": "generator:bars", "max_steps": null, "seed": 3}),
    );
}

#[test]
fn layer_rejects_a_typo_and_values_out_of_range() {
    insta::assert_snapshot!(
        "layer_typo_in_an_input",
        rejected(
            "layer",
            "layer1",
            json!({"size": 10, "inputs": [{"topic": "encoder/spikes", "weigth": 2.0}]})
        )
    );
    insta::assert_snapshot!(
        "layer_out_of_range",
        rejected(
            "layer",
            "layer1",
            json!({
                "size": 0,
                "inputs": [{"topic": "x", "p": 2.0}],
                "plasticity": [{"plugin": "STDP", "input": 3}]
            })
        )
    );
    insta::assert_snapshot!(
        "layer_missing_and_wrong_type",
        format!(
            "{}\n{}",
            rejected("layer", "layer1", json!({"inputs": [{"topic": "x"}]})),
            rejected("layer", "layer1", json!({"size": "ten", "inputs": []}))
        )
    );
    accepted(
        "layer",
        json!({"size": 3, "inputs": [{"topic": "encoder/spikes", "target": "inhibitory"}]}),
    );
}

#[test]
fn readout_rejects_a_typo_and_values_out_of_range() {
    insta::assert_snapshot!(
        "readout_typo",
        rejected(
            "readout",
            "readout",
            json!({"input": "l/spikes", "clases": 10})
        )
    );
    insta::assert_snapshot!(
        "readout_out_of_range",
        rejected(
            "readout",
            "readout",
            json!({"input": "l/spikes", "classes": 0, "steps_per_sample": 0})
        )
    );
    accepted(
        "readout",
        json!({"input": "l/spikes", "labels": "encoder/labels"}),
    );
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = rejected(
        "encoder",
        "enc",
        json!({"a": 1, "steps_per_sample": 5, "b": 2}),
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn the_parameter_table_comes_from_the_struct() {
    let docs = NodeKinds::builtin().get("layer").unwrap().docs();
    let rows: Vec<String> = docs
        .iter()
        .map(|d| format!("{} | {} | {} | {}", d.key, d.ty, d.default, d.about))
        .collect();
    insta::assert_snapshot!(rows.join("\n"));
}

#[test]
fn train_rejects_a_typo_and_values_out_of_range() {
    insta::assert_snapshot!(
        "train_typo",
        rejected(
            "train",
            "train",
            json!({"out": "m", "learnr": "SurrogateGradient"})
        )
    );
    insta::assert_snapshot!(
        "train_out_of_range",
        rejected("train", "train", json!({"out": "m", "holdout": 1.5}))
    );
    insta::assert_snapshot!("train_missing_out", rejected("train", "train", json!({})));
    accepted(
        "train",
        json!({"out": "m", "holdout": 0.2, "learner_params": {"hidden": [128]}}),
    );
}

#[test]
fn what_a_model_fixes_cannot_be_given_too() {
    insta::assert_snapshot!(
        "model_fixes_parameters",
        [
            rejected(
                "encoder",
                "enc",
                json!({"model": "m", "encoder": "RateEncoder", "steps_per_sample": 50})
            ),
            rejected(
                "layer",
                "hidden",
                json!({"model": "m", "size": 10, "inputs": [{"topic": "x", "p": 0.5}]})
            ),
            rejected(
                "layer",
                "hidden",
                json!({"layer": "hidden", "size": 10, "inputs": [{"topic": "x"}]})
            ),
            rejected(
                "readout",
                "readout",
                json!({"model": "m", "input": "o/spikes", "classes": 10})
            ),
        ]
        .join("\n")
    );
    // The model directory need not exist yet: a `train` node may write it later.
    accepted(
        "encoder",
        json!({"model": "/not/yet/trained", "holdout": 0.2}),
    );
    accepted(
        "layer",
        json!({"model": "/not/yet/trained", "layer": "hidden", "inputs": [{"topic": "encoder/spikes"}]}),
    );
    accepted(
        "readout",
        json!({"model": "/not/yet/trained", "input": "output/spikes"}),
    );
}
