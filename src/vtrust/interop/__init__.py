"""Interoperability with other toolkits of the field (optional extras)."""
