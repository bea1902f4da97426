"""Answer watermarks (DAWN): what is planted, what is recorded, and the test that finds it."""

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from vtrust.attacks.forged_log import forge_mark_log
from vtrust.defenses.answer_marks import (
    AnswerMarkParams,
    AnswerWatermark,
    canonical,
    planted_label,
)
from vtrust.defenses.answer_prf import AnswerPrf
from vtrust.errors import InputError, StateFileError
from vtrust.keying import ProtectionKey, save_protection_key
from vtrust.oracle import Oracle
from vtrust.ownership.answer_evidence import evidence, inconsistent_records, trace
from vtrust.ownership.log_dating import add_receipt, date_log, dated_prefix, load_receipts
from vtrust.ownership.mark_store import MarkRecord, MarkStore, read_records
from vtrust.targets.base import as_target
from vtrust.watermark.notary import Notary

SHAPE = (1, 4, 4)
N_CLASSES = 5


class Fixed(nn.Module):
    """A deterministic little classifier of 4×4 images (class from a fixed projection)."""

    def __init__(self, seed=0, shape=SHAPE):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        dim = int(np.prod(shape))
        self.w = nn.Parameter(torch.randn(dim, N_CLASSES, generator=gen), requires_grad=False)

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.w


class Repeats(nn.Module):
    """A suspect that answers a lookup table where it has one, the victim elsewhere: a
    thief that memorised the answers it was given."""

    def __init__(self, victim, table):
        super().__init__()
        self.victim, self.table = victim, table

    def forward(self, x):
        out = self.victim(x).clone()
        for i, row in enumerate(x.reshape(len(x), -1).numpy()):
            label = self.table.get(np.round(row * 255).astype(np.int32).tobytes())
            if label is not None:
                out[i] = -10.0
                out[i, label] = 10.0
        return out


def images(n, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def oracle_with_marks(rate=0.05, seed=None, shape=SHAPE, **params):
    defense = AnswerWatermark(AnswerMarkParams(rate=rate, **params))
    victim = Fixed(shape=shape)
    defense.bind(_Context(seed))
    return Oracle(victim, shape, output="labels", defenses=[defense]), defense, victim


class _Context:
    n_classes = N_CLASSES

    def __init__(self, seed):
        self.seed = seed


def true_labels(victim, x):
    with torch.no_grad():
        return victim(torch.from_numpy(x)).argmax(1).numpy()


def test_a_share_rate_of_queries_gets_a_wrong_label_and_the_same_query_the_same_answer():
    oracle, defense, victim = oracle_with_marks(rate=0.05)
    x = images(4000)
    answers = oracle.query(x, "alice")
    wrong = answers != true_labels(victim, x)
    assert 0.03 < wrong.mean() < 0.07  # Binomial(4000, 0.05): ±0.011 is 3 sigma
    assert len(defense.store) == wrong.sum()
    assert all(r.planted != r.true_label and r.of is None for r in defense.store)
    again = oracle.query(x[wrong][:20], "alice")
    np.testing.assert_array_equal(again, answers[wrong][:20])  # asked twice, same mark
    assert len(defense.store) == wrong.sum()  # and not recorded twice


@pytest.mark.parametrize("shape", [SHAPE, (1, 28, 28)])  # exact search, screened search
def test_a_near_identical_query_repeats_the_planted_answer_for_any_client(shape):
    oracle, defense, victim = oracle_with_marks(rate=0.05, radius=0.02, shape=shape)
    x = images(2000, shape=shape)
    answers = oracle.query(x, "alice")
    marked = np.flatnonzero(answers != true_labels(victim, x))[:10]
    noise = np.random.default_rng(5).uniform(-0.01, 0.01, x[marked].shape).astype(np.float32)
    for client in ("alice", "bob", "carol"):
        np.testing.assert_array_equal(oracle.query(x[marked] + noise, client), answers[marked])
    reused = [r for r in defense.store if r.of is not None]
    assert len([r for r in reused if r.client == "bob"]) == len(marked)
    assert len([r for r in reused if r.client == "carol"]) == len(marked)


def test_each_client_has_its_own_labels_so_the_marks_name_the_client():
    """Which inputs are marked is the owner's choice, the same for every client (a
    popular input is not marked more often); the planted label is the client's own."""
    oracle, defense, victim = oracle_with_marks(rate=0.05, radius=0.0)
    x = images(2000)
    oracle.query(x, "alice")
    oracle.query(x, "bob")
    own = {c: {r.query for r in defense.store if r.client == c and r.of is None}
           for c in ("alice", "bob")}  # fmt: skip
    assert len(own["alice"]) > 50 and not own["bob"]  # the same inputs: marked once
    repeated = [r for r in defense.store if r.client == "bob" and r.of is not None]
    assert {r.query for r in repeated} == own["alice"]  # ... and repeated to bob
    # disjoint inputs: each client's marks carry labels from its own key
    fresh = images(2000, seed=9)
    canon = canonical(fresh, 1 / 255)
    keyed = AnswerPrf(defense._secret)
    picked = np.flatnonzero(keyed.selection(canon) < 0.05)
    answers = oracle.query(fresh[picked], "carol")
    top = true_labels(victim, fresh[picked])
    v_carol = keyed.labels("carol", canon[picked])
    v_dave = keyed.labels("dave", canon[picked])
    expect = [planted_label(t, v, N_CLASSES) for t, v in zip(top, v_carol, strict=True)]
    assert answers.tolist() == expect
    other = [planted_label(t, v, N_CLASSES) for t, v in zip(top, v_dave, strict=True)]
    assert np.mean(np.asarray(other) == answers) < 0.6  # ≈ 1/4 agree by chance


def test_the_store_holds_no_secret_survives_a_torn_line_and_refuses_a_corrupt_one(tmp_path):
    path = tmp_path / "marks.jsonl"
    key = ProtectionKey.generate()
    save_protection_key(tmp_path / "owner.key", key)
    defense = AnswerWatermark(AnswerMarkParams(rate=0.1, key=str(tmp_path / "owner.key"),
                                               store=str(path)))  # fmt: skip
    defense.bind(_Context(None))
    oracle = Oracle(Fixed(), SHAPE, output="labels", defenses=[defense])
    oracle.query(images(300), "alice")
    text = path.read_text()
    assert key.secret.hex() not in text
    records, torn = read_records(path)
    assert torn == 0 and [r.id for r in records] == [r.id for r in defense.store]
    path.write_text(text + '{"id": 99, "cli')  # a crash mid-write
    again, torn = read_records(path)
    assert torn == 1 and len(again) == len(records)
    # a restarted oracle continues the log and answers the same queries the same way
    restarted = AnswerWatermark(AnswerMarkParams(rate=0.1, key=str(tmp_path / "owner.key"),
                                                 store=str(path)))  # fmt: skip
    restarted.bind(_Context(None))
    again_oracle = Oracle(Fixed(), SHAPE, output="labels", defenses=[restarted])
    np.testing.assert_array_equal(again_oracle.query(images(300), "alice"),
                                  oracle.query(images(300), "alice"))  # fmt: skip
    assert len(restarted.store) == len(records)  # nothing new to record
    again_oracle.query(images(300, seed=9), "alice")
    reread, torn = read_records(path)
    assert torn == 0 and len(reread) == len(restarted.store) > len(records)
    lines = text.splitlines()
    lines[1] = lines[1].replace('"planted":', '"planted":"x",')
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StateFileError, match="bad.jsonl:2"):
        read_records(tmp_path / "bad.jsonl")
    (tmp_path / "other.jsonl").write_text(json.dumps({"format": "something"}) + "\n")
    with pytest.raises(StateFileError, match="not an answer-mark store"):
        MarkStore(tmp_path / "other.jsonl")


def test_a_full_store_stops_planting():
    oracle, defense, victim = oracle_with_marks(rate=0.2, capacity=5)
    x = images(500)
    answers = oracle.query(x, "alice")
    assert len(defense.store) == 5
    assert (answers != true_labels(victim, x)).sum() == 5
    assert defense.unrecorded > 0


def test_a_thief_that_repeats_its_answers_is_found_and_ranked_first_and_others_are_not():
    oracle, defense, victim = oracle_with_marks(rate=0.05)
    for c in range(10):
        oracle.query(images(300, seed=100 + c), f"benign-{c}")
    x = images(1500, seed=1)
    answers = oracle.query(x, "thief")
    table = {np.round(row.reshape(-1) * 255).astype(np.int32).tobytes(): int(label)
             for row, label in zip(x, answers, strict=True)}  # fmt: skip
    thief = as_target(Repeats(victim, table), SHAPE)
    overall, ranked = trace(thief, defense.store.records)
    assert overall.p_value <= 1e-6 and overall.implicated[0] == "thief"
    assert ranked[0].clients == ("thief",) and ranked[0].p_value <= 1e-6
    assert all(e.p_value == 1.0 for e in ranked[1:])
    independent, _ = trace(as_target(Fixed(seed=3), SHAPE), defense.store.records)
    assert independent.p_value > 1e-3
    copy, _ = trace(as_target(victim, SHAPE), defense.store.records)
    assert copy.informative == 0 and copy.p_value == 1.0  # the model itself: no evidence


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_p_value_is_valid_for_a_suspect_that_never_saw_the_marks(seed):
    """Under the null (the suspect independent of the key), P(p ≤ α) ≤ α: simulate 400
    owners' logs against one fixed suspect and count how often p ≤ 0.05."""
    rng = np.random.default_rng(seed)
    n_classes, n = 4, 30
    suspect = rng.integers(0, n_classes, n)
    true = rng.integers(0, n_classes, n)
    small = 0
    for _ in range(400):
        planted = (true + 1 + rng.integers(0, n_classes - 1, n)) % n_classes
        records = [MarkRecord(i, "c", i, np.zeros(1, np.int32), 1.0, int(t), int(p))
                   for i, (t, p) in enumerate(zip(true, planted, strict=True))]  # fmt: skip
        result = evidence(records, dict(enumerate(suspect.tolist())), n_classes)
        small += result.p_value <= 0.05
    assert small / 400 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)


def test_a_log_made_up_after_the_fact_does_not_match_the_key():
    oracle, defense, _ = oracle_with_marks(rate=0.05)
    oracle.query(images(1000), "alice")
    honest = defense.store.records
    secret = defense._secret
    assert inconsistent_records(honest, secret, 0.05, N_CLASSES) == []
    forged = [MarkRecord(r.id, r.client, r.query, r.canonical, r.step, r.true_label,
                         (r.planted + 1) % N_CLASSES if r.id == 0 else r.planted, r.of)
              for r in honest]  # fmt: skip
    assert inconsistent_records(forged, secret, 0.05, N_CLASSES) == [0]
    other = ProtectionKey.generate().secret
    # another key explains a record with probability rate × 1/(C − 1) = 1.25 %
    assert len(inconsistent_records(honest, other, 0.05, N_CLASSES)) >= 0.8 * len(honest)


def test_a_seeded_deployment_is_reported_insecure_and_bad_parameters_are_refused():
    _, defense, _ = oracle_with_marks(seed=3)
    assert defense.insecure
    _, fresh, _ = oracle_with_marks()
    assert not fresh.insecure
    for bad in ({"rate": 0.0}, {"rate": 0.9}, {"step": 0.0}, {"radius": -1.0}, {"capacity": 0}):
        with pytest.raises(InputError):
            AnswerMarkParams(**bad)


def test_the_prf_depends_on_the_whole_canonical_query_and_the_client():
    keyed = AnswerPrf(bytes(32))
    a = canonical(images(1), 1 / 255)
    b = a.copy()
    b.flat[-1] += 1
    assert keyed.selection(a) == keyed.selection(a.copy())
    assert keyed.selection(a)[0] != keyed.selection(b)[0]
    assert keyed.labels("c", a)[0] != keyed.labels("c", b)[0]
    assert keyed.labels("c", a)[0] != keyed.labels("d", a)[0]
    other_owner = AnswerPrf(bytes([1]) + bytes(31))
    assert keyed.selection(a)[0] != other_owner.selection(a)[0]
    assert keyed.labels("c", a)[0] != other_owner.labels("c", a)[0]
    batch = canonical(images(20, seed=4), 1 / 255)
    u, v = keyed.selection(batch), keyed.labels("c", batch)
    assert u.tolist() == [float(keyed.selection(q[None])[0]) for q in batch]
    assert v.tolist() == [int(keyed.labels("c", q[None])[0]) for q in batch]
    assert ((u >= 0) & (u < 1)).all()
    both = keyed.select_and_label("c", batch)
    assert both[0].tolist() == u.tolist() and both[1].tolist() == v.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=40))
def test_the_universal_hash_is_the_exact_integer_sum(values):
    """Law: each lane is Σ lo·A + hi·B over the integers (the float64 products are exact)."""
    keyed = AnswerPrf(bytes(range(32)))
    row = np.array([values], dtype=np.int32)
    key_lo, key_hi = keyed._hash_key(len(values))
    expected = []
    for lane in range(key_lo.shape[1]):
        total = sum((v & 0xFFFF) * int(key_lo[j, lane]) + (v >> 16) * int(key_hi[j, lane])
                    for j, v in enumerate(values))  # fmt: skip
        expected.append(total % (1 << 64))
    assert keyed.lanes(row)[0].tolist() == expected


def test_the_prf_refuses_values_it_cannot_hash():
    with pytest.raises(InputError):
        AnswerPrf(bytes(32)).lanes(np.array([[0.5]]))
    with pytest.raises(InputError):
        AnswerPrf(bytes(32)).lanes(np.array([[2**40]]))


def test_a_memorising_thief_carries_the_marks_and_one_that_drops_disputed_answers_does_not(
    digits, mlp_victim
):
    """The limit of answer watermarks, measured: a thief trained to fit its transfer set
    repeats the planted answers; the adaptive thief (``clean_labels``: drop what a copy
    trained on the other half disputes) loses them and keeps its fidelity."""
    from vtrust.attacks.base import ThiefTraining, train_thief
    from vtrust.models import agreement

    defense = AnswerWatermark(AnswerMarkParams(rate=0.1))

    class Context:
        n_classes, seed = digits.n_classes, 0  # a seeded, reproducible secret

    defense.bind(Context())
    oracle = Oracle(mlp_victim, digits.input_shape, output="labels", defenses=[defense])
    x = digits.attacker.x[:300]
    answers = oracle.query(x, "thief")
    found = {}
    for clean in (False, True):
        training = ThiefTraining(arch="mlp", steps=800, weight_decay=0.0, clean_labels=clean)
        thief = train_thief(x, answers, digits.input_shape, digits.n_classes, training, seed=0)
        overall, ranked = trace(as_target(thief, digits.input_shape), defense.store.records)
        found[clean] = overall, agreement(thief, mlp_victim, digits.test.x)
    assert found[False][0].p_value <= 1e-6 and found[False][0].implicated == ("thief",)
    assert found[True][0].p_value > 1e-3  # the mark is gone ...
    assert found[True][1] >= found[False][1] - 0.02  # ... at no cost in fidelity


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 1500),
    st.sampled_from([4, 8, 64]),
    st.floats(0.01, 0.3),
    st.integers(0, 2**16),
)
@example(1300, 64, 0.1, 1)  # one tree of 1280 rows and the 20 newest
@example(520, 8, 0.05, 2)  # (scanning to 200 rows) two trees 329 + 128 and 63 newest rows
def test_the_planted_index_finds_what_a_full_scan_finds(n_planted, dim, radius, seed):
    """Law: across its levels (trees, newest rows) the index returns, for every query,
    the nearest planted row within RMS ``radius`` — as a scan of all rows finds it."""
    from vtrust.defenses import answer_marks
    from vtrust.defenses.answer_marks import PlantedIndex

    gen = np.random.default_rng(seed)
    planted = gen.random((n_planted, dim)).astype(np.float32)
    near = planted[gen.integers(0, n_planted, 40)]
    queries = np.concatenate([near + gen.normal(0, radius / 2, near.shape), gen.random((40, dim))])
    queries = queries.astype(np.float32)
    shipped = {"SCAN_ROWS": answer_marks.SCAN_ROWS}
    small = {"SCAN_ROWS": 200, "SINGLE_TREE_ROWS": 300, "RECENT_SHARE": 2}  # every level
    for sizes in (shipped, small):
        with mock.patch.multiple(answer_marks, **sizes):
            index = PlantedIndex()
            for i, row in enumerate(planted):
                index.add(row, i, 0)
            _agrees_with_a_scan(index, planted, queries, radius)


def _agrees_with_a_scan(index, planted, queries, radius):
    found, rms = index.nearest(queries, radius)
    scan = np.sqrt(((queries[:, None].astype(np.float64) - planted[None]) ** 2).mean(axis=2))
    within = scan.min(axis=1) <= radius
    assert (np.isfinite(rms) == within).all()
    assert np.allclose(rms[within], scan.min(axis=1)[within])
    assert (scan[np.flatnonzero(within), found[within]] == scan.min(axis=1)[within]).all()


DATED_RATE = 0.05
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture()
def honest_log():
    """An oracle's log from one honest client, and its secret."""
    oracle, defense, _ = oracle_with_marks(rate=DATED_RATE)
    oracle.query(images(600), "alice")
    return list(defense.store.records), defense._secret


def test_a_log_forged_after_the_suspect_was_seen_convicts_it_unless_the_log_is_dated(
    honest_log, tmp_path
):
    records, secret = honest_log
    independent = Fixed(seed=5)  # never saw a planted answer
    overall, _ = trace(independent, records, N_CLASSES)
    assert overall.p_value > 1e-3
    # the attack: after seeing the suspect, write records the key explains and it agrees with
    probes = images(3000, seed=11)
    forged = forge_mark_log(true_labels(independent, probes), probes, secret, rate=DATED_RATE,
                            n_classes=N_CLASSES, first_id=len(records))  # fmt: skip
    assert len(forged) > 100
    log = records + forged
    assert inconsistent_records(log, secret, DATED_RATE, N_CLASSES) == []  # the key explains it
    assert trace(independent, log, N_CLASSES)[0].p_value < 1e-30  # ... and it convicts
    # the defence: the honest part was dated before the suspect was seen, the rest after
    notary = Notary.generate()
    dates = tmp_path / "marks.dates.json"
    add_receipt(dates, date_log(records, notary, when=T0))
    add_receipt(dates, date_log(log, notary, when=T0 + timedelta(days=20)))
    seen = T0 + timedelta(days=10)
    count, why = dated_prefix(log, load_receipts(dates), notary.public, seen)
    assert count == len(records) and "not before the suspect was seen" in why
    assert trace(independent, log[:count], N_CLASSES)[0].p_value > 1e-3
    # seen after both dates: the whole log counts (the verifier's date decides)
    assert dated_prefix(log, load_receipts(dates), notary.public, T0 + timedelta(days=30)) == (
        len(log),
        "",
    )


def test_a_dated_log_cannot_be_edited_reordered_or_dated_by_another_notary(honest_log):
    records, _ = honest_log
    notary = Notary.generate()
    receipts = [date_log(records, notary, when=T0)]
    seen = T0 + timedelta(days=1)
    assert dated_prefix(records, receipts, notary.public, seen) == (len(records), "")
    edited = [*records[:3], replace(records[3], planted=(records[3].planted + 1) % N_CLASSES),
              *records[4:]]  # fmt: skip
    assert dated_prefix(edited, receipts, notary.public, seen)[0] == 0
    swapped = [records[1], records[0], *records[2:]]
    assert dated_prefix(swapped, receipts, notary.public, seen)[0] == 0
    other = Notary.generate()
    count, why = dated_prefix(records, [date_log(records, other, when=T0)], notary.public, seen)
    assert count == 0 and "not from this notary" in why
    assert dated_prefix(records, [], notary.public, seen) == (0, "the log has no receipts")
    # a receipt claiming a longer prefix than the log, or none at all, dates nothing
    bogus = {**receipts[0], "owner": f"mark-log:{len(records) + 5}"}
    assert dated_prefix(records, [bogus, "junk"], notary.public, seen)[0] == 0
    # a prefix receipt dates exactly that prefix: later records are undated
    partial = [date_log(records[:10], notary, when=T0)]
    assert dated_prefix(records, partial, notary.public, seen)[0] == 10


def test_a_malformed_mark_log_dates_file_is_refused(tmp_path):
    bad = {"a.json": "not json", "b.json": '{"format": "other"}',
           "c.json": '{"format": "vtrust-mark-log-dates", "receipts": 3}'}  # fmt: skip
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(StateFileError):
            load_receipts(tmp_path / name)
