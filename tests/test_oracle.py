import numpy as np
import pytest

from vtrust.catalog import load_entry
from vtrust.defenses.limits import QueryLimit, QueryLimitParams
from vtrust.defenses.poisoning import Rounding, RoundingParams, TopK, TopKParams
from vtrust.errors import InputError, QueryRefused
from vtrust.models import predict_proba
from vtrust.oracle import Decision, Oracle, QueryDefense, Verdict


def test_probabilities_and_labels(small_mlp, digits):
    x = digits.test.x[:300]
    oracle = Oracle(small_mlp, digits.input_shape, batch_size=64)
    probs = oracle.query(x, client_id="a")
    assert probs.shape == (300, 10)
    assert np.allclose(probs.sum(1), 1) and np.allclose(probs, predict_proba(small_mlp, x))
    labels = Oracle(small_mlp, digits.input_shape, output="labels").query(x)
    assert labels.dtype == np.int64 and np.array_equal(labels, probs.argmax(1))


def test_query_accounting_per_client(small_mlp, digits):
    oracle = Oracle(small_mlp, digits.input_shape)
    oracle.query(digits.test.x[:10], client_id="a")
    oracle.query(digits.test.x[:5], client_id="b")
    oracle.query(digits.test.x[:7], client_id="a")
    assert oracle.client("a").queries == 17 and oracle.client("b").queries == 5
    assert oracle.total_queries == 22


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 64)), np.zeros((3, 1, 7, 8)), np.full((2, 1, 8, 8), np.nan), np.array([["a"]])],
)
def test_bad_queries_are_refused_with_clear_error(small_mlp, digits, bad):
    with pytest.raises(InputError):
        Oracle(small_mlp, digits.input_shape).query(bad)


def test_inputs_the_model_overflows_on_are_refused_before_any_defense_sees_them(small_mlp, digits):
    """Finite but enormous values make the model's float32 logits infinite: a clear error
    naming the row (not NaN answers, nor NaN in a detector's state), nothing counted."""
    prada = load_entry("defenses", "prada").build()
    oracle = Oracle(small_mlp, digits.input_shape, defenses=[prada])
    oracle.query(digits.test.x[:5], client_id="a")
    huge = np.full((1, *digits.input_shape), 3e38, np.float32)
    with pytest.raises(InputError, match=r"not finite for 1 of 3 inputs \(first: row 2\)"):
        oracle.query(np.concatenate([digits.test.x[5:7], huge]), client_id="a")
    assert oracle.client("a").queries == 5
    assert np.isfinite(oracle.query(digits.test.x[5:7], client_id="a")).all()


def test_transform_chain(small_mlp, digits):
    x = digits.test.x[:100]
    clean = Oracle(small_mlp, digits.input_shape).query(x)
    rounded = Oracle(small_mlp, digits.input_shape, defenses=[Rounding(RoundingParams(1))]).query(x)
    assert np.allclose(rounded, np.round(clean, 1))
    top2 = Oracle(small_mlp, digits.input_shape, defenses=[TopK(TopKParams(2))]).query(x)
    assert ((top2 > 0).sum(1) <= 2).all() and np.allclose(top2.sum(1), 1)
    assert np.array_equal(top2.argmax(1), clean.argmax(1))
    onehot = Oracle(
        small_mlp, digits.input_shape, defenses=[load_entry("defenses", "top-1").build()]
    ).query(x)
    assert set(np.unique(onehot)) <= {0.0, 1.0}


def test_refusal_keeps_what_was_answered(small_mlp, digits):
    oracle = Oracle(
        small_mlp, digits.input_shape, batch_size=32, defenses=[QueryLimit(QueryLimitParams(70))]
    )
    first = oracle.query(digits.test.x[:50], client_id="thief")
    assert len(first) == 50
    with pytest.raises(QueryRefused) as info:
        oracle.query(digits.test.x[50:150], client_id="thief")
    assert info.value.queries == 70 and len(info.value.answered) == 20
    assert info.value.defense == "query-limit"
    assert oracle.client("thief").flagged_at == {"query-limit": 71}
    with pytest.raises(QueryRefused) as again:
        oracle.query(digits.test.x[:1], client_id="thief")
    assert len(again.value.answered) == 0
    with pytest.raises(QueryRefused):  # the limit is per client: another one gets 70 too
        oracle.query(digits.test.x[:100], client_id="honest")
    assert oracle.client("honest").queries == 70


def test_flags_are_recorded_without_refusal(small_mlp, digits):
    class FlagSecond(QueryDefense):
        name = "flag-second"

        def observe(self, client_id, x, probs):
            return Decision(Verdict.FLAG, at=1) if len(x) > 1 else Decision()

    oracle = Oracle(small_mlp, digits.input_shape, defenses=[FlagSecond()])
    oracle.query(digits.test.x[:3], client_id="c")
    oracle.query(digits.test.x[:3], client_id="c")
    assert oracle.client("c").flagged_at == {"flag-second": 2}
    assert oracle.client("c").queries == 6


def test_defenses_run_on_one_thread_unless_the_user_chose_a_count(small_mlp, digits, monkeypatch):
    """Small per-query work is not handed to thread pools that a loaded machine makes
    wait (threads.small_work); the model and everything else keep their threads, and a
    count the user set (--threads / VTRUST_THREADS) holds for the defenses too."""
    import threadpoolctl
    import torch

    from vtrust import threads

    seen = []

    class Spy(QueryDefense):
        def observe(self, client_id, x, probs):
            blas = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                    if i["user_api"] == "blas"]  # fmt: skip
            seen.append((torch.get_num_threads(), max(blas, default=1)))
            return Decision()

    monkeypatch.setattr(threads, "_chosen", None)
    torch.set_num_threads(2)
    oracle = Oracle(small_mlp, digits.input_shape, defenses=[Spy()])
    oracle.query(digits.test.x[:4])
    assert seen[-1] == (1, 1) and torch.get_num_threads() == 2  # restored after
    monkeypatch.setattr(threads, "_chosen", 2)
    oracle.query(digits.test.x[:4])
    assert seen[-1][0] == 2
