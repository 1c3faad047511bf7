//! Launch files and the launcher that supervises evospike node processes.
//!
//! A launch file (YAML) declares the node processes of a deployment: each by
//! built-in `kind:` (started as `evospike run KIND`) or by `exec:` path, with
//! its name, namespace, params, env, topic remaps, plugins, restart policy,
//! start order and `machine:` label. See `docs/launch.md` for the format.
//!
//! Running one is two steps:
//!
//! 1. [`load`] reads the file and everything it includes, expands `args` and
//!    `$(...)` substitutions, checks it all, and returns a [`LaunchPlan`] for
//!    one machine — or a [`LoadError`] naming the file, line and key of the
//!    mistake. No process starts before the whole launch is valid.
//! 2. [`run`] supervises the plan: it starts the nodes in `depends_on` order,
//!    prefixes their output lines with their names and writes per-node log
//!    files, restarts them by policy with exponential back-off, and on Ctrl-C
//!    (or when a `required` node ends) stops them all with SIGINT, then
//!    SIGTERM, then SIGKILL. The [`Outcome`] says how each node ended and
//!    gives the exit code.
//!
//! Every child leads its own process group and is killed by the kernel if the
//! launcher dies, so no node outlives its launcher.
//!
//! # Example
//!
//! ```
//! use evospike_launch::{load, run, LoadOptions, SuperviseOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("hello.yaml");
//! std::fs::write(
//!     &file,
//!     "args:\n  who: world\nnodes:\n  - name: greeter\n    exec: /bin/sh\n    \
//!      args: ['-c', 'echo hello $(arg who) from $EVOSPIKE_NODE_NAME']\n",
//! )?;
//! let plan = load(&file, &LoadOptions::default())?;
//! assert_eq!(plan.nodes[0].args[1], "echo hello world from $EVOSPIKE_NODE_NAME");
//!
//! let options = SuperviseOptions {
//!     log_dir: Some(dir.path().join("log")),
//!     quiet: true,
//!     ..SuperviseOptions::default()
//! };
//! let outcome = run(&plan, &options)?;
//! assert_eq!(outcome.exit_code(), 0);
//! let log = std::fs::read_to_string(dir.path().join("log/greeter.log"))?;
//! assert_eq!(log, "hello world from greeter\n");
//! # Ok(())
//! # }
//! ```

mod error;
mod json;
mod load;
mod outcome;
mod output;
mod plan;
mod process;
mod schema;
pub mod security;
pub use process::die_with_parent;
mod subst;
mod supervise;

pub use error::{LoadError, LoadErrorKind, LoadErrors, SubstError, SuperviseError};
pub use load::{load, KindCatalog, LoadOptions, ParamIssue};
pub use outcome::{NodeReport, NodeResult, Outcome};
pub use plan::{
    parse_arg_pairs, ArgPairError, LaunchPlan, NodeSpec, Readiness, RespawnMode, RespawnPolicy,
    ShutdownTimeouts, DEFAULT_READY_DELAY, DEFAULT_READY_TIMEOUT, DEFAULT_RESPAWN_DELAY,
    DEFAULT_RESPAWN_DELAY_MAX, DEFAULT_SIGINT_TIMEOUT, DEFAULT_SIGTERM_TIMEOUT,
};
pub use security::GraphNode;
pub use supervise::{run, run_async, SuperviseOptions};
