//! Node kinds as types.
//!
//! A node kind is a type implementing [`NodeKind`]: its name, a one-line summary,
//! its parameters (a [`Params`] struct) and `run`. [`NodeKinds`] is a catalog of
//! kinds by name — the built-in ones ([`NodeKinds::builtin`]) plus any a program
//! adds with [`NodeKinds::with`] — and the only place a kind's name is looked up.
//! Through it a program can, for any kind, check parameters without starting
//! anything ([`KindEntry::check`]), print the parameter table
//! ([`KindEntry::docs`]) or run a node ([`NodeKinds::run`]).
//!
//! Running a node of kind `K` ([`run_kind`]) goes: parameters parsed and checked
//! (an invalid one stops here, before the bus is touched) → bus configuration
//! (the kind may adjust it: a router listens, a pipeline node sets its queue
//! depth) → bus opened → node announced ([`Node::start`]) → `K::run` → logs and
//! shared memory flushed.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use evospike_bus::{Bus, BusConfig, Mode};
use evospike_schemas::contract::NodeTopics;
use serde_json::{Map, Value};

use crate::node::Node;
use crate::params::{self, ParamDoc, ParamErrors, Params};
use crate::{logging, NodeArgs, NodeError, DEFAULT_MAX_LAG};

/// One kind of node.
pub trait NodeKind: Send + Sync + 'static {
    /// The name in `evospike run NAME` and in a launch file's `kind: NAME`.
    const NAME: &'static str;
    /// One line saying what a node of this kind does.
    const SUMMARY: &'static str;
    /// Its parameters.
    type Params: Params;

    /// Adjusts the bus configuration before the bus opens. The default leaves it
    /// as the flags and environment made it.
    fn configure_bus(_params: &Self::Params, _config: &mut BusConfig) {}

    /// What node `node` of this kind publishes, subscribes and serves with these
    /// parameters (topic names before remapping): the launcher's access-control
    /// list gives it exactly these rights. The default is nothing, which denies
    /// a kind that forgot to say.
    fn topics(_params: &Self::Params, _node: &str) -> NodeTopics {
        NodeTopics::default()
    }

    /// Runs the started node until it finishes or is asked to stop.
    fn run(node: Node, params: Self::Params) -> impl Future<Output = Result<(), NodeError>> + Send;
}

/// A node kind behind a name: what [`NodeKinds`] hands out.
pub trait KindEntry: Send + Sync {
    /// The kind's name.
    fn name(&self) -> &'static str;
    /// What a node of the kind does.
    fn summary(&self) -> &'static str;
    /// Checks parameters for node `node` without starting anything.
    fn check(&self, node: &str, params: &Map<String, Value>) -> Result<(), ParamErrors>;
    /// The kind's parameter table.
    fn docs(&self) -> Vec<ParamDoc>;
    /// What node `node` publishes, subscribes and serves with `params`
    /// (see [`NodeKind::topics`]); `Err` when the parameters are invalid.
    fn topics(&self, node: &str, params: &Map<String, Value>) -> Result<NodeTopics, ParamErrors>;
    /// Runs one node of this kind (see [`run_kind`]).
    fn run(&self, args: NodeArgs) -> Pin<Box<dyn Future<Output = Result<(), NodeError>> + Send>>;
}

struct Entry<K>(PhantomData<fn() -> K>);

impl<K: NodeKind> KindEntry for Entry<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn summary(&self) -> &'static str {
        K::SUMMARY
    }

    fn check(&self, node: &str, params: &Map<String, Value>) -> Result<(), ParamErrors> {
        params::parse::<K::Params>(node, K::NAME, params).map(drop)
    }

    fn docs(&self) -> Vec<ParamDoc> {
        params::docs::<K::Params>()
    }

    fn topics(&self, node: &str, params: &Map<String, Value>) -> Result<NodeTopics, ParamErrors> {
        params::parse::<K::Params>(node, K::NAME, params).map(|p| K::topics(&p, node))
    }

    fn run(&self, args: NodeArgs) -> Pin<Box<dyn Future<Output = Result<(), NodeError>> + Send>> {
        Box::pin(run_kind::<K>(args))
    }
}

/// A catalog of node kinds by name.
pub struct NodeKinds {
    kinds: Vec<Box<dyn KindEntry>>,
}

impl std::fmt::Debug for NodeKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl NodeKinds {
    /// A catalog without kinds.
    pub fn empty() -> NodeKinds {
        NodeKinds { kinds: Vec::new() }
    }

    /// The built-in kinds: `router`, `encoder`, `layer`, `readout`, `train`,
    /// `train_worker`.
    pub fn builtin() -> NodeKinds {
        use crate::kinds::{
            EncoderKind, LayerKind, ReadoutKind, RouterKind, TrainKind, TrainWorkerKind,
        };
        NodeKinds::empty()
            .with::<RouterKind>()
            .with::<EncoderKind>()
            .with::<LayerKind>()
            .with::<ReadoutKind>()
            .with::<TrainKind>()
            .with::<TrainWorkerKind>()
    }

    /// This catalog with kind `K` added (replacing a kind of the same name).
    pub fn with<K: NodeKind>(mut self) -> NodeKinds {
        self.kinds.retain(|k| k.name() != K::NAME);
        self.kinds.push(Box::new(Entry::<K>(PhantomData)));
        self
    }

    /// The kinds' names, in the order they were added.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }

    /// The kind called `name`.
    ///
    /// # Errors
    /// [`NodeError::UnknownKind`], listing the kinds there are.
    pub fn get(&self, name: &str) -> Result<&dyn KindEntry, NodeError> {
        self.kinds
            .iter()
            .find(|k| k.name() == name)
            .map(Box::as_ref)
            .ok_or_else(|| NodeError::UnknownKind {
                kind: name.to_owned(),
                known: self.names().into_iter().map(str::to_owned).collect(),
            })
    }

    /// Runs one node of kind `kind` until it finishes or is stopped.
    pub async fn run(&self, kind: &str, args: NodeArgs) -> Result<(), NodeError> {
        self.get(kind)?.run(args).await
    }
}

/// Runs one node of kind `K` until it finishes or is told to stop (SIGINT or
/// SIGTERM): see the module docs for the steps.
pub async fn run_kind<K: NodeKind>(args: NodeArgs) -> Result<(), NodeError> {
    let name = args.name.clone().unwrap_or_else(|| K::NAME.to_owned());
    let params: K::Params = params::parse(&name, K::NAME, &args.params()?)?;
    let mut config = args.bus.to_config(&args.namespace)?;
    // Deep enough that a node's bus thread rarely waits on a full queue (it would
    // delay the node's health replies too), bounded so a slow consumer still
    // pushes back on its producers.
    config.queue_capacity = DEFAULT_MAX_LAG;
    K::configure_bus(&params, &mut config);
    if config.listen.is_empty() && config.mode == Mode::Peer {
        // Peers listen on an ephemeral loopback port so the others can reach them
        // directly (shared memory) once the router has introduced them.
        let protocol = if config.tls.is_some() { "tls" } else { "tcp" };
        config.listen = vec![format!("{protocol}/127.0.0.1:0")];
    }

    let logs = logging::init_logging();
    let bus = Bus::open(config).await?;
    let node = Node::start(K::NAME, &args, bus.clone()).await?;
    if let Some(records) = logs {
        tokio::spawn(logging::forward_logs(
            bus.clone(),
            node.name().to_string(),
            records,
        ));
    }
    let metrics = node.metrics_handle();
    let result = K::run(node, params).await;
    if let Err(err) = &result {
        tracing::error!(err = %crate::error_chain(err), "node {name} failed");
    }
    // What reached this node, and how, and which steps it never got: the
    // multi-host tests check that payloads crossed the network rather than
    // shared memory, and that every lost step was reported as a gap; what it
    // sent, and how many of those tensors were copied rather than computed in
    // place (the zero-copy test checks none were).
    let stats = bus.receive_stats();
    let sent = bus.send_stats();
    let count =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        steps = count(&metrics.steps),
        gaps = count(&metrics.gaps),
        duplicates = count(&metrics.duplicates),
        received = stats.received,
        in_place = stats.in_place,
        copies = stats.copies,
        shm = stats.shm,
        sent = sent.sent,
        loaned = sent.loaned,
        send_copies = sent.copies,
        shm_pool_bytes = bus.shm_pool_bytes(),
        "node {name} bus totals"
    );
    logging::flush().await;
    // Our last steps live in our shared memory: let the receivers read them first.
    if !bus
        .flush(std::time::Duration::from_secs(2))
        .await
        .unwrap_or(true)
    {
        tracing::warn!("receivers did not release every sent buffer within 2 s");
    }
    result
}
