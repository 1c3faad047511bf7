//! Adam with decoupled weight decay (AdamW, Loshchilov & Hutter 2019).

/// Moments of one parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Moments {
    pub(crate) m: Vec<f32>,
    pub(crate) v: Vec<f32>,
}

impl Moments {
    pub(crate) fn zeros(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

/// The optimizer's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Adam {
    pub(crate) beta1: f32,
    pub(crate) beta2: f32,
    pub(crate) eps: f32,
    pub(crate) weight_decay: f32,
}

impl Adam {
    /// One step of update number `step` (from 1) with learning rate `lr`.
    pub(crate) fn update(&self, step: u64, lr: f32, w: &mut [f32], g: &[f32], mo: &mut Moments) {
        let bc1 = 1.0 - f64::from(self.beta1).powf(step as f64);
        let bc2 = 1.0 - f64::from(self.beta2).powf(step as f64);
        let step_size = (f64::from(lr) / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = 1.0 - lr * self.weight_decay;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(&mut mo.m).zip(&mut mo.v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w = *w * decay - step_size * *m / (v.sqrt() * inv_sqrt_bc2 + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_the_learning_rate_against_its_gradient() {
        let adam = Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut w = vec![1.0, 1.0];
        let mut mo = Moments::zeros(2);
        adam.update(1, 0.1, &mut w, &[3.0, -0.01], &mut mo);
        assert!(
            (w[0] - 0.9).abs() < 1e-5 && (w[1] - 1.1).abs() < 1e-4,
            "{w:?}"
        );
    }

    #[test]
    fn minimises_a_quadratic() {
        let adam = Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut w = vec![5.0f32];
        let mut mo = Moments::zeros(1);
        for step in 1..=2000 {
            let g = [2.0 * (w[0] - 2.0)];
            adam.update(step, 0.05, &mut w, &g, &mut mo);
        }
        assert!((w[0] - 2.0).abs() < 1e-2, "{w:?}");
    }
}
