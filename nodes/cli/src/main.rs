//! The `evospike` command: one binary for running, launching and watching an
//! evospike deployment, shaped after `ros2` and `dora`.
//!
//! - **Running**: `evospike run KIND` starts one node of a built-in kind (the
//!   node runtime, `evospike-node`, does the work); `evospike router` starts the
//!   Zenoh router every other process connects to; `evospike launch FILE` hands a
//!   launch file to the launcher (`evospike-launch`).
//! - **Watching** ([`topic`], [`node`]): tools that open a [`Bus`](evospike_bus::Bus)
//!   session like any node ([`connect::Connection`]: by default a peer connected
//!   to the local router) and read what flows: `topic echo|hz|bw|info|raster`
//!   decode spike tensors and protobuf messages; `topic list`, `node list|info`
//!   ask every node's health queryable who publishes what.
//! - **Learning** ([`learn`]): `train` trains a network with a LEARNING plugin
//!   and writes a model directory; `eval` scores a model on labelled data.
//! - **Extending** ([`plugin`]): `plugin list` shows the built-in and discovered
//!   plugins, `plugin new` writes a new plugin crate.
//!
//! Errors are `anyhow` chains printed as `error: …` with their causes; bad input
//! and unreachable buses exit non-zero with a message saying what to do.
//! See `docs/cli.md` for every command with examples.

mod connect;
mod launch;
mod learn;
mod node;
mod out;
mod plugin;
mod table;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The node kind.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(evospike_node::KINDS))]
    kind: String,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, clap::Args)]
struct RouterArgs {
    #[command(flatten)]
    node: NodeArgs,
}

impl RouterArgs {
    /// The router's node arguments: listens on the default router endpoint unless
    /// told otherwise, in Zenoh router mode, named `router`.
    fn into_node_args(self) -> NodeArgs {
        let mut args = self.node;
        if args.bus.listen.is_empty() {
            args.bus.listen = vec![evospike_node::DEFAULT_ROUTER.to_string()];
        }
        args.bus.mode.get_or_insert_with(|| "router".to_string());
        args.name.get_or_insert_with(|| "router".to_string());
        args
    }
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
        Command::Train(args) => learn::train(args),
        Command::Eval(args) => learn::eval(args),
        Command::Run(args) => block_on(async move {
            evospike_node::run(&args.kind, args.node).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Router(args) => block_on(async move {
            evospike_node::run("router", args.into_node_args()).await?;
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

/// Prints an error and its causes; a closed stdout (`evospike topic echo … | head`)
/// is a normal end, not an error.
fn report(err: &anyhow::Error) -> ExitCode {
    if out::is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
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
    fn router_defaults_to_the_local_router_endpoint_in_router_mode() {
        let cli = Cli::try_parse_from(["evospike", "router"]).unwrap();
        let Command::Router(args) = cli.command else {
            panic!("not the router command")
        };
        let args = args.into_node_args();
        assert_eq!(
            args.bus.listen,
            vec![evospike_node::DEFAULT_ROUTER.to_string()]
        );
        assert_eq!(args.bus.mode.as_deref(), Some("router"));
        assert_eq!(args.name.as_deref(), Some("router"));

        let cli =
            Cli::try_parse_from(["evospike", "router", "--listen", "tcp/127.0.0.1:9000"]).unwrap();
        let Command::Router(args) = cli.command else {
            panic!("not the router command")
        };
        assert_eq!(
            args.into_node_args().bus.listen,
            vec!["tcp/127.0.0.1:9000".to_string()]
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
