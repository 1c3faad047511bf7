//! YAML trees to JSON values, keeping YAML's scalar types.

use marked_yaml::Node;
use serde_json::{Map, Number, Value};

/// Converts a YAML node to JSON. Plain (unquoted) scalars become null, booleans
/// and numbers where YAML 1.2's core schema says so; quoted scalars stay strings.
pub(crate) fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(scalar) if scalar.may_coerce() => plain_scalar(scalar.as_str()),
        Node::Scalar(scalar) => Value::String(scalar.as_str().to_owned()),
        Node::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    // Only decimal-looking text is a float: Rust would also accept `inf` or `NaN`.
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

/// Merges `over` into `base`: objects key by key (recursively), anything else replaced.
pub(crate) fn merge_under(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge_under(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_keep_yaml_types() {
        // The launcher parses with coercion off for quoted scalars, as here.
        let tree = marked_yaml::parse_yaml_with_options(
            0,
            "a: 1\nb: 2.5\nc: true\nd: ~\ne: text\nf: '7'\ng: [1, x]\nh: {i: -3}\nj: inf\nk: 1e3\n",
            marked_yaml::LoaderOptions::default().prevent_coercion(true),
        )
        .unwrap();
        assert_eq!(
            to_json(&tree),
            json!({"a": 1, "b": 2.5, "c": true, "d": null, "e": "text", "f": "7",
                   "g": [1, "x"], "h": {"i": -3}, "j": "inf", "k": 1000.0})
        );
    }

    #[test]
    fn merge_keeps_file_keys_and_lets_inline_win() {
        let mut base = json!({"a": 1, "nested": {"x": 1, "y": 2}, "list": [1, 2]});
        merge_under(&mut base, json!({"b": 2, "nested": {"y": 3}, "list": [9]}));
        assert_eq!(
            base,
            json!({"a": 1, "b": 2, "nested": {"x": 1, "y": 3}, "list": [9]})
        );
    }
}
