//! A purpose-built peer for multi-process bus tests.
//!
//! `spike-peer sub --listen EP --count N` prints `ready`, receives N spike tensors,
//! and prints a JSON [`SubSummary`]. `spike-peer pub --connect EP --count N --bytes B`
//! waits for a subscriber and publishes N bitset tensors of about B bytes, where
//! step i has neurons i mod len and len-1 active.

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
        Role::Sub { listen, count } => {
            let mut config = BusConfig::peer(&[listen], &[]);
            config.shared_memory = !args.no_shm;
            let bus = Bus::open(config).await.context("open the bus")?;
            let subscriber = bus.spike_subscriber(TOPIC)?;
            println!("ready");
            let mut summary = SubSummary {
                in_order: true,
                ..Default::default()
            };
            for expected in 0..count {
                let msg = subscriber.recv().await?;
                let view = msg.view();
                summary.in_order &= view.header.seq.to_native() == expected
                    && view.header.step.to_native() == expected;
                summary.active_total += view.active_count() as u64;
            }
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
            println!("published {count}");
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
