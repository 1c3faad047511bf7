//! Projections: weights from one layer to another, with a sign and a delay.
//!
//! A [`Projection`] owns its [`Weights`], whether it targets the excitatory or the
//! inhibitory input of the postsynaptic layer ([`Target`]), and a synaptic delay in
//! steps. Spikes of step `t` arrive in the postsynaptic input at step `t + delay`;
//! in between they wait in a ring buffer of `delay + 1` preallocated input vectors.
//! All buffers are allocated in [`Projection::new`]; [`Projection::step`] never
//! allocates.

use evospike_plugin_api::{SpikeWords, WeightsMut};

use crate::{spikes, Backend, BackendError, ShapeError, Weights};

/// Which input of the postsynaptic layer a projection drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Adds `+w` (weights are magnitudes).
    Excitatory,
    /// Adds `-w` (weights are magnitudes).
    Inhibitory,
}

impl Target {
    /// `+1` or `-1`.
    pub const fn sign(self) -> f32 {
        match self {
            Self::Excitatory => 1.0,
            Self::Inhibitory => -1.0,
        }
    }
}

/// Weights between two layers plus target, delay and the buffers to run them.
#[derive(Clone, Debug)]
pub struct Projection {
    weights: Weights,
    target: Target,
    delay: usize,
    /// `delay + 1` slots of `cols` values; slot `head` is due now.
    ring: Vec<f32>,
    head: usize,
    active: Vec<u32>,
}

impl Projection {
    /// A projection whose spikes arrive `delay_steps` steps after they were emitted.
    pub fn new(weights: Weights, target: Target, delay_steps: usize) -> Result<Self, ShapeError> {
        let cols = weights.cols();
        let slots = delay_steps
            .checked_add(1)
            .ok_or_else(|| ShapeError::Value {
                what: "delay",
                reason: format!("{delay_steps} steps is too large"),
            })?;
        let ring_len = slots.checked_mul(cols).ok_or_else(|| ShapeError::Value {
            what: "delay",
            reason: format!("{delay_steps} steps x {cols} neurons does not fit in memory"),
        })?;
        let ring = if delay_steps == 0 {
            Vec::new()
        } else {
            vec![0.0; ring_len]
        };
        Ok(Self {
            active: Vec::with_capacity(weights.rows()),
            weights,
            target,
            delay: delay_steps,
            ring,
            head: 0,
        })
    }

    /// Presynaptic neurons.
    pub fn pre(&self) -> usize {
        self.weights.rows()
    }

    /// Postsynaptic neurons.
    pub fn post(&self) -> usize {
        self.weights.cols()
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Delay in steps.
    pub fn delay_steps(&self) -> usize {
        self.delay
    }

    /// The weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Number of stored outgoing connections of presynaptic neuron `pre`.
    pub fn weights_row_len(&self, pre: usize) -> usize {
        match &self.weights {
            Weights::Dense(d) => d.cols(),
            Weights::Csr(c) => c.row(pre).0.len(),
        }
    }

    /// The weights, for plasticity rules (structure fixed, values mutable).
    pub fn weights_mut(&mut self) -> WeightsMut<'_> {
        self.weights.as_weights_mut()
    }

    /// Feeds this step's presynaptic spikes in and adds what is due now into `out`.
    ///
    /// `pre_spikes` has `ceil(pre / 64)` words, `out` has `post` values and is *added*
    /// to, so several projections can share one input buffer.
    pub fn step(
        &mut self,
        backend: &dyn Backend,
        pre_spikes: &SpikeWords,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        let words = spikes::spike_words_len(self.pre());
        if pre_spikes.len() != words {
            return Err(BackendError::Shape {
                backend: backend.name(),
                source: ShapeError::Length {
                    what: "presynaptic spike words",
                    expected: words,
                    got: pre_spikes.len(),
                },
            });
        }
        spikes::collect_below(pre_spikes, self.pre(), &mut self.active);
        let active = std::mem::take(&mut self.active);
        let result = self.deliver(backend, out, !active.is_empty(), |b, w, sign, into| {
            b.propagate(w, &active, sign, into)
        });
        self.active = active;
        result
    }

    /// Like [`Projection::step`] for graded input: presynaptic neuron `j` sends
    /// `values[j] · w` (pixel currents, membrane potentials). `values` has `pre` entries.
    pub fn step_analog(
        &mut self,
        backend: &dyn Backend,
        values: &[f32],
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        if values.len() != self.pre() {
            return Err(BackendError::Shape {
                backend: backend.name(),
                source: ShapeError::Length {
                    what: "presynaptic values",
                    expected: self.pre(),
                    got: values.len(),
                },
            });
        }
        let any = values.iter().any(|&v| v != 0.0);
        self.deliver(backend, out, any, |b, w, sign, into| {
            b.propagate_analog(w, values, sign, into)
        })
    }

    /// Runs `send` into the slot due `delay` steps from now (or straight into `out`
    /// without a delay) and adds what is due now into `out`.
    fn deliver(
        &mut self,
        backend: &dyn Backend,
        out: &mut [f32],
        anything: bool,
        send: impl FnOnce(&dyn Backend, &Weights, f32, &mut [f32]) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let sign = self.target.sign();
        if self.delay == 0 {
            if anything {
                send(backend, &self.weights, sign, out)?;
            }
            return Ok(());
        }
        let cols = self.post();
        if out.len() != cols {
            return Err(BackendError::Shape {
                backend: backend.name(),
                source: ShapeError::Length {
                    what: "postsynaptic input buffer",
                    expected: cols,
                    got: out.len(),
                },
            });
        }
        let slots = self.delay + 1;
        if anything {
            let arrive = (self.head + self.delay) % slots;
            let slot = &mut self.ring[arrive * cols..(arrive + 1) * cols];
            send(backend, &self.weights, sign, slot)?;
        }
        let due = &mut self.ring[self.head * cols..(self.head + 1) * cols];
        for (o, d) in out.iter_mut().zip(due.iter_mut()) {
            *o += *d;
            *d = 0.0;
        }
        self.head = (self.head + 1) % slots;
        Ok(())
    }

    /// Drops spikes in flight.
    pub fn reset(&mut self) {
        self.ring.fill(0.0);
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CpuBackend, DenseWeights};

    fn spikes_of(n: usize, on: &[usize]) -> Vec<u64> {
        let mut w = vec![0; spikes::spike_words_len(n)];
        on.iter().for_each(|&i| spikes::set(&mut w, i));
        w
    }

    #[test]
    fn delayed_inhibitory_spike_arrives_after_exactly_delay_steps() {
        let w = DenseWeights::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let mut p = Projection::new(w.into(), Target::Inhibitory, 3).unwrap();
        let b = CpuBackend::single_threaded();
        let mut arrivals = Vec::new();
        for t in 0..6 {
            let s = if t == 1 {
                spikes_of(2, &[1])
            } else {
                spikes_of(2, &[])
            };
            let mut out = vec![0.0; 3];
            p.step(&b, &s, &mut out).unwrap();
            arrivals.push(out);
        }
        for (t, out) in arrivals.iter().enumerate() {
            let expected = if t == 4 {
                vec![-4.0, -5.0, -6.0]
            } else {
                vec![0.0; 3]
            };
            assert_eq!(out, &expected, "step {t}");
        }
    }

    #[test]
    fn zero_delay_adds_into_the_shared_buffer() {
        let w = DenseWeights::filled(1, 2, 0.5).unwrap();
        let mut p = Projection::new(w.into(), Target::Excitatory, 0).unwrap();
        let mut out = vec![1.0, 1.0];
        p.step(
            &CpuBackend::single_threaded(),
            &spikes_of(1, &[0]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![1.5, 1.5]);
    }

    #[test]
    fn reset_drops_spikes_in_flight_and_wrong_words_are_errors() {
        let w = DenseWeights::filled(1, 1, 1.0).unwrap();
        let mut p = Projection::new(w.into(), Target::Excitatory, 1).unwrap();
        let b = CpuBackend::single_threaded();
        let mut out = vec![0.0];
        p.step(&b, &spikes_of(1, &[0]), &mut out).unwrap();
        p.reset();
        p.step(&b, &spikes_of(1, &[]), &mut out).unwrap();
        assert_eq!(out, vec![0.0]);
        let err = p.step(&b, &[0, 0], &mut out).unwrap_err();
        assert!(err.to_string().contains("presynaptic spike words"), "{err}");
    }
}
