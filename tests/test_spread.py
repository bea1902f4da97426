"""Results over seeds: the summary keeps every run's figures, and the reproduction check
accepts each run it summarised and names every figure that left the spread."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.evaluation.spread import deviations, is_spread, spread, summarise_runs

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(st.one_of(finite, st.none()), min_size=1, max_size=8).filter(
    lambda vs: any(v is not None for v in vs)))  # fmt: skip
def test_a_spread_brackets_its_mean_and_keeps_every_value(values):
    s = spread(values)
    present = [v for v in values if v is not None]
    assert s["min"] <= s["mean"] + 1e-9 * max(1.0, abs(s["mean"]))
    assert s["mean"] <= s["max"] + 1e-9 * max(1.0, abs(s["mean"]))
    assert s["values"] == values and s["n"] == len(present)
    assert math.isclose(s["mean"], math.fsum(present) / len(present))
    assert s.get("missing", 0) == len(values) - len(present)


def test_a_spread_of_nothing_is_refused():
    with pytest.raises(ValueError):
        spread([None, None])


# runs of one shape: the same keys, each leaf a number, flag or name that may differ
LEAF = st.sampled_from(["float", "int", "bool", "name"])
LEAF_VALUES = {
    "float": finite,
    "int": st.integers(-5, 5),
    "bool": st.booleans(),
    "name": st.sampled_from(["a", "b"]),
}


@st.composite
def runs_of_one_shape(draw):
    shape = draw(st.dictionaries(st.sampled_from(["fid", "acc", "queries", "ok", "name"]),
                                 LEAF, min_size=1))  # fmt: skip
    n = draw(st.integers(2, 4))
    rows = draw(st.integers(0, 3))
    runs = []
    for _ in range(n):
        run = {k: draw(LEAF_VALUES[kind]) for k, kind in shape.items()}
        run["rows"] = [{"x": draw(finite), "label": "r"} for _ in range(rows)]
        runs.append(run)
    return runs


@settings(max_examples=150)
@given(runs_of_one_shape())
def test_every_summarised_run_passes_the_check_against_the_summary(runs):
    summary = summarise_runs(runs)
    for run in runs:
        assert deviations(summary, run) == []
    assert deviations(summary, summary) == []


@given(runs_of_one_shape())
def test_identical_runs_summarise_to_the_run_itself(runs):
    assert summarise_runs([runs[0]] * 3) == runs[0]


def test_figures_that_differ_become_spreads_and_the_rest_stays():
    runs = [{"fidelity": 0.5, "queries": 100, "ok": True, "name": "a", "median": None},
            {"fidelity": 0.7, "queries": 100, "ok": False, "name": "b", "median": 12}]  # fmt: skip
    s = summarise_runs(runs)
    assert is_spread(s["fidelity"]) and s["fidelity"]["mean"] == pytest.approx(0.6)
    assert s["queries"] == 100
    assert s["ok"] == {"true": 1, "n": 2}
    assert s["name"] == {"per_seed": ["a", "b"]}
    assert s["median"]["mean"] == 12 and s["median"]["missing"] == 1
    flags = summarise_runs([{"owned": None}, {"owned": True}, {"owned": False}])
    assert flags["owned"] == {"true": 1, "n": 2, "missing": 1}


def test_lists_of_different_lengths_are_kept_per_seed():
    s = summarise_runs([{"curve": [1, 2]}, {"curve": [1, 2, 3]}])
    assert s["curve"] == {"per_seed": [[1, 2], [1, 2, 3]]}


def test_the_check_names_every_figure_that_left_by_its_path():
    reference = summarise_runs([
        {"attacks": {"jbda": {"fidelity": 0.90, "queries": 6400}}, "seconds": 10.0},
        {"attacks": {"jbda": {"fidelity": 0.94, "queries": 6400}}, "seconds": 12.0},
    ])  # fmt: skip
    inside = {"attacks": {"jbda": {"fidelity": 0.93, "queries": 6400}}, "seconds": 99.0}
    assert deviations(reference, inside) == []  # timings are never compared
    outside = {"attacks": {"jbda": {"fidelity": 0.80, "queries": 6000}}}
    found = deviations(reference, outside)
    assert len(found) == 2, found  # the missing timing is not a deviation
    assert found[0].startswith("attacks.jbda.fidelity: 0.8 outside the committed spread")
    assert found[1].startswith("attacks.jbda.queries: 6000 differs from the committed 6400")
    assert deviations(reference, {"attacks": {}}) == ["attacks.jbda: missing from the rerun"]


def test_the_check_compares_a_rerun_over_seeds_by_its_mean():
    reference = summarise_runs([{"f": 0.5}, {"f": 0.7}])
    assert deviations(reference, summarise_runs([{"f": 0.55}, {"f": 0.65}])) == []
    assert deviations(reference, summarise_runs([{"f": 0.75}, {"f": 0.85}])) != []


def test_after_attacks_takes_each_attacks_best_usable_copy():
    from vtrust.evaluation.watermark import after_attacks

    def row(accuracy, p, score, owned):
        return {"accuracy": accuracy, "p_value": p, "score": score, "owned": owned}

    report = {"original_accuracy": 0.98, "max_accuracy_drop": 0.05, "attacks": [
        {"attack": "prune", "category": "removal", "watermark_survives": False,
         "rows": [row(0.97, 1e-40, 0.9, True), row(0.94, 1e-9, 0.7, False),
                  row(0.50, 0.9, 0.5, False)]},  # the last is below the floor
        {"attack": "rtll", "category": "removal", "watermark_survives": True,
         "rows": [row(0.40, 0.5, 0.5, False)]},
        {"attack": "ambiguity", "category": "ambiguity", "watermark_survives": True,
         "rows": [{"accuracy": 0.98, "removed": False}]},
    ]}  # fmt: skip
    best = after_attacks(report)
    assert best["prune"] == {"p_value": 1e-9, "score": 0.7, "owned": False, "survives": False}
    assert best["rtll"] == {"p_value": None, "score": None, "owned": None, "survives": True}
    assert "ambiguity" not in best
