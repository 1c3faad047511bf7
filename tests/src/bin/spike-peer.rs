//! A purpose-built peer for multi-process bus tests.
//!
//! `spike-peer sub --listen EP --count N` prints `ready`, receives N spike tensors,
//! and prints a JSON [`SubSummary`]. `spike-peer pub --connect EP --count N --bytes B`
//! waits for a subscriber, publishes N bitset tensors of about B bytes, where
//! step i has neurons i mod len and len-1 active, and prints `published N
//! shm_pool_bytes=P` (the shared memory its bus holds for sending).
//!
//! `sub --stall-at K --stall-ms MS` stops reading for MS milliseconds after the K-th
//! tensor (a consumer that falls behind), and `sub --idle-ms MS` ends early when
//! nothing arrives for that long, reporting what was missing instead of waiting forever.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use evospike_bus::{Bus, BusConfig};
use evospike_schemas::SpikeTensor;
use evospike_tests::SubSummary;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
    /// Turn Zenoh shared memory off (network path).
    #[arg(long, global = true)]
    no_shm: bool,
}

#[derive(Subcommand)]
enum Role {
    Sub {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        count: u64,
        /// Stop reading after this many tensors…
        #[arg(long)]
        stall_at: Option<u64>,
        /// …for this many milliseconds.
        #[arg(long, default_value_t = 0)]
        stall_ms: u64,
        /// End when nothing arrives for this long.
        #[arg(long, default_value_t = 60_000)]
        idle_ms: u64,
    },
    Pub {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        bytes: usize,
    },
}

const TOPIC: &str = "peer/spikes";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    match args.role {
        Role::Sub {
            listen,
            count,
            stall_at,
            stall_ms,
            idle_ms,
        } => {
            let mut config = BusConfig::peer(&[listen], &[]);
            config.shared_memory = !args.no_shm;
            let bus = Bus::open(config).await.context("open the bus")?;
            let subscriber = bus.spike_subscriber(TOPIC)?;
            println!("ready");
            let mut summary = SubSummary {
                in_order: true,
                ..Default::default()
            };
            let mut expected = 0;
            while expected < count {
                let idle = Duration::from_millis(idle_ms);
                let Ok(msg) = tokio::time::timeout(idle, subscriber.recv()).await else {
                    break;
                };
                let msg = msg?;
                let view = msg.view();
                let step = view.header.step.to_native();
                summary.in_order &= view.header.seq.to_native() == expected && step == expected;
                summary.missing += step.saturating_sub(expected);
                summary.active_total += view.active_count() as u64;
                expected = step + 1;
                if stall_at == Some(expected) {
                    // Blocks this thread, as a consumer busy computing would.
                    std::thread::sleep(Duration::from_millis(stall_ms));
                }
            }
            summary.missing += count - expected.min(count);
            let stats = subscriber.stats();
            summary.received = stats.received;
            summary.shm = stats.shm;
            summary.copies = stats.copies;
            summary.bytes_copied = stats.bytes_copied;
            summary.invalid = stats.invalid;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Role::Pub {
            connect,
            count,
            bytes,
        } => {
            let mut config = BusConfig::peer(&[], &[connect]);
            config.shared_memory = !args.no_shm;
            config.shm_pool_bytes = (bytes * 16).max(64 << 20);
            let bus = Bus::open(config).await.context("open the bus")?;
            let mut publisher = bus.spike_publisher(TOPIC)?;
            if !publisher
                .wait_for_subscribers(Duration::from_secs(20))
                .await?
            {
                bail!("no subscriber appeared on {}", publisher.key());
            }
            let len = (bytes / 8).max(1) * 64;
            let mut tensor = SpikeTensor::zeros("peer", &[len as u32])?;
            for step in 0..count {
                set_active(&mut tensor, &[step as usize % len, len - 1]);
                tensor.header.step = step;
                publisher.publish(&mut tensor)?;
            }
            // The pool's size tells whether shared memory was used at all.
            println!("published {count} shm_pool_bytes={}", bus.shm_pool_bytes());
        }
    }
    Ok(())
}

fn set_active(tensor: &mut SpikeTensor, active: &[usize]) {
    if let evospike_schemas::SpikeBody::Bitset(words) = &mut tensor.body {
        words.fill(0);
        for &i in active {
            words[i / 64] |= 1 << (i % 64);
        }
    }
}
