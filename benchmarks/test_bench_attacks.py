"""Attack throughput on the default (demo) MLP victim, in queries per second.

``extra_info['queries_per_s']`` holds the figure; ``make bench`` prints the timings.
"""

import numpy as np

from vtrust.attacks.base import AttackerResources, QuerySession
from vtrust.attacks.extraction.jbda import JBDA, JBDAParams
from vtrust.attacks.extraction.sampling import PoolSampling, RandomQueriesParams
from vtrust.oracle import Oracle


def test_query_session_throughput(benchmark, mlp_victim, digits):
    """Answering 1,000 attacker queries in batches of 100 (oracle + session bookkeeping)."""
    x = np.random.default_rng(0).uniform(0, 1, size=(1000, 1, 8, 8)).astype(np.float32)

    def spend():
        res = AttackerResources(Oracle(mlp_victim, digits.input_shape), data=digits.attacker)
        session = QuerySession(res, 1000, labels_only=False)
        for start in range(0, 1000, 100):
            session.ask(x[start : start + 100])
        return session.used

    assert benchmark(spend) == 1000
    if benchmark.stats:
        benchmark.extra_info["queries_per_s"] = 1000 / benchmark.stats["mean"]


def test_random_query_attack_end_to_end(benchmark, mlp_victim, digits):
    """A 1,000-query retraining attack including its thief's training."""
    attack = PoolSampling(RandomQueriesParams(budget=1000, thief_steps=300))

    def attack_once():
        res = AttackerResources(Oracle(mlp_victim, digits.input_shape), data=digits.attacker)
        return attack.run(res, seed=0).queries

    assert benchmark.pedantic(attack_once, rounds=3, iterations=1) == 1000
    if benchmark.stats:
        benchmark.extra_info["queries_per_s"] = 1000 / benchmark.stats["mean"]


def test_jbda_augmentation_round(benchmark, mlp_victim, digits):
    """One JBDA round from 200 seeds: substitute training, Jacobian steps, 200 queries."""
    attack = JBDA(JBDAParams(seed_size=200, rounds=1, substitute_steps=100, thief_steps=1))

    def round_once():
        res = AttackerResources(Oracle(mlp_victim, digits.input_shape), data=digits.attacker)
        return attack.run(res, seed=0).queries

    assert benchmark.pedantic(round_once, rounds=3, iterations=1) == 400
    if benchmark.stats:
        benchmark.extra_info["queries_per_s"] = 400 / benchmark.stats["mean"]
