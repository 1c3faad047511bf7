//! Latency and throughput of one bus link, through evospike's [`Bus`] (spike
//! tensors, rkyv in place) or through raw Zenoh (`put` of bytes) opened with the
//! very same Zenoh configuration ([`BusConfig::to_zenoh`]): TCP or TLS.
//!
//! `bus-bench echo --listen EP [--tls DIR]` answers every ping with a pong and,
//! when a drive's burst ends, says how many burst messages it received.
//! `bus-bench drive --connect EP [--tls DIR] --size BYTES --count N --pings P`
//! measures P ping-pong round trips, then sends N messages as fast as the link
//! takes them, and prints a JSON [`BenchReport`]. `--raw` picks raw Zenoh on
//! both sides. `DIR` holds `evospike certs` files; the echo side presents
//! `worker.pem`, the drive side `head.pem` (mutual TLS).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use evospike_bus::{Bus, BusConfig, TlsConfig};
use evospike_schemas::SpikeTensor;
use serde::Serialize;
use zenoh::qos::{CongestionControl, Reliability};
use zenoh::Wait;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
    /// Raw Zenoh instead of the evospike bus.
    #[arg(long, global = true)]
    raw: bool,
    /// Folder of `evospike certs` files: TLS with mutual authentication.
    #[arg(long, global = true)]
    tls: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Role {
    Echo {
        #[arg(long)]
        listen: String,
    },
    Drive {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        pings: u64,
    },
}

/// What `drive` prints (JSON).
#[derive(Debug, Serialize)]
struct BenchReport {
    api: &'static str,
    size: usize,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
    msgs_per_s: f64,
    mbit_per_s: f64,
    burst_received: u64,
}

const PING: &str = "evospike/default/topic/bench/ping";
const PONG: &str = "evospike/default/topic/bench/pong";
const BURST: &str = "evospike/default/topic/bench/burst";
/// A ping whose first byte (raw) or step (evospike) says "the burst is over".
const END: u64 = u64::MAX;

fn config(args: &Args, listen: &[String], connect: &[String], machine: &str) -> BusConfig {
    let mut config = BusConfig::peer(listen, connect);
    config.shared_memory = false;
    config.connect_timeout = Duration::from_secs(10);
    config.tls = args.tls.as_ref().map(|dir| TlsConfig {
        ca: dir.join("ca.pem"),
        cert: Some(dir.join(format!("{machine}.pem"))),
        key: Some(dir.join(format!("{machine}.key"))),
        mtls: true,
    });
    config
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    match &args.role {
        Role::Echo { listen } => {
            let config = config(&args, std::slice::from_ref(listen), &[], "worker");
            if args.raw {
                raw_echo(config).await
            } else {
                bus_echo(config).await
            }
        }
        Role::Drive {
            connect,
            size,
            count,
            pings,
        } => {
            let config = config(&args, &[], std::slice::from_ref(connect), "head");
            let report = if args.raw {
                raw_drive(config, *size, *count, *pings).await?
            } else {
                bus_drive(config, *size, *count, *pings).await?
            };
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(
    api: &'static str,
    size: usize,
    mut rtts: Vec<Duration>,
    count: u64,
    burst: Duration,
    received: u64,
) -> BenchReport {
    rtts.sort();
    let secs = burst.as_secs_f64().max(1e-9);
    BenchReport {
        api,
        size,
        rtt_p50_us: percentile(&rtts, 0.5),
        rtt_p99_us: percentile(&rtts, 0.99),
        msgs_per_s: count as f64 / secs,
        mbit_per_s: (count as f64 * size as f64 * 8.0) / secs / 1e6,
        burst_received: received,
    }
}

// ---- evospike: spike tensors (bitsets of `size` bytes) ----

fn tensor(size: usize) -> Result<SpikeTensor> {
    let neurons = (size.max(8) * 8) as u32;
    Ok(SpikeTensor::zeros("bench", &[neurons])?)
}

async fn bus_echo(config: BusConfig) -> Result<()> {
    let bus = Bus::open(config).await.context("open the bus")?;
    let pings = bus.spike_subscriber("bench/ping")?;
    let burst = bus.spike_subscriber("bench/burst")?;
    let mut pong = bus.spike_publisher("bench/pong")?;
    let mut reply = tensor(8)?;
    println!("ready");
    let mut received = 0u64;
    loop {
        tokio::select! {
            // Burst messages queued before the end ping are counted first.
            biased;
            msg = burst.recv() => { msg?; received += 1; }
            msg = pings.recv() => {
                let step = msg?.view().header.step.to_native();
                reply.header.step = if step == END { received } else { step };
                if step == END { received = 0; }
                pong.publish(&mut reply)?;
            }
        }
    }
}

async fn bus_drive(config: BusConfig, size: usize, count: u64, pings: u64) -> Result<BenchReport> {
    let bus = Bus::open(config).await.context("open the bus")?;
    let pongs = bus.spike_subscriber("bench/pong")?;
    let mut ping = bus.spike_publisher("bench/ping")?;
    let mut burst = bus.spike_publisher("bench/burst")?;
    for publisher in [&ping, &burst] {
        if !publisher
            .wait_for_subscribers(Duration::from_secs(20))
            .await?
        {
            bail!("no echo subscribes to {}", publisher.key());
        }
    }
    let mut small = tensor(size)?;
    let mut rtts = Vec::new();
    for i in 0..pings {
        small.header.step = i;
        let sent = Instant::now();
        ping.publish(&mut small)?;
        let got = pongs.recv().await?.view().header.step.to_native();
        if got != i {
            bail!("pong {got} for ping {i}");
        }
        rtts.push(sent.elapsed());
    }
    let mut big = tensor(size)?;
    let start = Instant::now();
    for i in 0..count {
        big.header.step = i;
        burst.publish(&mut big)?;
    }
    small.header.step = END;
    ping.publish(&mut small)?;
    let received = pongs.recv().await?.view().header.step.to_native();
    Ok(report(
        "evospike",
        size,
        rtts,
        count,
        start.elapsed(),
        received,
    ))
}

// ---- raw Zenoh: put of bytes, same configuration ----

async fn raw_session(config: &BusConfig) -> Result<zenoh::Session> {
    zenoh::open(config.to_zenoh()?)
        .await
        .map_err(|e| anyhow::anyhow!("open zenoh: {e}"))
}

fn raw_publisher(
    session: &zenoh::Session,
    key: &'static str,
) -> Result<zenoh::pubsub::Publisher<'static>> {
    session
        .declare_publisher(key)
        .congestion_control(CongestionControl::Block)
        .reliability(Reliability::Reliable)
        .wait()
        .map_err(|e| anyhow::anyhow!("publisher {key}: {e}"))
}

async fn raw_echo(config: BusConfig) -> Result<()> {
    let session = raw_session(&config).await?;
    let pong = raw_publisher(&session, PONG)?;
    let pings = session
        .declare_subscriber(PING)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let burst = session
        .declare_subscriber(BURST)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("ready");
    let mut received = 0u64;
    loop {
        tokio::select! {
            biased;
            msg = burst.recv_async() => { msg.map_err(|e| anyhow::anyhow!("{e}"))?; received += 1; }
            msg = pings.recv_async() => {
                let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
                let bytes = msg.payload().to_bytes();
                let mut head = [0u8; 8];
                head.copy_from_slice(&bytes[..8]);
                let step = u64::from_le_bytes(head);
                let answer = if step == END { received } else { step };
                if step == END { received = 0; }
                pong.put(answer.to_le_bytes().to_vec()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
}

async fn raw_drive(config: BusConfig, size: usize, count: u64, pings: u64) -> Result<BenchReport> {
    let session = raw_session(&config).await?;
    let pongs = session
        .declare_subscriber(PONG)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ping = raw_publisher(&session, PING)?;
    let burst = raw_publisher(&session, BURST)?;
    for publisher in [&ping, &burst] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !publisher
            .matching_status()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .matching()
        {
            if Instant::now() > deadline {
                bail!("no echo subscribes to {}", publisher.key_expr());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let size = size.max(8);
    let mut payload = vec![0u8; size];
    let mut rtts = Vec::new();
    let read = |sample: zenoh::sample::Sample| {
        let bytes = sample.payload().to_bytes();
        let mut head = [0u8; 8];
        head.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(head)
    };
    for i in 0..pings {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        let sent = Instant::now();
        ping.put(payload.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let got = read(
            pongs
                .recv_async()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        if got != i {
            bail!("pong {got} for ping {i}");
        }
        rtts.push(sent.elapsed());
    }
    let start = Instant::now();
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        burst
            .put(payload.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    payload[..8].copy_from_slice(&END.to_le_bytes());
    ping.put(payload.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let received = read(
        pongs
            .recv_async()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    Ok(report(
        "raw zenoh",
        size,
        rtts,
        count,
        start.elapsed(),
        received,
    ))
}
