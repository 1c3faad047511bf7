//! A sliding window of message arrivals, and the statistics `hz` and `bw` print:
//! rate and interval spread (like `ros2 topic hz`), bandwidth and size spread
//! (like `ros2 topic bw`).

use std::collections::VecDeque;

/// The last `capacity` arrivals: time in seconds (from any fixed origin) and size in bytes.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    capacity: usize,
    arrivals: VecDeque<(f64, usize)>,
}

/// Mean, extremes and (population) standard deviation of some values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spread {
    pub(crate) mean: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) std_dev: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64> + Clone) -> Option<Spread> {
        let n = values.clone().count();
        if n == 0 {
            return None;
        }
        let mean = values.clone().sum::<f64>() / n as f64;
        let variance = values.clone().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let min = values.clone().fold(f64::INFINITY, f64::min);
        let max = values.fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            mean,
            min,
            max,
            std_dev: variance.sqrt(),
        })
    }
}

/// Rate statistics over the window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RateReport {
    /// Messages per second: 1 / mean interval.
    pub(crate) rate_hz: f64,
    /// Intervals between consecutive messages, in seconds.
    pub(crate) interval_s: Spread,
    /// Messages in the window.
    pub(crate) window: usize,
}

/// Bandwidth statistics over the window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BandwidthReport {
    /// Bytes per second: the bytes of every message after the first, over the time they span.
    pub(crate) bytes_per_s: f64,
    /// Message sizes in bytes.
    pub(crate) size_bytes: Spread,
    /// Messages in the window.
    pub(crate) window: usize,
}

impl Window {
    /// A window of at most `capacity` messages (at least 2, to have an interval).
    pub(crate) fn new(capacity: usize) -> Window {
        let capacity = capacity.max(2);
        Window {
            capacity,
            arrivals: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// Records a message of `size` bytes arriving at `time` seconds.
    pub(crate) fn push(&mut self, time: f64, size: usize) {
        if self.arrivals.len() == self.capacity {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((time, size));
    }

    fn intervals(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        self.arrivals
            .iter()
            .zip(self.arrivals.iter().skip(1))
            .map(|(a, b)| b.0 - a.0)
    }

    fn span(&self) -> Option<f64> {
        let first = self.arrivals.front()?.0;
        let last = self.arrivals.back()?.0;
        (self.arrivals.len() >= 2 && last > first).then_some(last - first)
    }

    /// Rate and interval spread; `None` until two messages with distinct times arrived.
    pub(crate) fn rate(&self) -> Option<RateReport> {
        let span = self.span()?;
        let interval_s = Spread::of(self.intervals())?;
        Some(RateReport {
            rate_hz: (self.arrivals.len() - 1) as f64 / span,
            interval_s,
            window: self.arrivals.len(),
        })
    }

    /// Bandwidth and size spread; `None` until two messages with distinct times arrived.
    pub(crate) fn bandwidth(&self) -> Option<BandwidthReport> {
        let span = self.span()?;
        let after_first: usize = self.arrivals.iter().skip(1).map(|a| a.1).sum();
        let size_bytes = Spread::of(self.arrivals.iter().map(|a| a.1 as f64))?;
        Some(BandwidthReport {
            bytes_per_s: after_first as f64 / span,
            size_bytes,
            window: self.arrivals.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn steady_arrivals_give_their_rate_and_no_spread() {
        let mut window = Window::new(100);
        for i in 0..11 {
            window.push(i as f64 * 0.1, 64);
        }
        let rate = window.rate().unwrap();
        assert!(close(rate.rate_hz, 10.0), "{rate:?}");
        assert!(
            close(rate.interval_s.mean, 0.1) && close(rate.interval_s.std_dev, 0.0),
            "{rate:?}"
        );
        assert_eq!(rate.window, 11);
        let bw = window.bandwidth().unwrap();
        assert!(close(bw.bytes_per_s, 640.0), "{bw:?}");
        assert!(close(bw.size_bytes.mean, 64.0));
    }

    #[test]
    fn spread_of_uneven_intervals() {
        let mut window = Window::new(10);
        for (t, size) in [(0.0, 10), (1.0, 20), (4.0, 30)] {
            window.push(t, size);
        }
        let rate = window.rate().unwrap();
        // Intervals 1 and 3: mean 2, min 1, max 3, std dev 1.
        assert_eq!(
            rate.interval_s,
            Spread {
                mean: 2.0,
                min: 1.0,
                max: 3.0,
                std_dev: 1.0
            }
        );
        assert!(close(rate.rate_hz, 0.5));
        let bw = window.bandwidth().unwrap();
        assert!(close(bw.bytes_per_s, 50.0 / 4.0));
        assert_eq!((bw.size_bytes.min, bw.size_bytes.max), (10.0, 30.0));
    }

    #[test]
    fn the_window_slides() {
        let mut window = Window::new(3);
        for (t, size) in [(0.0, 1), (10.0, 1), (11.0, 1), (12.0, 1)] {
            window.push(t, size);
        }
        let rate = window.rate().unwrap();
        assert_eq!(rate.window, 3);
        assert!(
            close(rate.rate_hz, 1.0),
            "the slow first interval has left the window: {rate:?}"
        );
    }

    #[test]
    fn fewer_than_two_messages_give_no_report() {
        let mut window = Window::new(10);
        assert!(window.rate().is_none());
        window.push(1.0, 8);
        assert!(window.rate().is_none() && window.bandwidth().is_none());
    }
}
