//! Node parameters: one typed struct per node kind, checked before a node starts.
//!
//! A node's parameters arrive as a JSON object (`-p KEY=VALUE`, `--params-file`,
//! or `params:` in a launch file, as `EVOSPIKE_PARAMS`). Each kind reads them into
//! its own struct ([`Params`]): serde with `deny_unknown_fields`, defaults on the
//! fields, then [`Params::check`] for what a type cannot say — sizes at least 1,
//! probabilities in [0, 1], rates at least 0, topic names valid in the key
//! layout, files that exist. The rules are:
//!
//! - **Nothing is ignored.** An unknown key is an error naming the keys the kind
//!   takes (and the closest one, for typos); so is a value of the wrong type.
//! - **Every problem names the node, the key and the value** ([`ParamError`]), and
//!   all problems of a node are reported at once ([`ParamErrors`]), so that
//!   `evospike launch FILE --check` lists every mistake of a file in one run.
//! - **The documentation comes from the struct.** [`docs`] turns a kind's struct
//!   (its doc comments, types and serde defaults, through `schemars`) into the
//!   table `evospike run KIND --list-params` prints, so the two cannot drift.

mod docs;
mod error;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use docs::{docs, ParamDoc};
pub use error::{ParamError, ParamErrors, ParamProblem};

/// The parameters of one node kind.
///
/// Implement it on a `#[derive(Deserialize, JsonSchema)]` struct with
/// `#[serde(deny_unknown_fields)]`; give each optional field its default with
/// `#[serde(default = "…")]` (the one place it is written) and a doc comment (what
/// `--list-params` shows).
pub trait Params: DeserializeOwned + schemars::JsonSchema + Send + 'static {
    /// Checks values beyond their types; report each problem to `check`.
    fn check(&self, check: &mut Check<'_>);
}

/// Parses and checks the parameters of node `node` of kind `kind`.
///
/// # Errors
/// Every unknown key, then the first missing key or value of the wrong type, or
/// else every value out of range; each names node, key and value.
pub fn parse<P: Params>(
    node: &str,
    kind: &str,
    params: &Map<String, Value>,
) -> Result<P, ParamErrors> {
    let known = docs::top_level_keys::<P>();
    let (mut problems, known_params): (Vec<ParamError>, Map<String, Value>) = {
        let mut problems = Vec::new();
        let mut rest = Map::new();
        for (key, value) in params {
            if known.iter().any(|k| k == key) {
                rest.insert(key.clone(), value.clone());
            } else {
                let problem = ParamProblem::unknown(key, &known);
                problems.push(ParamError::new(
                    node,
                    kind,
                    key,
                    Some(value.clone()),
                    problem,
                ));
            }
        }
        (problems, rest)
    };
    // The known keys are still read, so that their mistakes show up in the same run.
    let object = Value::Object(known_params);
    match serde_path_to_error::deserialize::<_, P>(&object) {
        Err(err) => problems.push(error::from_serde(node, kind, &object, err)),
        Ok(parsed) => {
            let mut check = Check {
                node,
                kind,
                problems,
            };
            parsed.check(&mut check);
            if check.problems.is_empty() {
                return Ok(parsed);
            }
            problems = check.problems;
        }
    }
    Err(ParamErrors(problems))
}

/// Collects the problems [`Params::check`] finds. Keys are paths such as
/// `inputs[0].p`.
#[derive(Debug)]
pub struct Check<'a> {
    node: &'a str,
    kind: &'a str,
    problems: Vec<ParamError>,
}

impl Check<'_> {
    /// Reports that `key` (with `value`) breaks a rule; `rule` says what is allowed.
    pub fn fail(&mut self, key: impl Into<String>, value: Value, rule: impl Into<String>) {
        self.problems.push(ParamError::new(
            self.node,
            self.kind,
            key,
            Some(value),
            ParamProblem::OutOfRange { rule: rule.into() },
        ));
    }

    /// Reports that `key` must be given (required in this combination of parameters).
    pub fn require(&mut self, key: impl Into<String>) {
        self.problems.push(ParamError::new(
            self.node,
            self.kind,
            key,
            None,
            ParamProblem::Missing,
        ));
    }

    /// A count that must be at least `min` (sizes, windows).
    pub fn at_least(&mut self, key: impl Into<String>, value: u64, min: u64) {
        if value < min {
            self.fail(key, value.into(), format!("must be at least {min}"));
        }
    }

    /// A finite number > 0 (time steps).
    pub fn positive(&mut self, key: impl Into<String>, value: f64) {
        if !(value > 0.0 && value.is_finite()) {
            self.fail(key, number(value), "must be a finite number > 0");
        }
    }

    /// A finite number ≥ 0 (rates, timeouts).
    pub fn non_negative(&mut self, key: impl Into<String>, value: f64) {
        if !(value >= 0.0 && value.is_finite()) {
            self.fail(key, number(value), "must be a finite number ≥ 0");
        }
    }

    /// A duration in seconds (finite, ≥ 0, at most what a `Duration` holds).
    pub fn seconds(&mut self, key: impl Into<String>, value: f64) {
        if std::time::Duration::try_from_secs_f64(value).is_err() {
            self.fail(key, number(value), "must be a number of seconds ≥ 0");
        }
    }

    /// A fraction strictly between 0 and 1 (a held-out share of a data set).
    pub fn fraction(&mut self, key: impl Into<String>, value: f64) {
        if !(value > 0.0 && value < 1.0) {
            self.fail(key, number(value), "must be a fraction in (0, 1)");
        }
    }

    /// A probability in [0, 1].
    pub fn probability(&mut self, key: impl Into<String>, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.fail(key, number(value), "must be a probability in [0, 1]");
        }
    }

    /// A topic name the key layout accepts (`layer1/spikes`).
    pub fn topic(&mut self, key: impl Into<String>, name: &str) {
        if let Err(evospike_bus::BusError::InvalidName { reason, .. }) =
            evospike_bus::KeySpace::check_topic(name)
        {
            self.fail(
                key,
                name.into(),
                format!("not a valid topic name ({reason})"),
            );
        }
    }

    /// A file that exists.
    pub fn file(&mut self, key: impl Into<String>, path: &str) {
        if !std::path::Path::new(path).is_file() {
            self.fail(key, path.into(), "no such file");
        }
    }
}

fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value)
        .map_or_else(|| Value::String(value.to_string()), Value::Number)
}

#[cfg(test)]
mod tests;
