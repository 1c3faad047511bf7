//! `evospike launch FILE`: load a launch file for this machine and supervise its
//! nodes with `evospike-launch`. `kind:` nodes are started as `evospike run KIND`
//! with this very executable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use evospike_launch::{load, parse_arg_pairs, LoadOptions, SuperviseOptions};

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
    /// Only check the file and print the plan; start nothing.
    #[arg(long)]
    check: bool,
    /// Print node output to the log files only.
    #[arg(short, long)]
    quiet: bool,
}

/// Exit code of an invalid launch file (1 means a node failed).
const INVALID: u8 = 2;

fn seconds(value: Option<f64>, flag: &str) -> anyhow::Result<Option<Duration>> {
    value.map(|v| crate::connect::seconds(v, flag)).transpose()
}

pub(crate) fn run(args: LaunchArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        args: parse_arg_pairs(&args.args)?,
        machine: args.machine.clone(),
        evospike_exe: Some(
            std::env::current_exe()
                .context("cannot find the evospike executable for `kind:` nodes")?,
        ),
    };
    let plan = match load(&args.file, &options) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    if args.check {
        for node in &plan.nodes {
            println!("{node}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let supervise = SuperviseOptions {
        log_dir: args.log_dir,
        sigint_timeout: seconds(args.sigint_timeout, "--sigint-timeout")?,
        sigterm_timeout: seconds(args.sigterm_timeout, "--sigterm-timeout")?,
        quiet: args.quiet,
    };
    let outcome = evospike_launch::run(&plan, &supervise)
        .with_context(|| format!("cannot supervise the nodes of {}", args.file.display()))?;
    eprintln!("{outcome}");
    Ok(if outcome.exit_code() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
