//! `evospike node list|info`: which nodes are alive (liveliness tokens) and how
//! they are doing (each node's health queryable).

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Subcommand;
use evospike_bus::BusError;
use evospike_schemas::proto::{Empty, Health, HealthState};
use serde_json::{json, Value};

use crate::connect::{gather_health, seconds, Connection};
use crate::out::Out;
use crate::table;

/// The node tools.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// List the nodes alive in the namespace.
    List(ListArgs),
    /// Show a node's health: identity, state, plugins and topics.
    Info(InfoArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Also ask each node for its health (kind, state, pid, uptime).
    #[arg(long)]
    health: bool,
    /// How long to wait for answers.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    timeout: f64,
    /// A JSON array instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// The node's name.
    name: String,
    /// How long to wait for the node's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    timeout: f64,
    /// A JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::List(args) => list(args).await,
        NodeCommand::Info(args) => info(args).await,
    }
}

/// `active`, `degraded`, … from a `HealthState` number.
fn state_name(state: i32) -> String {
    HealthState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("HEALTH_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown ({state})"))
}

/// The health as JSON, with the state by name.
fn health_json(health: &Health) -> Value {
    let mut value = serde_json::to_value(health).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.insert("state".into(), Value::from(state_name(health.state)));
    }
    value
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let bus = args.connection.open().await?;
    let mut out = Out::new();
    if !args.health {
        let alive = bus
            .nodes(timeout)
            .await
            .context("cannot list the nodes (liveliness query)")?;
        if args.json {
            out.line(json!(alive))?;
        } else {
            if alive.is_empty() {
                eprintln!(
                    "no node is running in namespace {:?}",
                    bus.keys().namespace()
                );
            }
            for name in &alive {
                out.line(name)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let nodes = gather_health(&bus, timeout).await?;
    let problem = |err: &BusError| match err {
        BusError::Timeout { .. } => "no health reply".to_string(),
        other => format!("error: {other}"),
    };
    if args.json {
        let items: Vec<Value> = nodes
            .iter()
            .map(|node| match &node.health {
                Ok(health) => json!({ "name": node.name, "health": health_json(health) }),
                Err(err) => json!({ "name": node.name, "error": problem(err) }),
            })
            .collect();
        out.line(Value::Array(items))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| match &node.health {
            Ok(health) => {
                let info = health.node.clone().unwrap_or_default();
                vec![
                    node.name.clone(),
                    info.kind,
                    state_name(health.state),
                    info.pid.to_string(),
                    table::duration(health.uptime_s),
                    info.hostname,
                ]
            }
            Err(err) => vec![
                node.name.clone(),
                "-".into(),
                problem(err),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        })
        .collect();
    if rows.is_empty() {
        eprintln!(
            "no node is running in namespace {:?}",
            bus.keys().namespace()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for line in table::render(&["NAME", "KIND", "STATE", "PID", "UPTIME", "HOST"], &rows) {
        out.line(line)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let bus = args.connection.open().await?;
    let key = bus
        .keys()
        .health(&args.name)
        .with_context(|| format!("invalid node name {:?}", args.name))?;
    let health = match bus.request::<Empty, Health>(&key, &Empty {}, timeout).await {
        Ok(health) => health,
        Err(BusError::Timeout { .. }) => {
            let alive = bus.nodes(Duration::from_secs(1)).await.unwrap_or_default();
            if alive.contains(&args.name) {
                bail!(
                    "node {} is alive but did not answer its health query within {:.1}s",
                    args.name,
                    timeout.as_secs_f64()
                );
            }
            bail!(
                "no node named {:?} in namespace {:?} (running: {})",
                args.name,
                bus.keys().namespace(),
                table::list(&alive)
            );
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot get the health of node {}", args.name))
        }
    };
    let mut out = Out::new();
    if args.json {
        out.line(health_json(&health))?;
        return Ok(ExitCode::SUCCESS);
    }
    for line in info_lines(&health) {
        out.line(line)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn info_lines(health: &Health) -> Vec<String> {
    let info = health.node.clone().unwrap_or_default();
    let started =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(info.started_unix_ns));
    let detail = if health.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", health.detail)
    };
    let mut lines = vec![
        format!("name:        {}", info.name),
        format!("namespace:   {}", info.namespace),
        format!("kind:        {}", info.kind),
        format!("state:       {}{detail}", state_name(health.state)),
        format!("uptime:      {}", table::duration(health.uptime_s)),
        format!("started:     {started}"),
        format!("process:     pid {} on {}", info.pid, info.hostname),
        format!("version:     {}", info.version),
        format!("publishes:   {}", table::list(&info.publishes)),
        format!("subscribes:  {}", table::list(&info.subscribes)),
    ];
    if health.plugins.is_empty() {
        lines.push(format!("plugins:     {}", table::list(&info.plugins)));
    } else {
        lines.push("plugins:".to_string());
        let rows: Vec<Vec<String>> = health
            .plugins
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.plugin_type.clone(),
                    p.version.clone(),
                    p.priority.to_string(),
                    p.status.clone(),
                    if p.enabled { "yes" } else { "no" }.to_string(),
                    p.detail.clone(),
                ]
            })
            .collect();
        let headers = [
            "NAME", "TYPE", "VERSION", "PRIORITY", "STATUS", "ENABLED", "DETAIL",
        ];
        lines.extend(
            table::render(&headers, &rows)
                .into_iter()
                .map(|line| format!("  {}", line.trim_end())),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::proto::{NodeInfo, PluginHealth};

    #[test]
    fn states_print_by_name() {
        assert_eq!(state_name(HealthState::Active as i32), "active");
        assert_eq!(state_name(HealthState::Degraded as i32), "degraded");
        assert_eq!(state_name(99), "unknown (99)");
        let json = health_json(&Health {
            state: HealthState::Failed as i32,
            ..Default::default()
        });
        assert_eq!(json["state"], "failed");
    }

    #[test]
    fn info_shows_identity_topics_and_plugins() {
        let health = Health {
            node: Some(NodeInfo {
                name: "layer1".into(),
                namespace: "default".into(),
                kind: "layer".into(),
                pid: 42,
                hostname: "lab".into(),
                publishes: vec!["layer1/spikes".into()],
                subscribes: vec!["input/spikes".into()],
                ..Default::default()
            }),
            state: HealthState::Active as i32,
            uptime_s: 65.0,
            detail: String::new(),
            plugins: vec![PluginHealth {
                name: "lif".into(),
                plugin_type: "neuron".into(),
                status: "active".into(),
                version: "0.1.0".into(),
                priority: 40,
                enabled: true,
                detail: String::new(),
            }],
            ..Default::default()
        };
        let lines = info_lines(&health);
        assert!(
            lines.contains(&"state:       active".to_string()),
            "{lines:#?}"
        );
        assert!(lines.contains(&"uptime:      1m05s".to_string()));
        assert!(lines.contains(&"process:     pid 42 on lab".to_string()));
        assert!(lines.contains(&"publishes:   layer1/spikes".to_string()));
        assert!(lines.contains(&"subscribes:  input/spikes".to_string()));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  lif   neuron  0.1.0    40        active  yes")),
            "{lines:#?}"
        );
    }
}
