//! Alerts: rules whose condition, held for a while on one node, fires an alert;
//! the alert moves pending → firing → resolved, with the time of each step.
//!
//! A rule is a metric compared with a threshold on the nodes its pattern
//! matches, held for `for_s` seconds (from the monitoring node's parameters), or
//! one of the built-in rules: `node_down` (a node that was alive is gone),
//! `pipeline_gaps` (a node reports lost steps), `layer_silent` (a node steps
//! but emits no spikes), `layer_saturated` (more than half of a layer fires at
//! each step: `spikes_per_s / (steps_per_s × neurons)`, from the gauge `neurons`
//! layers publish). MONITORING plugins (`InsightEngine`) add *findings*: each
//! is an alert of its own rule and node for as long as the plugin finds it again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use evospike_plugin_api::Finding;
use evospike_schemas::proto::Alert;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a metric is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Op {
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A rule from the configuration: `metric op threshold` on the nodes matching
/// `node`, held for `for_s` seconds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// The alert's name.
    pub name: String,
    /// The metric (as nodes publish it, e.g. `steps_per_s`).
    pub metric: String,
    /// Which nodes: a name, or a pattern with `*` (default: every node).
    #[serde(default = "any_node")]
    pub node: String,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
    /// Seconds the condition must hold before the alert fires.
    #[serde(default)]
    pub for_s: f64,
}

fn any_node() -> String {
    "*".to_owned()
}

/// Whether `name` matches `pattern` (`*` matches any run of characters).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// What a rule sees of one node.
pub(crate) trait NodeView {
    /// The nodes to evaluate.
    fn nodes(&self) -> Vec<String>;
    /// A metric's latest value on a node.
    fn value(&self, node: &str, metric: &str) -> Option<f64>;
    /// Seconds since the node disappeared, if it was alive and is gone.
    fn gone_for(&self, node: &str) -> Option<f64>;
}

/// A rule: a check on one node, and how long it must hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    /// From the configuration.
    Metric(RuleParams),
    /// A node that was alive is gone.
    NodeDown { for_s: f64 },
    /// `gaps_total` grew within the last `window_s`.
    PipelineGaps { window_s: f64 },
    /// Steps but no spikes.
    LayerSilent { for_s: f64 },
    /// The fraction of a layer's neurons firing per step above `threshold`.
    LayerSaturated { threshold: f64, for_s: f64 },
}

impl Rule {
    /// The built-in rules.
    pub(crate) fn builtin() -> Vec<Rule> {
        vec![
            Rule::NodeDown { for_s: 5.0 },
            Rule::PipelineGaps { window_s: 10.0 },
            Rule::LayerSilent { for_s: 10.0 },
            Rule::LayerSaturated {
                threshold: 0.5,
                for_s: 10.0,
            },
        ]
    }

    fn name(&self) -> &str {
        match self {
            Rule::Metric(p) => &p.name,
            Rule::NodeDown { .. } => "node_down",
            Rule::PipelineGaps { .. } => "pipeline_gaps",
            Rule::LayerSilent { .. } => "layer_silent",
            Rule::LayerSaturated { .. } => "layer_saturated",
        }
    }

    fn for_s(&self) -> f64 {
        match self {
            Rule::Metric(p) => p.for_s,
            Rule::NodeDown { for_s }
            | Rule::LayerSilent { for_s }
            | Rule::LayerSaturated { for_s, .. } => *for_s,
            Rule::PipelineGaps { .. } => 0.0,
        }
    }
}

impl Rule {
    /// Whether `rule` holds on `node`, with the value and what it means.
    /// `gaps` is what `pipeline_gaps` remembers: per node, `gaps_total` when it
    /// last grew, and when.
    fn check(
        &self,
        view: &dyn NodeView,
        node: &str,
        now: Instant,
        gaps: &mut BTreeMap<String, (f64, Instant)>,
    ) -> Option<(f64, String)> {
        match self {
            Rule::Metric(p) => {
                if !matches(&p.node, node) {
                    return None;
                }
                let value = view.value(node, &p.metric)?;
                p.op.holds(value, p.threshold).then(|| {
                    (
                        value,
                        format!("{} = {value} {} {}", p.metric, p.op.text(), p.threshold),
                    )
                })
            }
            Rule::NodeDown { .. } => view
                .gone_for(node)
                .map(|s| (s, format!("node {node} stopped answering {s:.0} s ago"))),
            Rule::PipelineGaps { window_s } => {
                let total = view.value(node, "gaps_total")?;
                let (last, grew) = gaps.get(node).copied().unwrap_or((0.0, now));
                if total > last {
                    gaps.insert(node.to_owned(), (total, now));
                    return Some((
                        total,
                        format!(
                            "{node} reported {} lost steps ({total} in all)",
                            total - last
                        ),
                    ));
                }
                (total > 0.0 && now.duration_since(grew) < Duration::from_secs_f64(*window_s)).then(
                    || {
                        (
                            total,
                            format!("{node} reported lost steps ({total} in all)"),
                        )
                    },
                )
            }
            Rule::LayerSilent { .. } => {
                let steps = view.value(node, "steps_per_s")?;
                let spikes = view.value(node, "spikes_per_s")?;
                (steps > 0.0 && spikes == 0.0).then(|| {
                    (
                        0.0,
                        format!("{node} steps ({steps:.0}/s) but emits no spikes"),
                    )
                })
            }
            Rule::LayerSaturated { threshold, .. } => {
                let neurons = view.value(node, "neurons")?;
                let steps = view.value(node, "steps_per_s")?;
                if neurons <= 0.0 || steps <= 0.0 {
                    return None;
                }
                let fraction = view.value(node, "spikes_per_s")? / (steps * neurons);
                (fraction > *threshold).then(|| {
                    (
                        fraction,
                        format!("{:.0}% of {node} fires at each step", fraction * 100.0),
                    )
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    alert: Alert,
    pending: Instant,
}

/// The alerts and what the rules remember between evaluations.
#[derive(Debug)]
pub(crate) struct Alerts {
    rules: Vec<Rule>,
    active: BTreeMap<(String, String), Tracked>,
    resolved: VecDeque<Alert>,
    /// `gaps_total` per node when it last grew, and its value then.
    gaps: BTreeMap<String, (f64, Instant)>,
    /// The plugins' findings at the last evaluation.
    found: BTreeSet<(String, String)>,
}

/// Resolved alerts kept for `GET /alerts`.
const RESOLVED_KEPT: usize = 100;

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

impl Alerts {
    pub(crate) fn new(rules: Vec<Rule>) -> Alerts {
        Alerts {
            rules,
            active: BTreeMap::new(),
            resolved: VecDeque::new(),
            gaps: BTreeMap::new(),
            found: BTreeSet::new(),
        }
    }

    /// Evaluates every rule on every node, and the plugins' `findings` (each
    /// an alert of its own rule on its node while it is found again).
    pub(crate) fn evaluate(
        &mut self,
        view: &dyn NodeView,
        findings: &[Finding],
        now: Instant,
        wall: SystemTime,
    ) {
        let Alerts {
            rules,
            active,
            resolved,
            gaps,
            found,
        } = self;
        let nodes = view.nodes();
        for rule in rules.iter() {
            for node in &nodes {
                let key = (rule.name().to_owned(), node.clone());
                match rule.check(view, node, now, gaps) {
                    Some((value, message)) => {
                        hold(active, key, value, message, rule.for_s(), now, wall)
                    }
                    None => retire(active, resolved, &key, wall),
                }
            }
        }
        let mut now_found = BTreeSet::new();
        for f in findings {
            let key = (f.rule.clone(), f.node.clone());
            now_found.insert(key.clone());
            hold(active, key, f.value, f.message.clone(), f.for_s, now, wall);
        }
        for key in found.difference(&now_found) {
            retire(active, resolved, key, wall);
        }
        *found = now_found;
        // Alerts about nodes no longer known resolve too (findings name their node).
        let stale: Vec<_> = active
            .keys()
            .filter(|key| !nodes.contains(&key.1) && !found.contains(*key))
            .cloned()
            .collect();
        for key in stale {
            retire(active, resolved, &key, wall);
        }
    }

    /// Firing, then pending, then the resolved ones (newest first).
    pub(crate) fn list(&self, with_resolved: bool) -> Vec<Alert> {
        let mut active: Vec<Alert> = self.active.values().map(|t| t.alert.clone()).collect();
        active.sort_by_key(|a| (a.state != "firing", a.rule.clone(), a.node.clone()));
        if with_resolved {
            active.extend(self.resolved.iter().cloned());
        }
        active
    }
}

/// The condition of `key` holds now: a new alert is pending; a pending one
/// that has held `for_s` fires.
fn hold(
    active: &mut BTreeMap<(String, String), Tracked>,
    key: (String, String),
    value: f64,
    message: String,
    for_s: f64,
    now: Instant,
    wall: SystemTime,
) {
    let tracked = active
        .entry(key)
        .or_insert_with_key(|(rule, node)| Tracked {
            alert: Alert {
                rule: rule.clone(),
                node: node.clone(),
                state: "pending".into(),
                pending_since: rfc3339(wall),
                ..Default::default()
            },
            pending: now,
        });
    tracked.alert.value = value;
    tracked.alert.message = message;
    if tracked.alert.state == "pending"
        && now.duration_since(tracked.pending).as_secs_f64() >= for_s
    {
        tracked.alert.state = "firing".into();
        tracked.alert.firing_since = rfc3339(wall);
        tracing::warn!(rule = %tracked.alert.rule, node = %tracked.alert.node, message = %tracked.alert.message, "alert firing");
    }
}

/// Ends the alert at `key`, if there is one: a firing alert is kept as
/// resolved; a pending one never fired and leaves no trace.
fn retire(
    active: &mut BTreeMap<(String, String), Tracked>,
    resolved: &mut VecDeque<Alert>,
    key: &(String, String),
    wall: SystemTime,
) {
    let Some(tracked) = active.remove(key) else {
        return;
    };
    if tracked.alert.state == "firing" {
        let mut alert = tracked.alert;
        alert.state = "resolved".into();
        alert.resolved_at = rfc3339(wall);
        tracing::info!(rule = %alert.rule, node = %alert.node, "alert resolved");
        resolved.push_front(alert);
        resolved.truncate(RESOLVED_KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct View {
        values: BTreeMap<(String, String), f64>,
        gone: BTreeMap<String, f64>,
    }

    impl NodeView for View {
        fn nodes(&self) -> Vec<String> {
            let mut n: Vec<String> = self
                .values
                .keys()
                .map(|k| k.0.clone())
                .chain(self.gone.keys().cloned())
                .collect();
            n.sort();
            n.dedup();
            n
        }
        fn value(&self, node: &str, metric: &str) -> Option<f64> {
            self.values
                .get(&(node.to_owned(), metric.to_owned()))
                .copied()
        }
        fn gone_for(&self, node: &str) -> Option<f64> {
            self.gone.get(node).copied()
        }
    }

    #[test]
    fn patterns() {
        assert!(matches("*", "layer1"));
        assert!(matches("layer*", "layer1"));
        assert!(matches("*1", "layer1"));
        assert!(matches("l*y*1", "layer1"));
        assert!(!matches("layer*", "readout"));
        assert!(matches("readout", "readout"));
        assert!(!matches("readout", "readout2"));
    }

    #[test]
    fn pending_then_firing_after_its_time_then_resolved() {
        let rule = Rule::Metric(RuleParams {
            name: "slow".into(),
            metric: "steps_per_s".into(),
            node: "layer*".into(),
            op: Op::Lt,
            threshold: 10.0,
            for_s: 2.0,
        });
        let mut alerts = Alerts::new(vec![rule]);
        let mut view = View::default();
        view.values
            .insert(("layer1".into(), "steps_per_s".into()), 3.0);
        view.values
            .insert(("readout".into(), "steps_per_s".into()), 3.0);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        alerts.evaluate(&view, &[], t0, wall);
        let list = alerts.list(true);
        assert_eq!(list.len(), 1, "the readout does not match the pattern");
        assert_eq!(list[0].state, "pending");
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(2), wall);
        assert_eq!(alerts.list(true)[0].state, "firing");
        assert!(!alerts.list(true)[0].firing_since.is_empty());
        view.values
            .insert(("layer1".into(), "steps_per_s".into()), 50.0);
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(3), wall);
        let list = alerts.list(true);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].state, "resolved");
        assert!(!list[0].resolved_at.is_empty());
        assert!(alerts.list(false).is_empty());
    }

    #[test]
    fn a_pending_alert_that_stops_holding_leaves_no_trace() {
        let mut alerts = Alerts::new(vec![Rule::LayerSilent { for_s: 10.0 }]);
        let mut view = View::default();
        view.values
            .insert(("l".into(), "steps_per_s".into()), 100.0);
        view.values.insert(("l".into(), "spikes_per_s".into()), 0.0);
        let t0 = Instant::now();
        alerts.evaluate(&view, &[], t0, SystemTime::now());
        assert_eq!(alerts.list(true)[0].state, "pending");
        view.values.insert(("l".into(), "spikes_per_s".into()), 5.0);
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(1), SystemTime::now());
        assert!(alerts.list(true).is_empty());
    }

    #[test]
    fn a_layer_firing_mostly_is_saturated() {
        let mut alerts = Alerts::new(vec![Rule::LayerSaturated {
            threshold: 0.5,
            for_s: 0.0,
        }]);
        let mut view = View::default();
        for (metric, value) in [
            ("neurons", 100.0),
            ("steps_per_s", 10.0),
            ("spikes_per_s", 800.0),
        ] {
            view.values.insert(("hidden".into(), metric.into()), value);
        }
        alerts.evaluate(&view, &[], Instant::now(), SystemTime::now());
        let list = alerts.list(false);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].state, "firing");
        assert!((list[0].value - 0.8).abs() < 1e-9);
        view.values
            .insert(("hidden".into(), "spikes_per_s".into()), 100.0);
        alerts.evaluate(&view, &[], Instant::now(), SystemTime::now());
        assert!(alerts.list(false).is_empty());
    }

    #[test]
    fn builtins_see_a_dead_node_and_lost_steps() {
        let mut alerts = Alerts::new(Rule::builtin());
        let mut view = View::default();
        view.gone.insert("layer2".into(), 6.0);
        view.values
            .insert(("layer1".into(), "gaps_total".into()), 3.0);
        let t0 = Instant::now();
        alerts.evaluate(&view, &[], t0, SystemTime::now());
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(5), SystemTime::now());
        let list = alerts.list(false);
        let names: Vec<(&str, &str, &str)> = list
            .iter()
            .map(|a| (a.rule.as_str(), a.node.as_str(), a.state.as_str()))
            .collect();
        assert!(
            names.contains(&("node_down", "layer2", "firing")),
            "{names:?}"
        );
        assert!(
            names.contains(&("pipeline_gaps", "layer1", "firing")),
            "{names:?}"
        );
        // No new gaps for longer than the window: resolved.
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(20), SystemTime::now());
        assert!(alerts.list(false).iter().all(|a| a.rule != "pipeline_gaps"));
    }

    #[test]
    fn plugin_findings_pend_fire_and_resolve() {
        let view = View::default();
        let mut alerts = Alerts::new(Vec::new());
        let finding = Finding {
            rule: "insight_silent_layer".into(),
            node: "layer2".into(),
            value: 0.0,
            message: "layer2 is silent".into(),
            for_s: 2.0,
        };
        let t0 = Instant::now();
        let wall = SystemTime::now();
        alerts.evaluate(&view, std::slice::from_ref(&finding), t0, wall);
        assert_eq!(alerts.list(false)[0].state, "pending");
        alerts.evaluate(
            &view,
            std::slice::from_ref(&finding),
            t0 + Duration::from_secs(2),
            wall,
        );
        let firing = &alerts.list(false)[0];
        assert_eq!(
            (firing.rule.as_str(), firing.node.as_str()),
            ("insight_silent_layer", "layer2")
        );
        assert_eq!(firing.state, "firing");
        assert_eq!(firing.message, "layer2 is silent");
        // Not found any more: resolved.
        alerts.evaluate(&view, &[], t0 + Duration::from_secs(3), wall);
        assert!(alerts.list(false).is_empty());
        assert_eq!(alerts.list(true)[0].state, "resolved");
    }
}
