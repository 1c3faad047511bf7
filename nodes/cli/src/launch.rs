//! `evospike launch FILE`: load a launch file for this machine — checking the
//! kind and parameters of every `kind:` node against this binary's node kinds —
//! and supervise its nodes with the launcher library (`evospike-launch`).
//! `kind:` nodes are started as `evospike run KIND` with this very executable
//! (or the one `EVOSPIKE_EXE` names).
//!
//! This is the only command line of the launcher: one definition of its flags,
//! and the exit codes of [`crate::exit`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use evospike_launch::{load, parse_arg_pairs, LoadOptions, SuperviseOptions};
use evospike_schemas::contract;

use crate::exit;
use crate::kinds::LaunchKinds;

#[derive(Debug, clap::Args)]
pub(crate) struct LaunchArgs {
    /// The launch file (YAML).
    file: PathBuf,
    /// Set a launch argument, `KEY=VALUE`. Repeatable.
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// Start only the nodes labelled with this machine.
    #[arg(long, value_name = "M")]
    machine: Option<String>,
    /// Folder for the per-node log files [default: ./.evospike/log/<launch>-<timestamp>].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Seconds between SIGINT and SIGTERM at shutdown [default: the file's, else 5].
    #[arg(long, value_name = "SECONDS")]
    sigint_timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL at shutdown [default: the file's, else 3].
    #[arg(long, value_name = "SECONDS")]
    sigterm_timeout: Option<f64>,
    /// Only check the file — every node's parameters included — and print the
    /// plan; start nothing.
    #[arg(long)]
    check: bool,
    /// Print node output to the log files only.
    #[arg(short, long)]
    quiet: bool,
    /// Have this machine's routers enforce the least-privilege access-control
    /// list derived from the launch graph (as `bus.security.acl: true` does).
    #[arg(long)]
    acl: bool,
    /// Print the access-control list derived from the launch graph (JSON, Zenoh's
    /// `access_control` section) and exit.
    #[arg(long)]
    print_acl: bool,
}

fn seconds(value: Option<f64>, flag: &str) -> anyhow::Result<Option<Duration>> {
    value.map(|v| crate::connect::seconds(v, flag)).transpose()
}

/// The executable that runs `kind:` nodes: `EVOSPIKE_EXE`, else this one.
fn evospike_exe() -> anyhow::Result<PathBuf> {
    match std::env::var_os(contract::env::EXE) {
        Some(exe) if !exe.is_empty() => Ok(PathBuf::from(exe)),
        _ => {
            std::env::current_exe().context("cannot find the evospike executable for `kind:` nodes")
        }
    }
}

pub(crate) fn run(args: LaunchArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        kinds: Some(Arc::new(LaunchKinds::new())),
        args: parse_arg_pairs(&args.args)?,
        machine: args.machine.clone(),
        evospike_exe: Some(evospike_exe()?),
    };
    let supervise = SuperviseOptions {
        log_dir: args.log_dir,
        sigint_timeout: seconds(args.sigint_timeout, "--sigint-timeout")?,
        sigterm_timeout: seconds(args.sigterm_timeout, "--sigterm-timeout")?,
        quiet: args.quiet,
    };
    let mut plan = load(&args.file, &options)?;
    if args.print_acl {
        let acl = crate::secure::acl(&plan.graph)
            .to_json()
            .context("cannot derive the access-control list from the launch graph")?;
        println!("{}", serde_json::to_string_pretty(&acl)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The routers' users file and ACL live as long as the launch.
    let security_dir = tempfile::Builder::new()
        .prefix("evospike-security-")
        .tempdir()
        .context("cannot make a folder for the routers' security files")?;
    crate::secure::prepare_routers(&mut plan, security_dir.path(), args.acl)?;
    if args.check {
        for node in &plan.nodes {
            println!("{node}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = evospike_launch::run(&plan, &supervise)
        .with_context(|| format!("cannot supervise the nodes of {}", args.file.display()))?;
    eprintln!("{outcome}");
    Ok(ExitCode::from(match outcome.exit_code() {
        0 => exit::SUCCESS,
        _ => exit::FAILURE,
    }))
}
