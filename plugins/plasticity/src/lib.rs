//! Built-in PLASTICITY plugins: STDP, MetaPlasticity, Homeostasis.
