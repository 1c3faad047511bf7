//! What is wrong with a node's parameters, said so that the user can fix it:
//! node, key, value, and what is allowed.

use std::fmt;

use serde_json::Value;

/// One parameter problem of one node.
///
/// Displays as ``node `enc` (encoder): unknown parameter `steps_per_sampel` = 50;
/// did you mean `steps_per_sample`? …``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ParamError {
    /// The node's name.
    pub node: String,
    /// The node's kind.
    pub kind: String,
    /// Path of the parameter, e.g. `size` or `inputs[0].p`.
    pub key: String,
    /// The value given, when one was.
    pub value: Option<Value>,
    /// What is wrong.
    pub problem: ParamProblem,
}

/// What is wrong with one parameter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamProblem {
    /// The kind has no such parameter.
    Unknown {
        /// The keys allowed at that place.
        known: Vec<String>,
        /// The known key closest to the one given, if one is close.
        closest: Option<String>,
    },
    /// A required parameter was not given.
    Missing,
    /// The value has the wrong type (serde's description of it).
    WrongType {
        /// What was expected.
        expected: String,
    },
    /// The value has the right type but breaks a rule (range, name, file).
    OutOfRange {
        /// The rule, e.g. `must be a probability in [0, 1]`.
        rule: String,
    },
}

impl ParamProblem {
    /// `key` is not one of `known`; suggests the closest known key.
    pub(crate) fn unknown(key: &str, known: &[String]) -> ParamProblem {
        let closest = known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(key, k), k))
            .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, k)| k.clone());
        ParamProblem::Unknown {
            known: known.to_vec(),
            closest,
        }
    }
}

impl ParamError {
    pub(crate) fn new(
        node: &str,
        kind: &str,
        key: impl Into<String>,
        value: Option<Value>,
        problem: ParamProblem,
    ) -> ParamError {
        ParamError {
            node: node.to_owned(),
            kind: kind.to_owned(),
            key: key.into(),
            value,
            problem,
        }
    }
}

/// Values are shown as compact JSON, cut short when long (a whole `inputs` list).
fn shown(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node `{}` ({}): ", self.node, self.kind)?;
        let value = self.value.as_ref().map(shown);
        match (&self.problem, value) {
            (ParamProblem::Unknown { known, closest }, value) => {
                write!(f, "unknown parameter `{}`", self.key)?;
                if let Some(value) = value {
                    write!(f, " = {value}")?;
                }
                if let Some(closest) = closest {
                    write!(f, "; did you mean `{closest}`?")?;
                }
                match known.is_empty() {
                    true => write!(f, " (a {} node takes no parameters)", self.kind),
                    false => write!(f, " (allowed here: {})", known.join(", ")),
                }
            }
            (ParamProblem::Missing, _) => write!(f, "parameter `{}` is required", self.key),
            (ParamProblem::WrongType { expected }, Some(value)) => {
                write!(f, "parameter `{}` = {value}: {expected}", self.key)
            }
            (ParamProblem::WrongType { expected }, None) => {
                write!(f, "parameter `{}`: {expected}", self.key)
            }
            (ParamProblem::OutOfRange { rule }, Some(value)) => {
                write!(f, "parameter `{}` = {value}: {rule}", self.key)
            }
            (ParamProblem::OutOfRange { rule }, None) => {
                write!(f, "parameter `{}`: {rule}", self.key)
            }
        }
    }
}

/// Every parameter problem found in one node's parameters (at least one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ParamErrors(pub Vec<ParamError>);

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The first problem serde met, with its path, as a [`ParamError`].
pub(super) fn from_serde(
    node: &str,
    kind: &str,
    params: &Value,
    err: serde_path_to_error::Error<serde_json::Error>,
) -> ParamError {
    let mut path = String::new();
    for segment in err.path().iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => join(&mut path, key),
            Segment::Unknown => join(&mut path, "?"),
        }
    }
    let message = err.inner().to_string();
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').nth(1))
            .map(str::to_owned)
    };
    if let Some(field) = named("unknown field ") {
        // The path may or may not end with the unknown key already.
        if !(path == field || path.ends_with(&format!(".{field}"))) {
            join(&mut path, &field);
        }
        // serde lists the allowed fields in backquotes after the unknown one.
        let known: Vec<String> = message
            .split('`')
            .skip(3)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let problem = ParamProblem::unknown(&field, &known);
        return ParamError::new(node, kind, &path, lookup(params, &path), problem);
    }
    if let Some(field) = named("missing field ") {
        join(&mut path, &field);
        return ParamError::new(node, kind, &path, None, ParamProblem::Missing);
    }
    let problem = ParamProblem::WrongType {
        expected: plain_types(&message),
    };
    ParamError::new(node, kind, &path, lookup(params, &path), problem)
}

/// serde names Rust types (`expected usize`); say what a user writes instead.
fn plain_types(message: &str) -> String {
    let mut text = message.to_owned();
    for (rust, plain) in [
        ("usize", "an integer ≥ 0"),
        ("u64", "an integer ≥ 0"),
        ("u32", "an integer ≥ 0"),
        ("i64", "an integer"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        text = text.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    text
}

fn join(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// The value at `path` (`inputs[0].p`) inside `params`.
pub(crate) fn lookup(params: &Value, path: &str) -> Option<Value> {
    let mut value = params;
    for part in path.split('.') {
        let (key, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            value = value.get(key)?;
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            value = value.get(index.parse::<usize>().ok()?)?;
        }
    }
    Some(value.clone())
}
