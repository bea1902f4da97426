"""The extraction warning: stealing progress as the mass of the model's decision regions
a client's queries have taught — monotone, bounded, per client, saved and restored."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.catalog import CatalogError, parse_entry
from vtrust.data.natural import natural_image_pool
from vtrust.defenses.deployment import Deployment
from vtrust.errors import StateFileError
from vtrust.models.training import predict_proba


@pytest.fixture(scope="module")
def warning_oracle(mlp_victim, digits):
    return Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim, seed=0)


def detector(oracle):
    (warning,) = oracle.defenses
    return warning


def test_the_regions_partition_the_defenders_data(warning_oracle):
    regions = detector(warning_oracle).regions
    assert regions.mass.sum() == pytest.approx(1.0)
    assert regions.n_leaves > 10 and regions.mass.max() < 0.5


def test_the_leaf_lookup_is_scikit_learns(warning_oracle, digits):
    """The hand-written projection and tree walk place every query where PCA.transform
    and DecisionTreeClassifier.apply do (natural images included: off the data)."""
    regions = detector(warning_oracle).regions
    x = np.concatenate([digits.test.x, natural_image_pool(300, digits.input_shape, seed=2)])
    reference = regions.tree.apply(regions.pca.transform(x.reshape(len(x), -1)))
    numbering = np.cumsum(regions.tree.tree_.children_left == -1) - 1
    np.testing.assert_array_equal(regions.leaf(x), numbering[reference])


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=1, max_value=3))
def test_progress_never_falls_and_stays_in_the_unit_interval(warning_oracle, digits, seed, hits):
    """Law: teaching more leaves never un-teaches one; the mass reached is at most 1."""
    from vtrust.defenses.coverage import walk

    regions = detector(warning_oracle).regions
    rng = np.random.default_rng(seed)
    leaves = rng.integers(-1, regions.n_leaves, size=200)
    counts = np.zeros(regions.n_leaves, dtype=np.int64)
    after = walk(regions, counts, leaves, hits)
    assert (np.diff(after) >= -1e-12).all() and after[0] >= 0 and after[-1] <= 1 + 1e-12
    taught = np.bincount(leaves[leaves >= 0], minlength=regions.n_leaves) >= hits
    assert after[-1] == pytest.approx(regions.mass[taught].sum())


def test_in_distribution_queries_teach_more_than_natural_images(warning_oracle, mlp_victim,
                                                                 digits):  # fmt: skip
    warning = detector(warning_oracle)
    test = digits.test.x[:300]
    natural = natural_image_pool(300, digits.input_shape, seed=2)
    ind = warning.progress_of(test, predict_proba(mlp_victim, test))[-1]
    ood = warning.progress_of(natural, predict_proba(mlp_victim, natural))[-1]
    assert ind > 0.8 and ood < ind - 0.3


def test_a_client_that_reaches_the_threshold_is_flagged_where_it_crossed(mlp_victim, digits):
    oracle = Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim, seed=0)
    warning = detector(oracle)
    x = digits.attacker.x
    curve = warning.progress_of(x, predict_proba(mlp_victim, x))
    crossing = int(np.argmax(curve >= warning.params.threshold))
    assert curve[crossing] >= warning.params.threshold and crossing > 0
    oracle.query(x[:crossing], client_id="thief")  # one short of the threshold
    assert not oracle.client("thief").flagged_at
    assert warning.stealing_progress("thief") == pytest.approx(curve[crossing - 1])
    oracle.query(x[crossing : crossing + 5], client_id="thief")
    assert oracle.client("thief").flagged_at == {"extraction-warning": crossing + 1}
    assert warning.stealing_progress("other") == 0.0


def test_state_round_trips_and_a_foreign_state_is_refused(tmp_path, mlp_victim, digits):
    oracle = Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim, seed=0)
    oracle.query(digits.test.x[:40], client_id="c")
    warning = detector(oracle)
    path = warning.save_state(tmp_path / "state.npz")
    fresh = detector(Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim,
                                                                   seed=0))  # fmt: skip
    fresh.load_state(path)
    assert warning.stealing_progress("c") > 0
    assert fresh.stealing_progress("c") == pytest.approx(warning.stealing_progress("c"))
    shift = detector(Deployment.of(["shift"]).oracle(mlp_victim, digits.victim, seed=0))
    with pytest.raises(StateFileError):
        shift.load_state(path)


@pytest.mark.parametrize("params", ["leaves = 1", "threshold = 0", "threshold = 1.5",
                                    "hits = 0", "components = 0"])  # fmt: skip
def test_bad_parameters_are_refused(params):
    with pytest.raises(CatalogError):
        parse_entry("defenses", f'kind = "extraction-warning"\n[params]\n{params}',
                    name="bad", source="bad.toml")  # fmt: skip


def test_a_tampered_state_file_is_refused_not_loaded(tmp_path, mlp_victim, digits):
    """Negative counts would lower a thief's progress: refused at load. A state of
    another tree's size is refused when first used, before it is counted on."""
    from vtrust.errors import InputError

    oracle = Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim, seed=0)
    oracle.query(digits.test.x[:40], client_id="c")
    warning = detector(oracle)
    path = warning.save_state(tmp_path / "state.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, bad in (("negative", -arrays["s0/counts"] - 1), ("short", arrays["s0/counts"][:5])):
        np.savez(tmp_path / f"{name}.npz", **{**arrays, "s0/counts": bad})
        fresh = detector(Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim,
                                                                       seed=0))  # fmt: skip
        if name == "negative":
            with pytest.raises(StateFileError):
                fresh.load_state(tmp_path / f"{name}.npz")
        else:
            fresh.load_state(tmp_path / f"{name}.npz")
            with pytest.raises(InputError, match="another deployment"):
                fresh.observe("c", digits.test.x[:4], predict_proba(mlp_victim, digits.test.x[:4]))
