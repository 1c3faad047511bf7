//! Running hook chains: the host side of [`evospike_plugin_api::hooks`].
//!
//! A chain at one hook point runs, in this order:
//!
//! 1. every `Before` handler, by ascending priority;
//! 2. the `Around` handlers, lowest priority outermost, wrapped around
//! 3. the operation, or the `Replace` handler with the lowest priority instead of it;
//! 4. every `After` handler, by ascending priority.
//!
//! Equal priorities run in registration order. The first error (or panic) stops the
//! chain and comes back as a [`HookError`] naming the point, the handler's owner and
//! its kind.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use evospike_plugin_api::hooks::{HookData, HookHandler, HookKind, HookRegistrar};
use evospike_plugin_api::{PluginError, Priority};

use crate::error::HookError;
use crate::panic_message;

#[derive(Debug, Clone)]
struct Registered {
    owner: String,
    priority: Priority,
    seq: u64,
    handler: HookHandler,
}

/// One registered handler, as listed by [`HookRegistry::handlers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerInfo {
    /// The plugin that registered it.
    pub owner: String,
    /// Its position.
    pub kind: HookKind,
    /// Its priority.
    pub priority: Priority,
}

/// All hook points and their handlers.
#[derive(Debug, Default)]
pub struct HookRegistry {
    points: BTreeMap<String, Vec<Registered>>,
    next_seq: u64,
}

impl HookRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a handler owned by plugin `owner`.
    pub fn register(&mut self, owner: &str, point: &str, priority: Priority, handler: HookHandler) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let list = self.points.entry(point.to_owned()).or_default();
        list.push(Registered {
            owner: owner.to_owned(),
            priority,
            seq,
            handler,
        });
        list.sort_by_key(|r| (r.priority, r.seq));
    }

    /// Remove every handler `owner` registered; returns how many.
    pub fn remove_owner(&mut self, owner: &str) -> usize {
        let mut removed = 0;
        for list in self.points.values_mut() {
            let before = list.len();
            list.retain(|r| r.owner != owner);
            removed += before - list.len();
        }
        self.points.retain(|_, list| !list.is_empty());
        removed
    }

    /// The handlers at `point`, in the order they run within their kind.
    pub fn handlers(&self, point: &str) -> Vec<HandlerInfo> {
        self.points
            .get(point)
            .map(|list| {
                list.iter()
                    .map(|r| HandlerInfo {
                        owner: r.owner.clone(),
                        kind: r.handler.kind(),
                        priority: r.priority,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A registrar that records `owner` on everything registered through it.
    pub fn registrar<'a>(&'a mut self, owner: &'a str) -> OwnedRegistrar<'a> {
        OwnedRegistrar { hooks: self, owner }
    }

    /// Run the chain at `point` around `operation` on `data`.
    pub fn run(
        &self,
        point: &str,
        data: &mut HookData,
        mut operation: impl FnMut(&mut HookData) -> Result<(), PluginError>,
    ) -> Result<(), HookError> {
        let empty = Vec::new();
        let list = self.points.get(point).unwrap_or(&empty);
        let of_kind = |kind: HookKind| list.iter().filter(move |r| r.handler.kind() == kind);

        for r in of_kind(HookKind::Before) {
            call_simple(point, r, data)?;
        }

        let replacement = of_kind(HookKind::Replace).next();
        let mut core = |d: &mut HookData| -> Result<(), HookError> {
            match replacement {
                Some(r) => call_simple(point, r, d),
                None => guarded(|| operation(d)).map_err(|source| HookError::Operation {
                    point: point.to_owned(),
                    source: Box::new(source),
                }),
            }
        };
        let arounds: Vec<&Registered> = of_kind(HookKind::Around).collect();
        run_around(point, &arounds, data, &mut core)?;

        for r in of_kind(HookKind::After) {
            call_simple(point, r, data)?;
        }
        Ok(())
    }
}

/// Registers handlers on behalf of one plugin.
#[derive(Debug)]
pub struct OwnedRegistrar<'a> {
    hooks: &'a mut HookRegistry,
    owner: &'a str,
}

impl HookRegistrar for OwnedRegistrar<'_> {
    fn register(&mut self, point: &str, priority: Priority, handler: HookHandler) {
        self.hooks.register(self.owner, point, priority, handler);
    }
}

fn guarded(f: impl FnOnce() -> Result<(), PluginError>) -> Result<(), PluginError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(PluginError::Panicked {
            plugin: String::new(),
            operation: "hook handler".to_owned(),
            message: panic_message(payload.as_ref()),
        })
    })
}

fn handler_error(point: &str, r: &Registered, source: PluginError) -> HookError {
    let source = match source {
        PluginError::Panicked {
            operation, message, ..
        } => PluginError::Panicked {
            plugin: r.owner.clone(),
            operation,
            message,
        },
        other => other,
    };
    HookError::Handler {
        point: point.to_owned(),
        owner: r.owner.clone(),
        kind: r.handler.kind(),
        source: Box::new(source),
    }
}

fn call_simple(point: &str, r: &Registered, data: &mut HookData) -> Result<(), HookError> {
    let f = match &r.handler {
        HookHandler::Before(f) | HookHandler::After(f) | HookHandler::Replace(f) => f,
        HookHandler::Around(_) => unreachable!("around handlers are run by run_around"),
    };
    guarded(|| f(data)).map_err(|e| handler_error(point, r, e))
}

fn run_around(
    point: &str,
    arounds: &[&Registered],
    data: &mut HookData,
    core: &mut dyn FnMut(&mut HookData) -> Result<(), HookError>,
) -> Result<(), HookError> {
    let Some((outer, rest)) = arounds.split_first() else {
        return core(data);
    };
    let HookHandler::Around(f) = &outer.handler else {
        unreachable!("only around handlers are passed to run_around")
    };
    // The around handler sees inner failures as a PluginError; the typed HookError of
    // the real origin is kept here and returned instead of whatever it makes of it.
    let mut inner_error: Option<HookError> = None;
    let mut next = |d: &mut HookData| -> Result<(), PluginError> {
        run_around(point, rest, d, core).map_err(|e| {
            let seen = PluginError::failed(&outer.owner, e.to_string());
            inner_error = Some(e);
            seen
        })
    };
    let result = guarded(|| f(data, &mut next));
    if let Some(e) = inner_error {
        return Err(e);
    }
    result.map_err(|e| handler_error(point, outer, e))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    fn log_handler(log: &Arc<Mutex<Vec<String>>>, tag: &str) -> HookHandler {
        let (log, tag) = (Arc::clone(log), tag.to_owned());
        HookHandler::Before(Arc::new(move |_| {
            log.lock().unwrap().push(tag.clone());
            Ok(())
        }))
    }

    #[test]
    fn befores_run_by_priority_then_registration_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = HookRegistry::new();
        hooks.register("A", "p", Priority(40), log_handler(&log, "a40"));
        hooks.register("B", "p", Priority(10), log_handler(&log, "b10"));
        hooks.register("C", "p", Priority(40), log_handler(&log, "c40"));
        hooks.register("D", "p", Priority(20), log_handler(&log, "d20"));
        hooks.run("p", &mut json!(null), |_| Ok(())).unwrap();
        assert_eq!(*log.lock().unwrap(), ["b10", "d20", "a40", "c40"]);
    }

    #[test]
    fn full_chain_order_before_around_core_after() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut hooks = HookRegistry::new();
        let l = Arc::clone(&log);
        hooks.register(
            "P",
            "p",
            Priority(5),
            HookHandler::After(Arc::new(move |d| {
                l.lock().unwrap().push("after".into());
                *d = json!(d.as_i64().unwrap() * 10);
                Ok(())
            })),
        );
        for (name, prio) in [("inner", 20), ("outer", 10)] {
            let l = Arc::clone(&log);
            hooks.register(
                "P",
                "p",
                Priority(prio),
                HookHandler::Around(Arc::new(move |d, next| {
                    l.lock().unwrap().push(format!("{name}>"));
                    next(d)?;
                    l.lock().unwrap().push(format!("<{name}"));
                    Ok(())
                })),
            );
        }
        let l = Arc::clone(&log);
        hooks.register(
            "P",
            "p",
            Priority(50),
            HookHandler::Before(Arc::new(move |d| {
                l.lock().unwrap().push("before".into());
                *d = json!(d.as_i64().unwrap() + 1);
                Ok(())
            })),
        );
        let mut data = json!(1);
        let l = Arc::clone(&log);
        hooks
            .run("p", &mut data, |d| {
                l.lock().unwrap().push(format!("op({d})"));
                *d = json!(d.as_i64().unwrap() * 2);
                Ok(())
            })
            .unwrap();
        assert_eq!(data, json!(40));
        assert_eq!(
            *log.lock().unwrap(),
            ["before", "outer>", "inner>", "op(2)", "<inner", "<outer", "after"]
        );
    }

    #[test]
    fn replace_with_lowest_priority_runs_instead_of_operation() {
        let mut hooks = HookRegistry::new();
        hooks.register(
            "Slow",
            "p",
            Priority(30),
            HookHandler::Replace(Arc::new(|d| {
                *d = json!("slow");
                Ok(())
            })),
        );
        hooks.register(
            "Fast",
            "p",
            Priority(10),
            HookHandler::Replace(Arc::new(|d| {
                *d = json!("fast");
                Ok(())
            })),
        );
        let mut data = json!(null);
        hooks
            .run("p", &mut data, |_| {
                panic!("replaced operation must not run")
            })
            .unwrap();
        assert_eq!(data, json!("fast"));
    }

    #[test]
    fn handler_error_stops_the_chain_with_a_typed_error() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = HookRegistry::new();
        hooks.register(
            "Guard",
            "p",
            Priority(10),
            HookHandler::Before(Arc::new(|_| {
                Err(PluginError::failed("Guard", "request refused"))
            })),
        );
        hooks.register("Late", "p", Priority(20), log_handler(&log, "late"));
        let err = hooks
            .run("p", &mut json!(null), |_| panic!("must not run"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook `p`: before handler of plugin `Guard` failed: plugin `Guard` failed: request refused"
        );
        assert!(log.lock().unwrap().is_empty());
    }

    #[test]
    fn operation_error_inside_around_surfaces_as_operation_error() {
        let mut hooks = HookRegistry::new();
        hooks.register(
            "Wrap",
            "p",
            Priority(10),
            HookHandler::Around(Arc::new(|d, next| {
                // An around handler that swallows errors cannot hide the real origin.
                let _ = next(d);
                Ok(())
            })),
        );
        let err = hooks
            .run("p", &mut json!(null), |_| {
                Err(PluginError::failed("core", "disk full"))
            })
            .unwrap_err();
        assert!(
            matches!(err, HookError::Operation { ref point, .. } if point == "p"),
            "{err}"
        );
    }

    #[test]
    fn panicking_handler_becomes_error_naming_its_owner() {
        let mut hooks = HookRegistry::new();
        hooks.register(
            "Crashy",
            "p",
            Priority(10),
            HookHandler::After(Arc::new(|_| panic!("oops"))),
        );
        let err = hooks.run("p", &mut json!(null), |_| Ok(())).unwrap_err();
        let HookError::Handler {
            owner,
            kind,
            source,
            ..
        } = err
        else {
            panic!("unexpected {err:?}");
        };
        let PluginError::Panicked {
            plugin, message, ..
        } = *source
        else {
            panic!("unexpected {source:?}");
        };
        assert_eq!(
            (owner.as_str(), kind, plugin.as_str(), message.as_str()),
            ("Crashy", HookKind::After, "Crashy", "oops")
        );
    }

    #[test]
    fn remove_owner_drops_its_handlers() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = HookRegistry::new();
        hooks.register("A", "p", Priority(10), log_handler(&log, "a"));
        hooks.register("B", "p", Priority(10), log_handler(&log, "b"));
        hooks.register("A", "q", Priority(10), log_handler(&log, "a"));
        assert_eq!(hooks.remove_owner("A"), 2);
        assert_eq!(hooks.handlers("p").len(), 1);
        assert!(hooks.handlers("q").is_empty());
    }
}
