//! An example external NEURON plugin.
