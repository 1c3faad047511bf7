//! Warnings that repeat: logged once, then counted.
//!
//! A node that receives junk on a topic, or steps that arrive late, would write
//! one line per message — thousands of identical lines that bury everything
//! else. Instead each kind of warning goes through a [`Throttle`]: the first
//! occurrence is logged at once; later ones are logged at most once per
//! interval, as one line that says how many were not shown since the last one.
//! Every occurrence is still counted in the node's metrics (the `*_total`
//! samples), so nothing is lost, only not repeated.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use evospike_node::throttle::Throttle;
//!
//! let mut throttle = Throttle::new(Duration::from_secs(5));
//! let t0 = Instant::now();
//! assert_eq!(throttle.hit_at(t0), Some(0)); // the first is logged
//! assert_eq!(throttle.hit_at(t0), None); // then counted quietly…
//! assert_eq!(throttle.hit_at(t0), None);
//! // …until the interval has passed: logged, with the two not shown.
//! assert_eq!(throttle.hit_at(t0 + Duration::from_secs(5)), Some(2));
//! ```

use std::time::{Duration, Instant};

/// How often a repeated warning of one kind is logged at most.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Decides which occurrences of one repeated warning are logged.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(DEFAULT_INTERVAL)
    }
}

impl Throttle {
    /// Logs at most once per `interval` (the first occurrence always).
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// Records one occurrence now; see [`hit_at`](Self::hit_at).
    pub fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    /// Records one occurrence at `now`. `Some(n)` means: log this one, and say
    /// that `n` occurrences were not logged since the last line; `None` means:
    /// count it, do not log it.
    pub fn hit_at(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// The words a logged line adds about the occurrences around it: how many
    /// were not shown since the last line, and where all of them are counted.
    pub fn note(&self, suppressed: u64, metric: &str) -> String {
        let every = humanize(self.interval);
        match suppressed {
            0 => {
                format!("repeats are logged at most every {every}, all counted in metric {metric}")
            }
            n => format!("{n} more since the last report, all counted in metric {metric}"),
        }
    }
}

fn humanize(interval: Duration) -> String {
    match interval.as_secs() {
        0 => format!("{} ms", interval.as_millis()),
        1 => "second".to_owned(),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_once_per_interval_and_counted() {
        let mut throttle = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        let logged: Vec<(u64, u64)> = (0..1000u64)
            .filter_map(|i| {
                // 1000 occurrences over 2.5 s.
                let at = start + Duration::from_millis(i * 5 / 2);
                throttle.hit_at(at).map(|n| (i, n))
            })
            .collect();
        assert_eq!(logged, [(0, 0), (400, 399), (800, 399)]);
    }

    #[test]
    fn the_note_says_where_the_count_is() {
        let throttle = Throttle::new(Duration::from_secs(5));
        assert_eq!(
            throttle.note(0, "invalid_inputs_total"),
            "repeats are logged at most every 5 s, all counted in metric invalid_inputs_total"
        );
        assert_eq!(
            throttle.note(7, "gaps_total"),
            "7 more since the last report, all counted in metric gaps_total"
        );
    }
}
