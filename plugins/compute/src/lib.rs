//! Compute backends (CPU, ArrayFire) and projections for spiking layers.
