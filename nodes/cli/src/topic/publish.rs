//! `evospike topic pub`: publish spike tensors from the command line — fixed
//! indices, or random firing — at a rate, for a count of steps.

use std::process::ExitCode;

use anyhow::{bail, Context};
use evospike_schemas::{Encoding, SpikeTensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::connect::{seconds, Connection};
use crate::exit::invalid;
use crate::out::Out;

#[derive(Debug, clap::Args)]
pub(crate) struct PubArgs {
    /// Topic name.
    topic: String,
    /// Active neurons, e.g. `1,5,9` or `0-9,20` (default: none).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    indices: Option<String>,
    /// Fire each neuron with probability P at every step instead of fixed indices.
    #[arg(long, value_name = "P", conflicts_with = "indices")]
    random: Option<f64>,
    /// Seed of `--random` (default: a fresh one).
    #[arg(long, requires = "random")]
    seed: Option<u64>,
    /// Tensor shape, e.g. `100` or `2x64` (default: just big enough for the indices).
    #[arg(long, value_name = "DIMS")]
    shape: Option<String>,
    /// Body encoding.
    #[arg(long, value_parser = ["sparse", "bitset", "analog"], default_value = "sparse")]
    encoding: String,
    /// Messages per second.
    #[arg(long, value_name = "HZ", default_value_t = 10.0)]
    rate: f64,
    /// Publish one message and exit.
    #[arg(long, conflicts_with = "count")]
    once: bool,
    /// Publish N messages and exit (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Time step of the first message (then one more per message).
    #[arg(long, value_name = "STEP", default_value_t = 0)]
    step: u64,
    /// Source name in the tensors' header.
    #[arg(long, value_name = "NAME", default_value = "evospike-cli")]
    source: String,
    /// Wait for a subscriber before publishing.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    wait_timeout: f64,
    /// Do not print a line per message.
    #[arg(short, long)]
    quiet: bool,
    /// Publish through shared memory. Off by default: a receiver maps a shared-memory
    /// segment when the first sample from it arrives, and a short-lived publisher's
    /// segment may be gone by then (the sample is lost).
    #[arg(long)]
    shm: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Parses `1,5,9` / `0-9,20` into sorted, distinct indices.
fn parse_indices(text: &str) -> anyhow::Result<Vec<u32>> {
    let bad = |part: &str, why: &str| invalid(format!("bad --indices {text:?}: {part:?} {why}"));
    let number = |part: &str, s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| bad(part, "is not a neuron index (0, 1, 2, …)"))
    };
    let mut indices = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(part, from)?, number(part, to)?);
                if from > to {
                    return Err(bad(part, "is an empty range"));
                }
                indices.extend(from..=to);
            }
            None => indices.push(number(part, part)?),
        }
    }
    indices.sort_unstable();
    indices.dedup();
    Ok(indices)
}

/// Parses `100`, `2x64` or `2,64` into dimensions.
fn parse_shape(text: &str) -> anyhow::Result<Vec<u32>> {
    let dims: Vec<u32> = text
        .split(['x', 'X', ',', '×'])
        .map(|d| d.trim().parse::<u32>().ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            invalid(format!(
                "bad --shape {text:?}: expected positive dimensions such as 100 or 2x64"
            ))
        })?;
    Ok(dims)
}

/// Where each message's active neurons come from.
#[derive(Debug)]
enum Firing {
    Fixed(Vec<u32>),
    Random { probability: f64, rng: Box<StdRng> },
}

impl Firing {
    fn indices(&mut self, len: usize) -> Vec<u32> {
        match self {
            Firing::Fixed(indices) => indices.clone(),
            Firing::Random { probability, rng } => bernoulli_indices(rng, len, *probability),
        }
    }
}

/// The neurons that fire when each of `len` fires with probability `p`, drawn by
/// skipping geometric gaps between spikes: the work grows with the spikes, not
/// with the layer.
fn bernoulli_indices(rng: &mut StdRng, len: usize, p: f64) -> Vec<u32> {
    if p <= 0.0 {
        return Vec::new();
    }
    if p >= 1.0 {
        return (0..len as u32).collect();
    }
    let log_q = (1.0 - p).ln();
    let mut indices = Vec::new();
    let mut next = 0u64;
    loop {
        // 1 - u is in (0, 1], so the logarithm is finite; the gap is the number of
        // neurons that stay silent before the next spike.
        let u: f64 = rng.random();
        let gap = ((1.0 - u).ln() / log_q).floor();
        next = next.saturating_add(if gap.is_finite() {
            gap as u64
        } else {
            u64::MAX
        });
        if next >= len as u64 {
            return indices;
        }
        indices.push(next as u32);
        next += 1;
    }
}

fn encoding(name: &str) -> Encoding {
    match name {
        "bitset" => Encoding::Bitset,
        "analog" => Encoding::Analog,
        _ => Encoding::Sparse,
    }
}

pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<ExitCode> {
    let indices = args
        .indices
        .as_deref()
        .map(parse_indices)
        .transpose()?
        .unwrap_or_default();
    let shape = match &args.shape {
        Some(text) => parse_shape(text)?,
        None if args.random.is_some() => return Err(invalid("--random needs a --shape")),
        None => vec![indices.last().map_or(1, |&max| max + 1)],
    };
    let len: usize = shape.iter().map(|&d| d as usize).product();
    let mut firing = match args.random {
        Some(p) if (0.0..=1.0).contains(&p) => Firing::Random {
            probability: p,
            rng: Box::new(
                args.seed
                    .map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
            ),
        },
        Some(p) => {
            return Err(invalid(format!(
                "bad --random {p}: a probability is between 0 and 1"
            )))
        }
        None => Firing::Fixed(indices),
    };
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(invalid(format!(
            "bad --rate {}: expected messages per second > 0",
            args.rate
        )));
    }
    let period = seconds(1.0 / args.rate, "--rate")?;
    let wait_timeout = seconds(args.wait_timeout, "--wait-timeout")?;
    let count = if args.once { Some(1) } else { args.count };
    // Check the first tensor before touching the bus: bad input fails fast.
    let first = tensor(&args, &shape, firing.indices(len), args.step)?;

    let mut connection = args.connection.clone();
    connection.bus.no_shm |= !args.shm;
    let bus = connection.open().await?;
    let mut publisher = bus
        .spike_publisher(&args.topic)
        .with_context(|| format!("cannot publish on {:?}", args.topic))?;
    if args.wait && !publisher.wait_for_subscribers(wait_timeout).await? {
        bail!(
            "no subscriber on {} within {:.1}s",
            args.topic,
            wait_timeout.as_secs_f64()
        );
    }
    let mut ticker = tokio::time::interval(period);
    // Timers tick at most every millisecond: faster rates are kept on average
    // by catching up on missed ticks.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut out = Out::new();
    let mut next = Some(first);
    let mut sent = 0u64;
    while count.is_none_or(|count| sent < count) {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let step = args.step + sent;
        let mut tensor = match next.take() {
            Some(tensor) => tensor,
            None => tensor(&args, &shape, firing.indices(len), step)?,
        };
        let seq = publisher
            .publish(&mut tensor)
            .with_context(|| format!("cannot publish on {}", args.topic))?;
        sent += 1;
        if !args.quiet {
            out.line(format!(
                "publishing #{sent}: step={step} seq={seq} active={}/{len}",
                tensor.active_count()
            ))?;
        }
    }
    // Closing the session (when `bus` drops) flushes what is still queued.
    Ok(ExitCode::SUCCESS)
}

fn tensor(
    args: &PubArgs,
    shape: &[u32],
    indices: Vec<u32>,
    step: u64,
) -> anyhow::Result<SpikeTensor> {
    let tensor = SpikeTensor::builder(args.source.as_str())
        .shape(shape.iter().copied())
        .step(step)
        .sparse(indices)
        .with_context(|| format!("the --indices do not fit --shape {shape:?}"))?;
    Ok(match encoding(&args.encoding) {
        Encoding::Sparse => tensor,
        other => tensor.to_encoding(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_accept_lists_and_ranges() {
        assert_eq!(parse_indices("1,5,9").unwrap(), vec![1, 5, 9]);
        assert_eq!(parse_indices("9, 0-3 ,2").unwrap(), vec![0, 1, 2, 3, 9]);
        assert_eq!(parse_indices("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn bad_indices_say_what_is_wrong() {
        let err = parse_indices("1,x,3").unwrap_err().to_string();
        assert_eq!(
            err,
            "bad --indices \"1,x,3\": \"x\" is not a neuron index (0, 1, 2, …)"
        );
        assert!(parse_indices("5-2")
            .unwrap_err()
            .to_string()
            .contains("empty range"));
        assert!(parse_indices("-1").is_err());
    }

    #[test]
    fn shapes_parse_and_zero_is_refused() {
        assert_eq!(parse_shape("100").unwrap(), vec![100]);
        assert_eq!(parse_shape("2x64").unwrap(), vec![2, 64]);
        assert_eq!(parse_shape("2,64").unwrap(), vec![2, 64]);
        assert!(parse_shape("0").is_err());
        assert!(parse_shape("ten").is_err());
    }

    #[test]
    fn random_firing_is_reproducible_with_a_seed() {
        let mut a = Firing::Random {
            probability: 0.3,
            rng: Box::new(StdRng::seed_from_u64(7)),
        };
        let mut b = Firing::Random {
            probability: 0.3,
            rng: Box::new(StdRng::seed_from_u64(7)),
        };
        let first = a.indices(1000);
        assert_eq!(first, b.indices(1000));
        assert!(
            (200..400).contains(&first.len()),
            "about 300 of 1000 fire: {}",
            first.len()
        );
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert!(first.iter().all(|&i| i < 1000));
    }

    #[test]
    fn random_firing_rate_matches_the_probability() {
        let mut rng = StdRng::seed_from_u64(11);
        let total: usize = (0..100)
            .map(|_| bernoulli_indices(&mut rng, 1000, 0.05).len())
            .sum();
        // 100 000 draws at p = 0.05: 5000 expected, std dev about 69.
        assert!((4600..5400).contains(&total), "{total}");
        assert!(bernoulli_indices(&mut rng, 10, 0.0).is_empty());
        assert_eq!(bernoulli_indices(&mut rng, 4, 1.0), vec![0, 1, 2, 3]);
    }
}
