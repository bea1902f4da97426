"""Black-box model extraction attacks: they see only the oracle's ``query``."""
