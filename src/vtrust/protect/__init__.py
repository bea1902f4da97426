"""Protections for weights in an attacker's hands: keyed scrambling, sealed files."""
