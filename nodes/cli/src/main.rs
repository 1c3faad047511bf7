//! The `evospike` command: one binary for running, launching and watching an
//! evospike deployment, shaped after `ros2` and `dora`.
//!
//! - **Running** ([`kinds`], [`launch`]): `evospike run KIND` starts one node of
//!   a kind of this binary's catalog (the node runtime, `evospike-node`, does the
//!   work; `--list-params` prints the kind's parameters); `evospike router`
//!   starts the Zenoh router every other process connects to; `evospike launch
//!   FILE` checks a launch file — the parameters of every node included — and
//!   supervises its nodes (the launcher library, `evospike-launch`).
//! - **Watching** ([`topic`], [`node`]): tools that open a [`Bus`](evospike_bus::Bus)
//!   session like any node ([`connect::Connection`]: by default a peer connected
//!   to the local router) and read what flows: `topic echo|hz|bw|info|raster`
//!   decode spike tensors and protobuf messages; `topic list`, `node list|info`
//!   ask every node's health queryable who publishes what.
//! - **Learning** ([`learn`]): `train` trains a network with a LEARNING plugin
//!   and writes a model directory; `eval` scores a model on labelled data.
//! - **Securing** ([`certs`], [`secure`]): `certs` makes a CA, machine
//!   certificates and a cluster secret; `launch --acl` has the routers enforce the
//!   launch graph's least-privilege access-control list.
//! - **Extending** ([`plugin`]): `plugin list` shows the built-in and discovered
//!   plugins, `plugin new` writes a new plugin crate.
//!
//! Errors are `anyhow` chains printed as `error: …` with their causes; [`exit`]
//! maps them to the documented exit codes (2: the input is wrong, 3: the bus is
//! unreachable, 1: anything else that failed). See `docs/cli.md` for every
//! command with examples.

mod certs;
mod connect;
mod exit;
mod kinds;
mod launch;
mod learn;
mod log;
mod node;
mod out;
mod parallel;
mod plugin;
mod secure;
mod table;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evospike_node::kinds::RouterKind;
use evospike_node::NodeArgs;

/// Run, launch and watch evospike spiking-network nodes on the Zenoh bus.
#[derive(Debug, Parser)]
#[command(name = "evospike", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node of a built-in kind, without a launch file.
    Run(RunArgs),
    /// Run a Zenoh router: the bus broker that nodes and tools connect to.
    Router(RouterArgs),
    /// Start the nodes of a launch file and supervise them until they end or Ctrl-C.
    Launch(launch::LaunchArgs),
    /// Inspect, echo, measure and publish topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// List running nodes and show their health.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// List plugins and create new ones.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Train a network with a LEARNING plugin and write a model directory.
    Train(learn::TrainArgs),
    /// Score a model on labelled data: accuracy and confusion matrix.
    Eval(learn::EvalArgs),
    /// Print the log records the log consumer stored (`evospike run logs`).
    Log(log::LogArgs),
    /// Make a CA, per-machine certificates and a cluster secret (development and tests).
    Certs(certs::CertsArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The node kind.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(kinds::catalog().names()))]
    kind: String,
    /// Print the kind's parameters (type, default, meaning) and exit.
    #[arg(long)]
    list_params: bool,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, clap::Args)]
struct RouterArgs {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Runs a command. Launching and plugin commands run without an async runtime (the
/// launcher makes its own); everything that touches the bus runs on one.
fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Launch(args) => launch::run(args),
        Command::Plugin(command) => plugin::run(command),
        Command::Run(args) if args.list_params => kinds::list_params(&args.kind),
        Command::Train(args) => learn::train(args),
        Command::Eval(args) => learn::eval(args),
        Command::Certs(args) => certs::run(args),
        Command::Run(args) => block_on(async move {
            kinds::catalog().run(&args.kind, args.node).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Router(args) => block_on(async move {
            evospike_node::run_kind::<RouterKind>(args.node).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Topic(command) => {
            init_tool_logging();
            block_on(topic::run(command))
        }
        Command::Node(command) => {
            init_tool_logging();
            block_on(node::run(command))
        }
        Command::Log(args) => {
            init_tool_logging();
            block_on(log::run(args))
        }
    }
}

fn block_on(
    future: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))?;
    runtime.block_on(future)
}

/// Tools stay quiet unless `RUST_LOG` asks for logs (Zenoh's own included); nodes
/// set up their logging in the runtime.
fn init_tool_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Prints an error (each of its lines as an `error:`) and its causes, and gives
/// its exit code; a closed stdout (`evospike topic echo … | head`) is a normal
/// end, not an error.
fn report(err: &anyhow::Error) -> ExitCode {
    if out::is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    eprint!("{}", render(err));
    ExitCode::from(exit::code(err))
}

/// The text `report` prints for `err`. A cause whose text its parent's message
/// already ends with (`… failed: {source}`) is not printed again.
fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = err.to_string();
    for line in previous.lines() {
        text.push_str(&format!("error: {line}\n"));
    }
    for cause in err.chain().skip(1) {
        let message = cause.to_string();
        if !previous.ends_with(&message) {
            for line in message.lines() {
                text.push_str(&format!("  caused by: {line}\n"));
            }
        }
        previous = message;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn causes_already_in_their_parents_message_are_not_repeated() {
        let inner = std::io::Error::other("disk full");
        let middle = anyhow::Error::new(inner).context("write failed: disk full");
        let err = middle.context("cannot save");
        assert_eq!(
            render(&err),
            "error: cannot save\n  caused by: write failed: disk full\n"
        );
    }

    #[test]
    fn unknown_node_kinds_are_rejected_with_the_list() {
        let err = Cli::try_parse_from(["evospike", "run", "toaster"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("toaster") && err.contains("encoder"), "{err}");
    }
}
