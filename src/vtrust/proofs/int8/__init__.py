"""Verifiable inference for int8 networks: ReLU, max-pooling and requantisation proved
by LogUp range checks, convolutions evaluated as convolutions (see ``protocol``)."""
