//! How a launch ended: one [`NodeReport`] per node, and the exit code.

use std::fmt;
use std::path::PathBuf;

/// How one node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeResult {
    /// Exited with status 0 on its own.
    Exited,
    /// Stopped by the launcher's shutdown.
    Stopped,
    /// Never started because the launch shut down first.
    NotStarted,
    /// Failed (the text says how) and was not successfully respawned.
    Failed(String),
    /// Never started because a dependency failed or never became ready.
    Skipped(String),
}

impl NodeResult {
    /// Whether this result makes the launch fail.
    pub fn is_failure(&self) -> bool {
        matches!(self, NodeResult::Failed(_) | NodeResult::Skipped(_))
    }
}

impl fmt::Display for NodeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeResult::Exited => f.write_str("exited (0)"),
            NodeResult::Stopped => f.write_str("stopped"),
            NodeResult::NotStarted => f.write_str("not started (shutdown)"),
            NodeResult::Failed(why) => write!(f, "FAILED: {why}"),
            NodeResult::Skipped(why) => write!(f, "SKIPPED: {why}"),
        }
    }
}

/// The end of one node.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// How it ended.
    pub result: NodeResult,
    /// How often it was restarted.
    pub restarts: u32,
}

/// The end of a launch.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Where the log files are.
    pub log_dir: PathBuf,
    /// Every node of the plan, in plan order.
    pub nodes: Vec<NodeReport>,
    /// Why the launch shut down, if it did not simply run out of nodes.
    pub shutdown_reason: Option<String>,
}

impl Outcome {
    /// The nodes that failed or were skipped.
    pub fn failed(&self) -> Vec<&NodeReport> {
        self.nodes
            .iter()
            .filter(|n| n.result.is_failure())
            .collect()
    }

    /// 0 when every node ended cleanly, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.failed().is_empty() {
            0
        } else {
            1
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = &self.shutdown_reason {
            writeln!(f, "shutdown: {reason}")?;
        }
        for node in &self.nodes {
            write!(f, "  {:<20} {}", node.name, node.result)?;
            if node.restarts > 0 {
                write!(f, " ({} restarts)", node.restarts)?;
            }
            writeln!(f)?;
        }
        let failed: Vec<&str> = self.failed().iter().map(|n| n.name.as_str()).collect();
        if failed.is_empty() {
            write!(
                f,
                "all nodes ended cleanly; logs in {}",
                self.log_dir.display()
            )
        } else {
            write!(
                f,
                "failed nodes: {}; logs in {}",
                failed.join(", "),
                self.log_dir.display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, result: NodeResult, restarts: u32) -> NodeReport {
        NodeReport {
            name: name.into(),
            result,
            restarts,
        }
    }

    #[test]
    fn exit_code_and_summary_name_the_failed_nodes() {
        let mut outcome = Outcome {
            log_dir: PathBuf::from("/tmp/log"),
            nodes: vec![
                report("a", NodeResult::Exited, 0),
                report("b", NodeResult::Stopped, 2),
                report("c", NodeResult::NotStarted, 0),
            ],
            shutdown_reason: Some("launcher received SIGINT".into()),
        };
        assert_eq!(outcome.exit_code(), 0);
        assert!(outcome
            .to_string()
            .ends_with("all nodes ended cleanly; logs in /tmp/log"));
        outcome.nodes.push(report(
            "d",
            NodeResult::Failed("exited with status 3".into()),
            1,
        ));
        outcome
            .nodes
            .push(report("e", NodeResult::Skipped("dependency `d`".into()), 0));
        assert_eq!(outcome.exit_code(), 1);
        let text = outcome.to_string();
        assert!(
            text.starts_with("shutdown: launcher received SIGINT\n"),
            "{text}"
        );
        assert!(
            text.contains("  b                    stopped (2 restarts)\n"),
            "{text}"
        );
        assert!(
            text.ends_with("failed nodes: d, e; logs in /tmp/log"),
            "{text}"
        );
    }
}
