//! A small HTTP load generator for the service benchmarks: `clients` threads,
//! each with its own keep-alive connection, POST the same JSON body back to back
//! for `seconds`, and the run prints one JSON line: requests/s, p50 and p99
//! latency (ms) and the count of non-2xx answers.
//!
//! ```text
//! http-load URL BODY_FILE CLIENTS SECONDS
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, body, clients, seconds] = args.as_slice() else {
        anyhow::bail!("usage: http-load URL BODY_FILE CLIENTS SECONDS");
    };
    let body = Arc::new(std::fs::read(body)?);
    let clients: usize = clients.parse()?;
    let seconds: f64 = seconds.parse()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, body, stop) = (url.clone(), body.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let (mut latencies, mut failed) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_slice())
                    {
                        Ok(mut reply) => {
                            let ok = reply.status().is_success();
                            let _ = reply.body_mut().read_to_vec();
                            if ok {
                                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                            } else {
                                failed += 1;
                            }
                        }
                        Err(_) => failed += 1,
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for t in threads {
        let (l, f) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "requests_per_s": latencies.len() as f64 / elapsed,
            "p50_ms": percentile(&latencies, 0.5),
            "p99_ms": percentile(&latencies, 0.99),
            "failed": failed,
        })
    );
    Ok(())
}
