"""PRADA: the growing-set update against a plain transcription of the paper's loop,
batch-size independence, alarms on synthetic streams but not benign ones, actions, and
state that survives a restart."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.catalog import load_entry
from vtrust.defenses.deployment import DefenseContext, Deployment, build_defense
from vtrust.defenses.prada import Prada, PradaParams
from vtrust.errors import InputError, QueryRefused, StateFileError


def reference_stream(x, labels):
    """The paper's Algorithm 1, one query at a time, with plain Python lists."""
    sets, dists, thresholds, stream = {}, {}, {}, []
    for q, c in zip(x.reshape(len(x), -1).astype(np.float64), labels, strict=True):
        if c not in sets:
            sets[c], dists[c], thresholds[c] = [q], [0.0], 0.0
            continue
        d = min(float(np.linalg.norm(q - y)) for y in sets[c])
        stream.append(d)
        if d > thresholds[c]:
            sets[c].append(q)
            dists[c].append(d)
            thresholds[c] = max(thresholds[c], np.mean(dists[c]) - np.std(dists[c]))
    return np.array(stream), thresholds


def one_hot(labels, k=10):
    return np.eye(k)[labels]


def feed(detector, state, x, labels, batch):
    alarm = None
    for s in range(0, len(x), batch):
        at = detector.update(state, x[s : s + batch], one_hot(labels[s : s + batch]))
        if at is not None and alarm is None:
            alarm = s + at
    return alarm


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 64), classes=st.integers(1, 4))
def test_matches_the_papers_loop_for_any_batching(seed, batch, classes):
    rng = np.random.default_rng(seed)
    x = rng.random((120, 1, 3, 3)).astype(np.float32)
    labels = rng.integers(0, classes, 120)
    det = Prada(PradaParams(delta=0.5))
    state = det.new_state()
    feed(det, state, x, labels, batch)
    want, thresholds = reference_stream(x, labels)
    np.testing.assert_allclose(state.stream_d.view, want, rtol=1e-4, atol=1e-4)
    for c, s in state.sets.items():
        assert s.threshold == pytest.approx(thresholds[c], rel=1e-4, abs=1e-4)


def test_alarm_index_does_not_depend_on_batch_size(digits):
    x = synthetic_attack_stream(digits, seed=3)
    labels = np.arange(len(x)) % 10
    alarms = set()
    for batch in (1, 7, 50, 256):
        det = Prada(PradaParams(delta=0.9))
        alarms.add(feed(det, det.new_state(), x, labels, batch))
    assert len(alarms) == 1 and None not in alarms


def synthetic_attack_stream(digits, seed):
    """JBDA-shaped: 100 natural seeds, then small signed steps from them."""
    rng = np.random.default_rng(seed)
    seeds = digits.attacker.x[rng.choice(len(digits.attacker), 100, replace=False)]
    steps = np.clip(seeds + 0.1 * rng.choice([-1.0, 1.0], seeds.shape), 0, 1)
    return np.concatenate([seeds, steps.astype(np.float32)])


def test_benign_clients_pass_and_a_jacobian_style_stream_is_caught(small_mlp, digits):
    det = build_defense(load_entry("defenses", "prada"), DefenseContext(small_mlp, digits.victim))
    probs = small_mlp_probs(small_mlp, digits.test.x)
    for client in range(5):
        order = np.random.default_rng(client).permutation(len(digits.test))
        assert det.observe(f"b{client}", digits.test.x[order], probs[order]).at is None
    x = synthetic_attack_stream(digits, seed=0)
    decision = det.observe("thief", x, small_mlp_probs(small_mlp, x))
    assert decision.at is not None and 100 < decision.at < 200


def small_mlp_probs(model, x):
    from vtrust.models.training import predict_proba

    return predict_proba(model, x)


def test_refuse_and_poison_actions_through_the_oracle(small_mlp, digits):
    x = synthetic_attack_stream(digits, seed=0)
    refusing = Deployment.of(["prada-refuse"]).oracle(small_mlp, digits.victim)
    with pytest.raises(QueryRefused) as info:
        refusing.query(x, client_id="thief")
    at = info.value.queries
    assert 100 < at < 200 and len(info.value.answered) == at

    poisoning = Deployment.of(["prada-poison"]).oracle(small_mlp, digits.victim)
    answers = poisoning.query(x, client_id="thief")
    clean = small_mlp_probs(small_mlp, x)
    flagged = poisoning.client("thief").flagged_at["prada-poison"]
    assert flagged == at + 1
    np.testing.assert_array_equal(answers[:at], clean[:at])
    changed = np.abs(answers[at:] - clean[at:]).sum(axis=1)
    assert (changed > 0.1).mean() > 0.9  # MAD-argmax answers from the alarm on
    assert (answers[at:].argmax(1) == clean[at:].argmax(1)).all()
    later = poisoning.query(x[:5], client_id="thief")
    assert np.abs(later - clean[:5]).sum(axis=1).min() > 0.1


def test_state_survives_a_restart(tmp_path, digits):
    x = synthetic_attack_stream(digits, seed=1)
    labels = np.arange(len(x)) % 10
    whole = Prada(PradaParams(delta=0.9))
    whole_alarm = feed(whole, whole.new_state(), x, labels, 16)

    first = Prada(PradaParams(delta=0.9))
    first.states["c"] = first.new_state()
    assert feed(first, first.states["c"], x[:96], labels[:96], 16) is None
    first.save_state(tmp_path / "prada.npz")
    second = Prada(PradaParams(delta=0.9))
    second.load_state(tmp_path / "prada.npz")
    rest = feed(second, second.states["c"], x[96:], labels[96:], 16)
    assert rest is not None and 96 + rest == whole_alarm


def test_bad_state_files_are_refused(tmp_path, digits):
    det = Prada()
    det.states["c"] = det.new_state()
    det.update(det.states["c"], digits.test.x[:50], one_hot(digits.test.y[:50]))
    good = det.save_state(tmp_path / "s.npz")
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name in ("trunc.npz", "junk.npz", "missing.npz"):
        with pytest.raises(StateFileError):
            Prada().load_state(tmp_path / name)
    from vtrust.defenses.shift import ShiftDetector

    with pytest.raises(StateFileError, match="not a ShiftDetector"):
        ShiftDetector().load_state(good)


def test_parameters_are_validated():
    with pytest.raises(InputError):
        PradaParams(delta=1.5)
    with pytest.raises(InputError):
        Prada(PradaParams(action="explode"))
    with pytest.raises(InputError, match="poisoning defense"):
        Prada(PradaParams(action="poison"))


def test_line_search_retraining_is_flagged_and_uniform_queries_are_not(mlp_victim, digits):
    from vtrust.evaluation.attacks import run_entry

    deployment = Deployment.of(["prada"])
    line = run_entry(load_entry("attacks", "line-search-2k"), mlp_victim, digits,
                     deployment=deployment, budget=400, curve=False)  # fmt: skip
    assert line["queries"] == 400
    assert line["defenses"]["prada"]["flagged"] and line["defenses"]["prada"]["at_query"] <= 200
    uniform = run_entry(load_entry("attacks", "random-uniform-2k"), mlp_victim, digits,
                        deployment=deployment, budget=400, curve=False)  # fmt: skip
    assert not uniform["defenses"]["prada"]["flagged"]  # near-normal distances: PRADA's blind spot
