//! `evospike topic echo`: one line (or one JSON object) per message.

use std::process::ExitCode;

use anyhow::{bail, Context};

use super::{decode, next_sample, Next, Target};
use crate::connect::{seconds, Connection};
use crate::out::Out;

#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    target: Target,
    /// Print one message and exit.
    #[arg(long, conflicts_with = "count")]
    once: bool,
    /// Print N messages and exit.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Fail when no message arrives for SECONDS.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// How many active indices of a spike tensor to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_indices: usize,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn echo(args: EchoArgs) -> anyhow::Result<ExitCode> {
    let timeout = args.timeout.map(|t| seconds(t, "--timeout")).transpose()?;
    let limit = if args.once { Some(1) } else { args.count };
    let bus = args.connection.open().await?;
    let key_expr = args.target.key_expr(bus.keys())?;
    let subscription = bus
        .subscribe_raw(&key_expr)
        .with_context(|| format!("cannot subscribe to {key_expr}"))?;
    // With wildcards, every line says which topic or node it is about.
    let with_key = key_expr.contains('*');
    let mut out = Out::new();
    let mut shown = 0u64;
    while limit.is_none_or(|limit| shown < limit) {
        let sample = match next_sample(&subscription, timeout).await? {
            Next::Sample(sample) => sample,
            Next::Interrupted => break,
            Next::TimedOut => {
                let expected = limit
                    .map(|n| format!(" (got {shown} of {n})"))
                    .unwrap_or_default();
                bail!(
                    "no message on {} within {:.1}s{expected} — is anything publishing it? (`evospike topic list`)",
                    args.target.label(),
                    timeout.unwrap_or_default().as_secs_f64()
                );
            }
        };
        match decode(&sample, args.max_indices) {
            Ok(message) if args.json => out.line(message.json(sample.key()))?,
            Ok(message) => out.line(message.text(with_key))?,
            // A bad payload is reported and skipped; the stream goes on.
            Err(err) => {
                eprintln!("error: {err:#}");
                continue;
            }
        }
        shown += 1;
    }
    Ok(ExitCode::SUCCESS)
}
