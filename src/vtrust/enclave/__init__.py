"""A simulated trusted execution environment (SGX-like) and split execution of models
between it and an untrusted host: MLCapsule (all inside), partitions, and Slalom
(linear layers outsourced, checked with Freivalds' algorithm and blinded)."""
