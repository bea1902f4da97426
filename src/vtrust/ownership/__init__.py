"""Ownership evidence that survives a stolen copy: what an oracle planted in its answers
and the tests that find it in a suspect."""
