"""Defenses: query-side defenses run inside the oracle (poisoning, query limits) and,
in later modules, model-side protections."""
