//! Raw Zenoh vs the evospike bus, side by side in one run, between two processes
//! on this host with shared memory on.
//!
//! `cargo bench -p evospike-bus --bench bus` prints, for each payload size, the
//! throughput (messages/s, GB/s) and, for 64 B and 1 MiB, the ping-pong round-trip
//! latency (p50, p99), each measured `EVOSPIKE_BENCH_REPEATS` times (default 3,
//! the implementations taking turns) and given as min / median / max, with the
//! ratio of the medians evospike/raw. All sides use the same Zenoh version and
//! configuration ([`BusConfig::to_zenoh`]), the same 512 MiB pool cap, and move
//! the same bytes:
//!
//! - memcpy: the physical limit — one `memcpy` of the payload's size from one
//!   buffer to another in this process, as often as the messages are sent. Every
//!   side below makes (at least) this one copy per message.
//! - raw: the sender allocates a shared-memory buffer, copies a ready-made payload
//!   into it and puts it; the receiver borrows the payload's bytes.
//! - evospike: the sender publishes a `SpikeTensor` (`SpikePublisher::publish`,
//!   serialized straight into shared memory); the receiver gets a validated
//!   in-place view.
//! - loan: the sender loans a shared-memory buffer laid out for the tensor
//!   (`SpikePublisher::loan`), copies the same ready-made words into it — standing
//!   for a layer computing its spikes there — and publishes it; the receiver as for
//!   evospike.
//!
//! `EVOSPIKE_BENCH_SIZES` (bytes, comma-separated) picks payload sizes,
//! `EVOSPIKE_BENCH_DIVIDE` divides every message count, and
//! `EVOSPIKE_BENCH_RAW_POOL` (bytes) gives raw a pool of that size instead of
//! 512 MiB: the size evospike's pool has for the payload compares reuse with reuse.
//!
//! `EVOSPIKE_BENCH_PROFILE=N` instead sends N messages of each size and
//! implementation (or only `EVOSPIKE_BENCH_IMPL`) to a subscriber of the same session, in one process, for a
//! profiler: `valgrind --tool=callgrind` counts the instructions of `Sender::send`
//! and `Receiver::recv` repeatably (a second process under valgrind is too slow
//! for Zenoh's shared-memory watchdog). The bench spawns itself as the second process
//! (`EVOSPIKE_BENCH_ROLE`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evospike_bus::{Bus, BusConfig};
use evospike_schemas::{SpikeBody, SpikeLayout, SpikeTensor};
use zenoh::qos::{CongestionControl, Reliability};
use zenoh::shm::{AllocAlignment, BlockOn, GarbageCollect, ShmProviderBuilder};
use zenoh::Wait;

const ROLE_ENV: &str = "EVOSPIKE_BENCH_ROLE";
const DATA: &str = "evospike/bench/topic/data";
const PONG: &str = "evospike/bench/topic/pong";
const POOL: usize = 512 << 20;
/// How long a receiving process waits for a message before it reports the rest lost.
const LOST_AFTER: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Raw,
    Evospike,
    Loan,
}

impl Impl {
    const ALL: [Impl; 3] = [Impl::Raw, Impl::Evospike, Impl::Loan];

    fn name(self) -> &'static str {
        match self {
            Impl::Raw => "raw",
            Impl::Evospike => "evospike",
            Impl::Loan => "loan",
        }
    }

    fn parse(s: &str) -> Impl {
        Impl::ALL
            .into_iter()
            .find(|imp| imp.name() == s)
            .expect("known implementation")
    }
}

fn config(listen: Option<&str>, connect: Option<&str>) -> BusConfig {
    let mut config = BusConfig::peer(
        &listen.map(String::from).into_iter().collect::<Vec<_>>(),
        &connect.map(String::from).into_iter().collect::<Vec<_>>(),
    );
    config.namespace = "bench".into();
    config.shm_pool_bytes = POOL;
    config.queue_capacity = 256;
    config
}

/// A bitset tensor whose archive is about `bytes` long.
fn tensor(bytes: usize) -> SpikeTensor {
    let words = (bytes.saturating_sub(64) / 8).max(1);
    let mut tensor = SpikeTensor::zeros("bench", &[(words * 64) as u32]).expect("valid shape");
    if let SpikeBody::Bitset(w) = &mut tensor.body {
        w.iter_mut().enumerate().for_each(|(i, w)| *w = i as u64);
    }
    tensor
}

/// Sends one message of the given implementation.
struct Sender {
    imp: Impl,
    raw_pub: Option<zenoh::pubsub::Publisher<'static>>,
    provider: Option<zenoh::shm::ShmProvider<zenoh::shm::PosixShmProviderBackend>>,
    payload: Vec<u8>,
    spike_pub: Option<evospike_bus::SpikePublisher>,
    tensor: SpikeTensor,
    layout: SpikeLayout,
    step: u64,
}

impl Sender {
    fn new(
        imp: Impl,
        session: Option<&zenoh::Session>,
        bus: Option<&Bus>,
        key: &str,
        bytes: usize,
    ) -> Sender {
        let tensor = tensor(bytes);
        let payload = tensor.to_aligned_bytes().to_vec();
        let layout = SpikeLayout::bitset("bench", &tensor.shape).expect("layout");
        match imp {
            Impl::Raw => {
                let session = session.expect("raw sender needs a session");
                let raw_pub = session
                    .declare_publisher(key.to_string())
                    .congestion_control(CongestionControl::Block)
                    // As the bus declares its publishers: the same guarantees.
                    .reliability(Reliability::Reliable)
                    .wait()
                    .expect("declare publisher");
                let alignment = AllocAlignment::new(4).expect("16-byte alignment");
                let pool = env_usize("EVOSPIKE_BENCH_RAW_POOL").map_or(POOL, |p| p[0]);
                let provider = ShmProviderBuilder::default_backend((pool, alignment))
                    .wait()
                    .expect("shm pool");
                Sender {
                    imp,
                    raw_pub: Some(raw_pub),
                    provider: Some(provider),
                    payload,
                    spike_pub: None,
                    tensor,
                    layout,
                    step: 0,
                }
            }
            Impl::Evospike | Impl::Loan => {
                let bus = bus.expect("evospike sender needs a bus");
                let topic = key.rsplit('/').next().expect("key has a topic");
                let spike_pub = bus.spike_publisher(topic).expect("spike publisher");
                Sender {
                    imp,
                    raw_pub: None,
                    provider: None,
                    payload,
                    spike_pub: Some(spike_pub),
                    tensor,
                    layout,
                    step: 0,
                }
            }
        }
    }

    fn payload_len(&self) -> usize {
        self.payload.len()
    }

    // Never inlined, so a profile attributes each message's cost to one function.
    #[inline(never)]
    fn send(&mut self) {
        match self.imp {
            Impl::Raw => {
                let provider = self.provider.as_ref().expect("raw");
                let mut buf = provider
                    .alloc(self.payload.len())
                    .with_policy::<BlockOn<GarbageCollect>>()
                    .wait()
                    .expect("shm alloc");
                buf.copy_from_slice(&self.payload);
                self.raw_pub
                    .as_ref()
                    .expect("raw")
                    .put(buf)
                    .wait()
                    .expect("put");
            }
            Impl::Evospike => {
                self.spike_pub
                    .as_mut()
                    .expect("evospike")
                    .publish(&mut self.tensor)
                    .expect("publish");
            }
            Impl::Loan => {
                let SpikeBody::Bitset(words) = &self.tensor.body else {
                    unreachable!("a bitset tensor")
                };
                let publisher = self.spike_pub.as_mut().expect("loan");
                let mut loan = publisher.loan(&self.layout).expect("loan");
                loan.bitset_mut().expect("bitset").copy_from_slice(words);
                loan.publish(self.step).expect("publish");
                self.step += 1;
            }
        }
    }

    fn wait_matched(&self, rt: &tokio::runtime::Runtime) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let matched = match self.imp {
                Impl::Raw => self
                    .raw_pub
                    .as_ref()
                    .expect("raw")
                    .matching_status()
                    .wait()
                    .expect("status")
                    .matching(),
                Impl::Evospike | Impl::Loan => rt
                    .block_on(
                        self.spike_pub
                            .as_ref()
                            .expect("evospike")
                            .wait_for_subscribers(Duration::from_millis(10)),
                    )
                    .expect("matching"),
            };
            if matched {
                return;
            }
            assert!(Instant::now() < deadline, "no subscriber matched");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Receives messages of the given implementation and reads them.
enum Receiver {
    Raw(zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>),
    Evospike(evospike_bus::SpikeSubscriber),
}

impl Receiver {
    fn new(imp: Impl, session: Option<&zenoh::Session>, bus: Option<&Bus>, key: &str) -> Receiver {
        match imp {
            Impl::Raw => Receiver::Raw(
                session
                    .expect("session")
                    .declare_subscriber(key.to_string())
                    .wait()
                    .expect("subscriber"),
            ),
            Impl::Evospike | Impl::Loan => {
                let topic = key.rsplit('/').next().expect("topic");
                Receiver::Evospike(
                    bus.expect("bus")
                        .spike_subscriber(topic)
                        .expect("subscriber"),
                )
            }
        }
    }

    /// Receives one message and returns a byte read from it (so the read is real).
    #[inline(never)]
    fn recv(&self) -> u64 {
        self.recv_within(LOST_AFTER)
            .expect("a message within LOST_AFTER")
    }

    /// [`recv`](Self::recv), or `None` when nothing comes within `idle`.
    #[inline(never)]
    fn recv_within(&self, idle: Duration) -> Option<u64> {
        match self {
            Receiver::Raw(sub) => {
                let sample = sub.recv_timeout(idle).expect("raw recv")?;
                let bytes = sample.payload().to_bytes();
                Some(bytes.len() as u64 + u64::from(bytes[bytes.len() / 2]))
            }
            Receiver::Evospike(sub) => {
                let msg = sub.recv_timeout(idle).expect("evospike recv")?;
                let view = msg.view();
                Some(view.len() as u64 + view.header.seq.to_native())
            }
        }
    }
}

struct Endpoints {
    session: Option<zenoh::Session>,
    bus: Option<Bus>,
    rt: tokio::runtime::Runtime,
}

fn open(imp: Impl, config: BusConfig) -> Endpoints {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    match imp {
        Impl::Raw => {
            let session = zenoh::open(config.to_zenoh().expect("config"))
                .wait()
                .expect("open zenoh");
            Endpoints {
                session: Some(session),
                bus: None,
                rt,
            }
        }
        Impl::Evospike | Impl::Loan => {
            let bus = rt.block_on(Bus::open(config)).expect("open bus");
            Endpoints {
                session: None,
                bus: Some(bus),
                rt,
            }
        }
    }
}

/// The second process: `sink` counts messages and reports the receive rate;
/// `echo` answers every ping with a fresh message of the same size.
fn child(role: &str) {
    let args: Vec<String> = std::env::args().collect();
    let find = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
            .expect(flag)
    };
    let imp = Impl::parse(&find("--impl"));
    let count: usize = find("--count").parse().expect("count");
    let bytes: usize = find("--bytes").parse().expect("bytes");
    let endpoint = find("--listen");
    let ends = open(imp, config(Some(&endpoint), None));
    let receiver = Receiver::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA);
    let mut pong = (role == "echo")
        .then(|| Sender::new(imp, ends.session.as_ref(), ends.bus.as_ref(), PONG, bytes));
    println!("ready");
    if let Some(pong) = &pong {
        // The first pong must not race the pinger's subscription.
        pong.wait_matched(&ends.rt);
    }
    let mut checksum = 0u64;
    let mut first = None;
    for received in 0..count {
        // A reliable, blocking sender loses nothing: a message that never comes is
        // reported (the bench then fails with the count) instead of waited for.
        let Some(read) = receiver.recv_within(LOST_AFTER) else {
            println!("lost {} of {count}", count - received);
            return;
        };
        checksum = checksum.wrapping_add(read);
        first.get_or_insert_with(Instant::now);
        if let Some(pong) = pong.as_mut() {
            pong.send();
        }
    }
    let elapsed = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!("done {elapsed} {checksum}");
}

struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn spawn(role: &str, imp: Impl, count: usize, bytes: usize, endpoint: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .env(ROLE_ENV, role)
            .args([
                "--impl",
                imp.name(),
                "--count",
                &count.to_string(),
                "--bytes",
                &bytes.to_string(),
            ])
            .args(["--listen", endpoint])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn bench peer");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = lines.next().expect("peer output").expect("peer line");
        assert_eq!(ready, "ready");
        Peer { child, lines }
    }

    fn finish(mut self, imp: Impl, bytes: usize) -> f64 {
        let line = self.lines.next().expect("peer result").expect("peer line");
        let _ = self.child.wait();
        assert!(
            !line.starts_with("lost"),
            "{} at {bytes} B: the receiving process {line} messages",
            imp.name()
        );
        line.split_whitespace()
            .nth(1)
            .expect("elapsed")
            .parse()
            .expect("elapsed seconds")
    }
}

fn free_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("tcp/127.0.0.1:{port}")
}

/// Messages per second received by the peer, and the payload's length.
fn throughput(imp: Impl, bytes: usize, count: usize) -> (f64, usize) {
    let endpoint = free_endpoint();
    let peer = Peer::spawn("sink", imp, count, bytes, &endpoint);
    let ends = open(imp, config(None, Some(&endpoint)));
    let mut sender = Sender::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA, bytes);
    sender.wait_matched(&ends.rt);
    for _ in 0..count {
        sender.send();
    }
    let elapsed = peer.finish(imp, bytes);
    // The peer times from the first message to the last: count - 1 intervals.
    let rate = (count - 1) as f64 / elapsed;
    (rate, sender.payload_len())
}

/// Sends `count` messages to a subscriber of the same session (for a profiler).
fn profile(imp: Impl, bytes: usize, count: usize) {
    let ends = open(imp, config(None, None));
    let mut sender = Sender::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA, bytes);
    let receiver = Receiver::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA);
    sender.wait_matched(&ends.rt);
    let mut checksum = 0u64;
    for _ in 0..count {
        sender.send();
        checksum = checksum.wrapping_add(receiver.recv());
    }
    println!(
        "profiled {} {} {count} {checksum}",
        imp.name(),
        human(bytes)
    );
}

/// Round-trip times in microseconds, sorted.
fn ping_pong(imp: Impl, bytes: usize, count: usize) -> Vec<f64> {
    let endpoint = free_endpoint();
    let peer = Peer::spawn("echo", imp, count, bytes, &endpoint);
    let ends = open(imp, config(None, Some(&endpoint)));
    let mut sender = Sender::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA, bytes);
    let receiver = Receiver::new(imp, ends.session.as_ref(), ends.bus.as_ref(), PONG);
    sender.wait_matched(&ends.rt);
    // The first tenth of the round trips warms up and is not measured.
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count {
        let start = Instant::now();
        sender.send();
        if receiver.recv_within(LOST_AFTER).is_none() {
            panic!(
                "{} at {bytes} B: round trip {i} never came back",
                imp.name()
            );
        }
        if i >= count / 10 {
            rtts.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    peer.finish(imp, bytes);
    rtts.sort_by(f64::total_cmp);
    rtts
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Messages per second of the physical limit: one `memcpy` of `bytes` per message
/// (`count` of them), from one warm buffer to another.
fn memcpy_rate(bytes: usize, count: usize) -> f64 {
    let src: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    let mut dst = vec![0u8; bytes];
    dst.copy_from_slice(&src);
    let start = Instant::now();
    for i in 0..count {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst)[i % bytes] ^= 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Min, median and max of some measurements.
#[derive(Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            min: sorted[0],
            median: percentile(&sorted, 0.5),
            max: sorted[sorted.len() - 1],
        }
    }

    /// `median (min–max)`, with `digits` decimals.
    fn show(self, digits: usize) -> String {
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            self.median, self.min, self.max
        )
    }
}

fn env_usize(name: &str) -> Option<Vec<usize>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: not a number: {s}"))
            })
            .collect()
    })
}

fn main() {
    // Zenoh's own logs, with `RUST_LOG` (e.g. a receiver dropping a message whose
    // shared-memory buffer it cannot map logs it only at debug level).
    zenoh::try_init_log_from_env();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`)
    // only checks that the bench builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Some(count) = env_usize("EVOSPIKE_BENCH_PROFILE") {
        let sizes = env_usize("EVOSPIKE_BENCH_SIZES").unwrap_or(vec![64, 4 << 10, 1 << 20]);
        let only = std::env::var("EVOSPIKE_BENCH_IMPL").ok();
        let imps = Impl::ALL
            .into_iter()
            .filter(|imp| only.as_deref().is_none_or(|name| name == imp.name()));
        for bytes in sizes {
            for imp in imps.clone() {
                profile(imp, bytes, count[0]);
            }
        }
        return;
    }
    let repeats = env_usize("EVOSPIKE_BENCH_REPEATS").map_or(3, |r| r[0].max(1));
    let wanted = env_usize("EVOSPIKE_BENCH_SIZES");
    let divide = env_usize("EVOSPIKE_BENCH_DIVIDE").map_or(1, |d| d[0].max(1));
    let picked = |bytes: &usize| wanted.as_ref().is_none_or(|w| w.contains(bytes));
    let sizes: Vec<(usize, usize)> = [
        (64, 200_000),
        (4 << 10, 100_000),
        (64 << 10, 20_000),
        (1 << 20, 2_000),
        (16 << 20, 200),
    ]
    .into_iter()
    .filter(|(bytes, _)| picked(bytes))
    .map(|(bytes, count)| (bytes, (count / divide).max(20)))
    .collect();
    println!(
        "## Throughput (two processes, shared memory; msgs/s, median (min–max) of {repeats})\n"
    );
    println!(
        "| payload | memcpy msgs/s | raw msgs/s | evospike msgs/s | loan msgs/s | raw GB/s | evospike GB/s | ratio evospike/raw | ratio loan/raw | raw/memcpy | evospike/memcpy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (bytes, count) in sizes {
        let mut rates: [Vec<f64>; 3] = Default::default();
        let mut memcpy = Vec::new();
        let mut payload = 0;
        for _ in 0..repeats {
            memcpy.push(memcpy_rate(bytes, count));
            for (i, imp) in Impl::ALL.into_iter().enumerate() {
                let (rate, len) = throughput(imp, bytes, count);
                rates[i].push(rate);
                payload = len;
            }
        }
        let [raw, evo, loan] = rates.map(|r| Spread::of(&r));
        let memcpy = Spread::of(&memcpy);
        let gbs = |rate: f64| rate * payload as f64 / 1e9;
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            human(bytes),
            memcpy.show(0),
            raw.show(0),
            evo.show(0),
            loan.show(0),
            gbs(raw.median),
            gbs(evo.median),
            evo.median / raw.median,
            loan.median / raw.median,
            raw.median / memcpy.median,
            evo.median / memcpy.median,
        );
    }
    println!("\n## Ping-pong round trip (µs, median (min–max) of {repeats})\n");
    println!(
        "| payload | raw p50 | raw p99 | evospike p50 | evospike p99 | loan p50 | loan p99 | ratio p50 | ratio p99 | loan ratio p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (bytes, count) in [(64usize, 20_000usize), (1 << 20, 2_000)] {
        if !picked(&bytes) {
            continue;
        }
        let count = (count / divide).max(20);
        let mut p50: [Vec<f64>; 3] = Default::default();
        let mut p99: [Vec<f64>; 3] = Default::default();
        for _ in 0..repeats {
            for (i, imp) in Impl::ALL.into_iter().enumerate() {
                let rtts = ping_pong(imp, bytes, count);
                p50[i].push(percentile(&rtts, 0.5));
                p99[i].push(percentile(&rtts, 0.99));
            }
        }
        let [r50, e50, l50] = p50.map(|r| Spread::of(&r));
        let [r99, e99, l99] = p99.map(|r| Spread::of(&r));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            human(bytes),
            r50.show(1),
            r99.show(1),
            e50.show(1),
            e99.show(1),
            l50.show(1),
            l99.show(1),
            e50.median / r50.median,
            e99.median / r99.median,
            l99.median / r99.median,
        );
    }
}
