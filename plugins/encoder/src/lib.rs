//! Built-in ENCODER plugins: rate, latency, TAS.
