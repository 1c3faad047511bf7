//! Reading model parameters from a JSON parameter map, with errors that name the key.
//!
//! Layer, encoder and rule specs carry their model parameters as a
//! `serde_json::Map` ([`Params`]). A [`ParamReader`] takes values out of it with
//! defaults and range checks, remembers which keys it read, and
//! [`ParamReader::finish`] rejects any key nobody read, so a typo such as
//! `tau_m` for `tau_ms` is an error instead of a silently ignored setting.

use std::cell::RefCell;
use std::collections::BTreeSet;

pub use evospike_plugin_api::{ParamError, Params};

/// Typed access to a [`Params`] map; see the module docs.
#[derive(Debug)]
pub struct ParamReader<'a> {
    params: &'a Params,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> ParamReader<'a> {
    /// Starts reading `params`.
    pub fn new(params: &'a Params) -> Self {
        Self {
            params,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    fn raw(&self, key: &'static str) -> Option<&'a serde_json::Value> {
        self.read.borrow_mut().insert(key);
        self.params.get(key)
    }

    /// A finite number, `default` when absent.
    pub fn f64(&self, key: &'static str, default: f64) -> Result<f64, ParamError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| ParamError::new(key, format!("expected a finite number, got {v}"))),
        }
    }

    /// A finite number as `f32`, `default` when absent.
    pub fn f32(&self, key: &'static str, default: f32) -> Result<f32, ParamError> {
        self.f64(key, f64::from(default)).map(|x| x as f32)
    }

    /// A number that must satisfy `ok` (described by `what`, e.g. "> 0").
    pub fn f32_where(
        &self,
        key: &'static str,
        default: f32,
        what: &str,
        ok: impl Fn(f32) -> bool,
    ) -> Result<f32, ParamError> {
        let x = self.f32(key, default)?;
        if ok(x) {
            Ok(x)
        } else {
            Err(ParamError::new(key, format!("must be {what}, got {x}")))
        }
    }

    /// A strictly positive number.
    pub fn positive(&self, key: &'static str, default: f32) -> Result<f32, ParamError> {
        self.f32_where(key, default, "> 0", |x| x > 0.0)
    }

    /// A number `>= 0`.
    pub fn non_negative(&self, key: &'static str, default: f32) -> Result<f32, ParamError> {
        self.f32_where(key, default, ">= 0", |x| x >= 0.0)
    }

    /// A string, `default` when absent.
    pub fn str(&self, key: &'static str, default: &'a str) -> Result<&'a str, ParamError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| ParamError::new(key, format!("expected a string, got {v}"))),
        }
    }

    /// One of `choices` (case-insensitive), returned lower-case.
    pub fn choice(
        &self,
        key: &'static str,
        default: &'a str,
        choices: &[&'static str],
    ) -> Result<&'static str, ParamError> {
        let s = self.str(key, default)?;
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(s))
            .copied()
            .ok_or_else(|| {
                ParamError::new(key, format!("{s:?} is not one of {}", choices.join(", ")))
            })
    }

    /// Whether `key` is present (marks it as read).
    pub fn has(&self, key: &'static str) -> bool {
        self.raw(key).is_some()
    }

    /// A pair `[low, high]` with `low <= high`, `None` when absent.
    pub fn range(&self, key: &'static str) -> Result<Option<(f32, f32)>, ParamError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        let bad = || {
            ParamError::new(
                key,
                format!("expected [low, high] with low <= high, got {v}"),
            )
        };
        let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
        let lo = arr[0].as_f64().filter(|x| x.is_finite()).ok_or_else(bad)? as f32;
        let hi = arr[1].as_f64().filter(|x| x.is_finite()).ok_or_else(bad)? as f32;
        if lo > hi {
            return Err(bad());
        }
        Ok(Some((lo, hi)))
    }

    /// Fails on the first key that was never read (sorted, so the error is stable).
    pub fn finish(self) -> Result<(), ParamError> {
        let read = self.read.into_inner();
        match self.params.keys().find(|k| !read.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ParamError::new(
                k.clone(),
                format!(
                    "unknown parameter; known: {}",
                    read.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

/// `base` overlaid with `overrides` (keys of `overrides` win).
pub fn merged(base: &Params, overrides: &Params) -> Params {
    let mut out = base.clone();
    out.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> Params {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults_values_and_range_checks() {
        let p = map(json!({"tau_ms": 10.0, "mode": "Poisson", "span": [1, 2]}));
        let r = ParamReader::new(&p);
        assert_eq!(r.positive("tau_ms", 20.0).unwrap(), 10.0);
        assert_eq!(r.f32("absent", 3.0).unwrap(), 3.0);
        assert_eq!(
            r.choice("mode", "bernoulli", &["bernoulli", "poisson"])
                .unwrap(),
            "poisson"
        );
        assert_eq!(r.range("span").unwrap(), Some((1.0, 2.0)));
        r.finish().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let p = map(json!({"tau_ms": -1.0, "tau_m": 3, "x": "a"}));
        let r = ParamReader::new(&p);
        let e = r.positive("tau_ms", 20.0).unwrap_err();
        assert_eq!(e.to_string(), "parameter `tau_ms`: must be > 0, got -1");
        let e = r.f32("x", 0.0).unwrap_err();
        assert!(e.to_string().contains("expected a finite number"), "{e}");
        let e = r.finish().unwrap_err();
        assert_eq!(e.param, "tau_m");
        assert!(e.reason.contains("known: tau_ms, x"), "{e}");
    }

    #[test]
    fn merged_prefers_overrides() {
        let m = merged(&map(json!({"a": 1, "b": 2})), &map(json!({"b": 3})));
        assert_eq!(m, map(json!({"a": 1, "b": 3})));
    }
}
