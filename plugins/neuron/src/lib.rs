//! Built-in NEURON plugins: LIF, Izhikevich, EntangledSynchrony.
