//! Raw Zenoh vs the evospike bus, side by side in one run, between two processes
//! on this host with shared memory on.
//!
//! `cargo bench -p evospike-bus --bench bus` prints, for each payload size, the
//! throughput (messages/s, GB/s) and, for 64 B and 1 MiB, the ping-pong round-trip
//! latency (p50, p99) of both, and the ratio evospike/raw. Both sides use the same
//! Zenoh version and configuration ([`BusConfig::to_zenoh`]) and move the same
//! bytes:
//!
//! - raw: the sender allocates a shared-memory buffer, copies a ready-made payload
//!   into it and puts it; the receiver borrows the payload's bytes.
//! - evospike: the sender publishes a `SpikeTensor` (serialized straight into shared
//!   memory); the receiver gets a validated in-place view.
//!
//! The bench spawns itself as the second process (`EVOSPIKE_BENCH_ROLE`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evospike_bus::{Bus, BusConfig};
use evospike_schemas::{SpikeBody, SpikeTensor};
use zenoh::qos::CongestionControl;
use zenoh::shm::{AllocAlignment, BlockOn, GarbageCollect, ShmProviderBuilder};
use zenoh::Wait;

const ROLE_ENV: &str = "EVOSPIKE_BENCH_ROLE";
const DATA: &str = "evospike/bench/topic/data";
const PONG: &str = "evospike/bench/topic/pong";
const POOL: usize = 512 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Raw,
    Evospike,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Raw => "raw",
            Impl::Evospike => "evospike",
        }
    }

    fn parse(s: &str) -> Impl {
        if s == "raw" {
            Impl::Raw
        } else {
            Impl::Evospike
        }
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
        match imp {
            Impl::Raw => {
                let session = session.expect("raw sender needs a session");
                let raw_pub = session
                    .declare_publisher(key.to_string())
                    .congestion_control(CongestionControl::Block)
                    .wait()
                    .expect("declare publisher");
                let alignment = AllocAlignment::new(4).expect("16-byte alignment");
                let provider = ShmProviderBuilder::default_backend((POOL, alignment))
                    .wait()
                    .expect("shm pool");
                Sender {
                    imp,
                    raw_pub: Some(raw_pub),
                    provider: Some(provider),
                    payload,
                    spike_pub: None,
                    tensor,
                }
            }
            Impl::Evospike => {
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
                }
            }
        }
    }

    fn payload_len(&self) -> usize {
        self.payload.len()
    }

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
                Impl::Evospike => rt
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
            Impl::Evospike => {
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
    fn recv(&self) -> u64 {
        match self {
            Receiver::Raw(sub) => {
                let sample = sub.recv().expect("raw recv");
                let bytes = sample.payload().to_bytes();
                bytes.len() as u64 + u64::from(bytes[bytes.len() / 2])
            }
            Receiver::Evospike(sub) => {
                let msg = sub.recv_blocking().expect("evospike recv");
                let view = msg.view();
                view.len() as u64 + view.header.seq.to_native()
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
        Impl::Evospike => {
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
    for _ in 0..count {
        checksum = checksum.wrapping_add(receiver.recv());
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

    fn finish(mut self) -> f64 {
        let line = self.lines.next().expect("peer result").expect("peer line");
        let _ = self.child.wait();
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

/// Messages per second and GB/s received by the peer.
fn throughput(imp: Impl, bytes: usize, count: usize) -> (f64, f64, usize) {
    let endpoint = free_endpoint();
    let peer = Peer::spawn("sink", imp, count, bytes, &endpoint);
    let ends = open(imp, config(None, Some(&endpoint)));
    let mut sender = Sender::new(imp, ends.session.as_ref(), ends.bus.as_ref(), DATA, bytes);
    sender.wait_matched(&ends.rt);
    for _ in 0..count {
        sender.send();
    }
    let elapsed = peer.finish();
    // The peer times from the first message to the last: count - 1 intervals.
    let rate = (count - 1) as f64 / elapsed;
    (
        rate,
        rate * sender.payload_len() as f64 / 1e9,
        sender.payload_len(),
    )
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
        receiver.recv();
        if i >= count / 10 {
            rtts.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    peer.finish();
    rtts.sort_by(f64::total_cmp);
    rtts
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`)
    // only checks that the bench builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: [(usize, usize); 5] = [
        (64, 200_000),
        (4 << 10, 100_000),
        (64 << 10, 20_000),
        (1 << 20, 2_000),
        (16 << 20, 200),
    ];
    println!("## Throughput (two processes, shared memory)\n");
    println!("| payload | raw msgs/s | raw GB/s | evospike msgs/s | evospike GB/s | ratio |");
    println!("|---|---|---|---|---|---|");
    for (bytes, count) in sizes {
        let (raw_rate, raw_gbs, _) = throughput(Impl::Raw, bytes, count);
        let (evo_rate, evo_gbs, _) = throughput(Impl::Evospike, bytes, count);
        println!(
            "| {} | {raw_rate:.0} | {raw_gbs:.3} | {evo_rate:.0} | {evo_gbs:.3} | {:.2} |",
            human(bytes),
            evo_rate / raw_rate
        );
    }
    println!("\n## Ping-pong round trip (µs)\n");
    println!(
        "| payload | raw p50 | raw p99 | evospike p50 | evospike p99 | ratio p50 | ratio p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (bytes, count) in [(64usize, 20_000usize), (1 << 20, 2_000)] {
        let raw = ping_pong(Impl::Raw, bytes, count);
        let evo = ping_pong(Impl::Evospike, bytes, count);
        let (r50, r99, e50, e99) = (
            percentile(&raw, 0.5),
            percentile(&raw, 0.99),
            percentile(&evo, 0.5),
            percentile(&evo, 0.99),
        );
        println!(
            "| {} | {r50:.1} | {r99:.1} | {e50:.1} | {e99:.1} | {:.2} | {:.2} |",
            human(bytes),
            e50 / r50,
            e99 / r99
        );
    }
}
