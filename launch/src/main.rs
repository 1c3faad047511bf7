//! `evospike-launch FILE`: run a launch file without the full `evospike` CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use evospike_launch::{load, parse_arg_pairs, run, LoadOptions, SuperviseOptions};

/// Start the nodes of a launch file and supervise them until they end or Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "evospike-launch", version)]
struct Cli {
    /// The launch file (YAML).
    file: PathBuf,
    /// Set a launch argument (repeatable): --arg rate=100
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// Start only the nodes labelled with this machine.
    #[arg(long)]
    machine: Option<String>,
    /// The evospike executable that runs `kind:` nodes.
    #[arg(long, env = "EVOSPIKE_EXE")]
    evospike_exe: Option<PathBuf>,
    /// Folder for per-node log files [default: ./.evospike/log/<launch>-<timestamp>]
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Seconds between SIGINT and SIGTERM at shutdown [default: file's, else 5]
    #[arg(long, value_name = "SECS")]
    sigint_timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL at shutdown [default: file's, else 3]
    #[arg(long, value_name = "SECS")]
    sigterm_timeout: Option<f64>,
    /// Only validate the file and print the plan; start nothing.
    #[arg(long)]
    check: bool,
}

/// Exit code when the launch file is invalid (1 is "a node failed").
const INVALID: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match launch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(INVALID)
        }
    }
}

fn launch(cli: &Cli) -> anyhow::Result<u8> {
    let args = parse_arg_pairs(&cli.args)?;
    let seconds = |value: Option<f64>, flag: &str| -> anyhow::Result<Option<Duration>> {
        value
            .map(|v| Duration::try_from_secs_f64(v).with_context(|| format!("{flag} {v}")))
            .transpose()
    };
    let options = LoadOptions {
        args,
        machine: cli.machine.clone(),
        evospike_exe: cli.evospike_exe.clone(),
    };
    let plan = load(&cli.file, &options)?;
    if cli.check {
        for node in &plan.nodes {
            println!("{node}");
        }
        return Ok(0);
    }
    let supervise = SuperviseOptions {
        log_dir: cli.log_dir.clone(),
        sigint_timeout: seconds(cli.sigint_timeout, "--sigint-timeout")?,
        sigterm_timeout: seconds(cli.sigterm_timeout, "--sigterm-timeout")?,
        quiet: false,
    };
    let outcome = run(&plan, &supervise)?;
    eprintln!("{outcome}");
    Ok(if outcome.exit_code() == 0 { 0 } else { 1 })
}
