//! `evospike topic hz` and `evospike topic bw`: rate and bandwidth of a topic over a
//! sliding window, reported every period and once more at the end.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use super::topic_key_expr;
use super::window::{BandwidthReport, RateReport, Window};
use crate::connect::{seconds, Connection};
use crate::out::Out;
use crate::table;

#[derive(Debug, clap::Args)]
pub(crate) struct RateArgs {
    /// Topic name (wildcards allowed) or a full key expression.
    topic: String,
    /// Number of messages in the sliding window.
    #[arg(short, long, value_name = "N", default_value_t = 10_000)]
    window: usize,
    /// Stop after N messages, with a final report.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after SECONDS, with a final report (fails if nothing arrived).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Seconds between reports.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    period: f64,
    /// One JSON object per report instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    Rate,
    Bandwidth,
}

/// Why measuring stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Count,
    Duration,
    Interrupted,
}

pub(crate) async fn measure(args: RateArgs, what: Measure) -> anyhow::Result<ExitCode> {
    let period = seconds(args.period, "--period")?;
    if period.is_zero() {
        return Err(crate::exit::invalid("--period must be more than 0 seconds"));
    }
    let duration = args
        .duration
        .map(|d| seconds(d, "--duration"))
        .transpose()?;
    let bus = args.connection.open().await?;
    let key_expr = topic_key_expr(bus.keys(), &args.topic)?;
    let subscription = bus
        .subscribe_raw(&key_expr)
        .with_context(|| format!("cannot subscribe to {key_expr}"))?;

    let start = Instant::now();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::from_std(start) + period, period);
    let end = async {
        match duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    let mut window = Window::new(args.window);
    let mut out = Out::new();
    let (mut received, mut since_report) = (0u64, 0u64);
    let stop = loop {
        tokio::select! {
            sample = subscription.recv() => {
                let sample = sample?;
                window.push(start.elapsed().as_secs_f64(), sample.len());
                received += 1;
                since_report += 1;
                if args.count.is_some_and(|count| received >= count) {
                    break Stop::Count;
                }
            }
            _ = ticker.tick() => {
                if since_report == 0 {
                    eprintln!("no new messages on {}", args.topic);
                } else {
                    print_report(&mut out, &args, what, &window, false)?;
                }
                since_report = 0;
            }
            () = &mut end => break Stop::Duration,
            _ = tokio::signal::ctrl_c() => break Stop::Interrupted,
        }
    };
    if received == 0 && stop == Stop::Duration {
        bail!(
            "no message on {} within {:.1}s — is anything publishing it? (`evospike topic list`)",
            args.topic,
            duration.unwrap_or_default().as_secs_f64()
        );
    }
    if received < 2 && stop != Stop::Interrupted {
        bail!(
            "only {received} message on {}: a rate needs at least two",
            args.topic
        );
    }
    print_report(&mut out, &args, what, &window, true)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(
    out: &mut Out,
    args: &RateArgs,
    what: Measure,
    window: &Window,
    last: bool,
) -> anyhow::Result<()> {
    match what {
        Measure::Rate => {
            let Some(report) = window.rate() else {
                return Ok(());
            };
            if args.json {
                out.line(json!({ "topic": args.topic, "final": last, "rate": report }))?;
            } else {
                out.line(rate_text(&report))?;
            }
        }
        Measure::Bandwidth => {
            let Some(report) = window.bandwidth() else {
                return Ok(());
            };
            if args.json {
                out.line(json!({ "topic": args.topic, "final": last, "bandwidth": report }))?;
            } else {
                out.line(bandwidth_text(&report))?;
            }
        }
    }
    Ok(())
}

fn rate_text(report: &RateReport) -> String {
    let i = &report.interval_s;
    format!(
        "average rate: {:.3}\n\tmin: {:.5}s max: {:.5}s std dev: {:.5}s window: {}",
        report.rate_hz, i.min, i.max, i.std_dev, report.window
    )
}

fn bandwidth_text(report: &BandwidthReport) -> String {
    let s = &report.size_bytes;
    format!(
        "average: {}/s\n\tmean: {} min: {} max: {} std dev: {} window: {}",
        table::bytes(report.bytes_per_s),
        table::bytes(s.mean),
        table::bytes(s.min),
        table::bytes(s.max),
        table::bytes(s.std_dev),
        report.window
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_like_ros2() {
        let mut window = Window::new(100);
        for i in 0..5 {
            window.push(f64::from(i) * 0.5, 1000);
        }
        assert_eq!(
            rate_text(&window.rate().unwrap()),
            "average rate: 2.000\n\tmin: 0.50000s max: 0.50000s std dev: 0.00000s window: 5"
        );
        assert_eq!(
            bandwidth_text(&window.bandwidth().unwrap()),
            "average: 2.00 KB/s\n\tmean: 1.00 KB min: 1.00 KB max: 1.00 KB std dev: 0 B window: 5"
        );
    }
}
