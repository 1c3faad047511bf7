//! Per-layer spike statistics over a window of steps.
//!
//! [`LayerStats::step`] takes one step's active neurons and updates running
//! sums; it never allocates (the per-neuron arrays are sized once, in
//! [`LayerStats::new`]). [`LayerStats::finish`] turns the sums into
//! [`WindowStats`] and starts the next window:
//!
//! - **firing rate**: spikes / (neurons × steps × dt), in Hz;
//! - **ISI CV**: standard deviation / mean of every inter-spike interval that
//!   ended in the window, pooled over neurons (1 for Poisson trains, 0 for a
//!   clock);
//! - **Fano factor**: each neuron's spike count per bin of `bin_steps` steps,
//!   variance / mean over the window's bins, averaged over the neurons that
//!   fired (1 for Poisson, 0 for a clock);
//! - **synchrony** χ (Golomb): the variance of the population's mean count
//!   per bin over the mean of the neurons' own variances, square-rooted — 1
//!   when all neurons fire together, about 1/√N when they are independent.
//!
//! A bin still open when the window ends is dropped (its spikes count for the
//! rate, not for Fano factor and synchrony).

/// No spike seen yet (for [`LayerStats`]' last-spike array).
const NEVER: u64 = u64::MAX;

/// Running sums of one layer's spikes in the current window.
#[derive(Debug, Clone)]
pub struct LayerStats {
    bin_steps: u32,
    /// Per neuron: step of its last spike.
    last_spike: Vec<u64>,
    /// Per neuron: spikes in the open bin.
    bin_count: Vec<u32>,
    /// Per neuron: sums of its closed bins' counts and squared counts.
    count_sum: Vec<f64>,
    count_sumsq: Vec<f64>,
    /// Population spikes in the open bin; sums over closed bins.
    pop_bin: u64,
    pop_sum: f64,
    pop_sumsq: f64,
    bins: u32,
    steps_in_bin: u32,
    steps: u64,
    spikes: u64,
    isi_n: u64,
    isi_sum: f64,
    isi_sumsq: f64,
}

/// The statistics of one window. `None` where the window had too little to say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Steps in the window.
    pub steps: u64,
    /// Mean firing rate per neuron, Hz.
    pub rate_hz: f64,
    /// Coefficient of variation of the inter-spike intervals (needs 2 intervals).
    pub isi_cv: Option<f64>,
    /// Mean Fano factor of the neurons that fired (needs 2 closed bins).
    pub fano: Option<f64>,
    /// Synchrony χ in [0, 1] (needs 2 closed bins and some variance).
    pub synchrony: Option<f64>,
}

impl LayerStats {
    /// Statistics of a layer of `neurons` neurons, Fano factor and synchrony
    /// over bins of `bin_steps` steps.
    pub fn new(neurons: usize, bin_steps: u32) -> Self {
        Self {
            bin_steps: bin_steps.max(1),
            last_spike: vec![NEVER; neurons],
            bin_count: vec![0; neurons],
            count_sum: vec![0.0; neurons],
            count_sumsq: vec![0.0; neurons],
            pop_bin: 0,
            pop_sum: 0.0,
            pop_sumsq: 0.0,
            bins: 0,
            steps_in_bin: 0,
            steps: 0,
            spikes: 0,
            isi_n: 0,
            isi_sum: 0.0,
            isi_sumsq: 0.0,
        }
    }

    /// Number of neurons.
    pub fn neurons(&self) -> usize {
        self.last_spike.len()
    }

    /// One step: `active` are the neurons that fired at `step` (indices past
    /// the layer's size are ignored). Does not allocate.
    pub fn step(&mut self, step: u64, active: impl Iterator<Item = u32>) {
        for i in active {
            let i = i as usize;
            let Some(last) = self.last_spike.get_mut(i) else {
                continue;
            };
            if *last != NEVER && step > *last {
                let isi = (step - *last) as f64;
                self.isi_n += 1;
                self.isi_sum += isi;
                self.isi_sumsq += isi * isi;
            }
            *last = step;
            self.bin_count[i] += 1;
            self.pop_bin += 1;
            self.spikes += 1;
        }
        self.steps += 1;
        self.steps_in_bin += 1;
        if self.steps_in_bin == self.bin_steps {
            self.close_bin();
        }
    }

    fn close_bin(&mut self) {
        for ((count, sum), sumsq) in self
            .bin_count
            .iter_mut()
            .zip(&mut self.count_sum)
            .zip(&mut self.count_sumsq)
        {
            let c = f64::from(*count);
            *sum += c;
            *sumsq += c * c;
            *count = 0;
        }
        let p = self.pop_bin as f64;
        self.pop_sum += p;
        self.pop_sumsq += p * p;
        self.pop_bin = 0;
        self.bins += 1;
        self.steps_in_bin = 0;
    }

    /// The window's statistics (steps of `dt_ms` milliseconds); starts the next window.
    pub fn finish(&mut self, dt_ms: f64) -> WindowStats {
        let n = self.neurons().max(1) as f64;
        let stats = WindowStats {
            steps: self.steps,
            rate_hz: if self.steps == 0 {
                0.0
            } else {
                self.spikes as f64 / (n * self.steps as f64 * dt_ms / 1000.0)
            },
            isi_cv: self.isi_cv(),
            fano: self.fano(),
            synchrony: self.synchrony(n),
        };
        self.reset_window();
        stats
    }

    fn isi_cv(&self) -> Option<f64> {
        if self.isi_n < 2 {
            return None;
        }
        let n = self.isi_n as f64;
        let mean = self.isi_sum / n;
        let var = (self.isi_sumsq / n - mean * mean).max(0.0);
        Some(var.sqrt() / mean)
    }

    /// Each neuron's (mean, variance) of its count per closed bin.
    fn neuron_moments(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let bins = f64::from(self.bins);
        self.count_sum
            .iter()
            .zip(&self.count_sumsq)
            .map(move |(sum, sumsq)| {
                let mean = sum / bins;
                (mean, (sumsq / bins - mean * mean).max(0.0))
            })
    }

    fn fano(&self) -> Option<f64> {
        if self.bins < 2 {
            return None;
        }
        let (total, firing) = self
            .neuron_moments()
            .filter(|(mean, _)| *mean > 0.0)
            .fold((0.0, 0usize), |(t, k), (mean, var)| (t + var / mean, k + 1));
        (firing > 0).then(|| total / firing as f64)
    }

    fn synchrony(&self, n: f64) -> Option<f64> {
        if self.bins < 2 {
            return None;
        }
        let mean_var = self.neuron_moments().map(|(_, var)| var).sum::<f64>() / n;
        if mean_var <= 0.0 {
            return None;
        }
        let bins = f64::from(self.bins);
        let mean = self.pop_sum / bins / n;
        let pop_var = (self.pop_sumsq / bins / (n * n) - mean * mean).max(0.0);
        Some((pop_var / mean_var).min(1.0).sqrt())
    }

    fn reset_window(&mut self) {
        self.bin_count.fill(0);
        self.count_sum.fill(0.0);
        self.count_sumsq.fill(0.0);
        self.pop_bin = 0;
        self.pop_sum = 0.0;
        self.pop_sumsq = 0.0;
        self.bins = 0;
        self.steps_in_bin = 0;
        self.steps = 0;
        self.spikes = 0;
        self.isi_n = 0;
        self.isi_sum = 0.0;
        self.isi_sumsq = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), uniform in [0, 1).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    const N: usize = 100;
    const STEPS: u64 = 20_000;

    fn run(mut fires: impl FnMut(u64, usize) -> bool) -> WindowStats {
        let mut stats = LayerStats::new(N, 10);
        let mut active = Vec::with_capacity(N);
        for step in 0..STEPS {
            active.clear();
            active.extend((0..N).filter(|&i| fires(step, i)).map(|i| i as u32));
            stats.step(step, active.iter().copied());
        }
        stats.finish(1.0)
    }

    #[test]
    fn independent_poisson_trains() {
        // 20 Hz at dt = 1 ms: p = 0.02 per step.
        let mut rng = Rng(7);
        let s = run(|_, _| rng.uniform() < 0.02);
        assert_eq!(s.steps, STEPS);
        assert!((s.rate_hz - 20.0).abs() < 1.0, "{s:?}");
        // A Bernoulli train's ISIs are geometric: CV = sqrt(1 - p) ≈ 0.99.
        assert!((s.isi_cv.unwrap() - 0.99).abs() < 0.05, "{s:?}");
        // Counts per 10-step bin are binomial: Fano = 1 - p ≈ 0.98.
        assert!((s.fano.unwrap() - 0.98).abs() < 0.05, "{s:?}");
        // Independent neurons: χ ≈ 1/√N = 0.1.
        assert!(s.synchrony.unwrap() < 0.2, "{s:?}");
    }

    #[test]
    fn a_regular_train_has_no_variability() {
        // Every neuron fires every 10 steps, phases spread over the bin.
        let s = run(|step, i| step % 10 == (i % 10) as u64);
        assert!((s.rate_hz - 100.0).abs() < 1e-9, "{s:?}");
        assert!(s.isi_cv.unwrap() < 1e-9, "{s:?}");
        assert!(s.fano.unwrap() < 1e-9, "{s:?}");
        // No neuron's count varies: synchrony is undefined, not a number.
        assert_eq!(s.synchrony, None);
    }

    #[test]
    fn a_synchronous_population_is_told_from_an_independent_one() {
        let mut rng = Rng(11);
        let mut fire_now = false;
        let mut last = u64::MAX;
        let together = run(|step, _| {
            if step != last {
                last = step;
                fire_now = rng.uniform() < 0.02;
            }
            fire_now
        });
        assert!(together.synchrony.unwrap() > 0.95, "{together:?}");
        let mut rng = Rng(11);
        let apart = run(|_, _| rng.uniform() < 0.02);
        assert!(apart.synchrony.unwrap() < 0.2, "{apart:?}");
        assert!((together.rate_hz - apart.rate_hz).abs() < 3.0);
    }

    #[test]
    fn a_silent_layer_and_the_next_window() {
        let mut stats = LayerStats::new(4, 10);
        for step in 0..50 {
            stats.step(step, [].into_iter());
        }
        let s = stats.finish(1.0);
        assert_eq!((s.steps, s.rate_hz), (50, 0.0));
        assert_eq!((s.isi_cv, s.fano, s.synchrony), (None, None, None));
        // Out-of-range indices are ignored; a new window starts from zero.
        stats.step(50, [0, 9].into_iter());
        let s = stats.finish(2.0);
        assert_eq!(s.steps, 1);
        assert!((s.rate_hz - 1.0 / (4.0 * 0.002)).abs() < 1e-9, "{s:?}");
    }
}
