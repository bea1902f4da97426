"""``vtrust audit``: the security engineer's report on one model as it would be deployed."""
