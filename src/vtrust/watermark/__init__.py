"""Watermarks: static (weights, white-box) and dynamic (trigger set, black-box), keys with
published commitments, calibrated ownership tests, per-user fingerprints, robustness
evaluation against removal and extraction attacks, and the CI gate."""
