"""F_p arithmetic (p = 2^61 − 1): field laws and every fast path against galois / Python
integers (hypothesis)."""

import galois
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vtrust.errors import InputError
from vtrust.proofs import field as F

GF = galois.GF(F.P)
elems = st.integers(0, F.P - 1)
vectors = st.lists(elems, min_size=1, max_size=40)


def arr(values):
    return np.array(values, dtype=np.uint64)


@settings(max_examples=200, deadline=None)
@given(a=elems, b=elems, c=elems)
def test_field_axioms(a, b, c):
    A, B, C = arr([a]), arr([b]), arr([c])
    assert F.add(A, B) == F.add(B, A) and F.mul(A, B) == F.mul(B, A)
    assert F.mul(A, F.add(B, C)) == F.add(F.mul(A, B), F.mul(A, C))
    assert F.mul(F.mul(A, B), C) == F.mul(A, F.mul(B, C))
    assert F.add(A, F.neg(A)) == 0 and F.sub(A, B) == F.add(A, F.neg(B))
    if a:
        assert F.mul(A, arr([int(F.inverse(a))])) == 1


def test_products_at_the_limb_boundaries_are_exact():
    """The vectorised product splits operands at bit 32 and folds at bits 29/61: every
    pair of values at those edges (and p − 1) against Python integers, elementwise and
    in the sums and matrix-vector products that use it."""
    edges = [0, 1, 2, (1 << 29) - 1, 1 << 29, (1 << 32) - 1, 1 << 32, (1 << 32) + 1,
             (1 << 60) - 1, 1 << 60, (1 << 61) - 3, F.P - 1]  # fmt: skip
    a = arr([x for x in edges for _ in edges])
    b = arr([y for _ in edges for y in edges])
    assert F.mul(a, b).tolist() == [int(x) * int(y) % F.P for x, y in zip(a, b, strict=True)]
    assert int(F.inner(a, b)) == sum(int(x) * int(y) for x, y in zip(a, b, strict=True)) % F.P
    m = b.reshape(len(edges), len(edges))
    v = arr(edges)
    want = [sum(edges[i] * int(m[i, j]) for i in range(len(edges))) % F.P
            for j in range(len(edges))]  # fmt: skip
    assert F.vecmat(v, m).tolist() == want


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.integers(0, F.P - 1), max_size=30))
def test_batch_inverse_inverts_every_nonzero_value(values):
    inverses = F.batch_inverse(values)
    products = [v * i % F.P for v, i in zip(values, inverses, strict=True)]
    assert products == [1 if v else 0 for v in values]


@settings(max_examples=100, deadline=None)
@given(a=vectors, seed=st.integers(0, 2**32 - 1))
def test_elementwise_and_sums_match_galois(a, seed):
    b = np.random.default_rng(seed).integers(0, F.P, len(a), dtype=np.uint64)
    ga, gb = GF(a), GF(b.tolist())
    assert (F.mul(arr(a), b) == np.array(ga * gb, dtype=np.uint64)).all()
    assert (F.add(arr(a), b) == np.array(ga + gb, dtype=np.uint64)).all()
    assert (F.sub(arr(a), b) == np.array(ga - gb, dtype=np.uint64)).all()
    assert int(F.total(arr(a))) == sum(a) % F.P
    assert int(F.inner(arr(a), b)) == int(np.sum(ga * gb))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), k=st.integers(1, 2100), m=st.integers(1, 4), seed=st.integers(0, 99),
       bits=st.sampled_from([3, 8, 16]))  # fmt: skip
def test_matmul_is_exact_across_chunks(n, k, m, seed, bits):
    """Field × field products, and field × small weights on two 31-bit limbs (small
    weights: k · max|w| < 2^22) or three 21-bit ones, with edge values in a."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, F.P, (n, k), dtype=np.uint64)
    a[0, : min(k, 3)] = [F.P - 1, (1 << 31) - 1, 1 << 31][: min(k, 3)]
    b = rng.integers(0, F.P, (k, m), dtype=np.uint64)
    w = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (k, m))
    w[0, 0] = -(2 ** (bits - 1))
    bound = 2 ** (bits - 1)
    assert F.SmallMatrix(w).limb_bits == (31 if k * bound < 1 << 22 else 21)
    want = [[sum(int(a[i, t]) * int(b[t, j]) for t in range(k)) % F.P for j in range(m)]
            for i in range(n)]  # fmt: skip
    assert (F.matmul(a, b) == np.array(want, dtype=np.uint64)).all()
    want_w = [[sum(int(a[i, t]) * int(w[t, j]) for t in range(k)) % F.P for j in range(m)]
              for i in range(n)]  # fmt: skip
    assert (F.matmul_small(a, w) == np.array(want_w, dtype=np.uint64)).all()


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 2100), m=st.integers(1, 5), bits=st.sampled_from([3, 8, 16, 24]),
       seed=st.integers(0, 99))  # fmt: skip
def test_vecmat_small_is_exact_for_every_weight_width(k, m, bits, seed):
    """int8, int16 (several float64 chunks of rows at 16 bits) and the float64 fallback
    for wider weights, with edge values in the vector."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, F.P, k, dtype=np.uint64)
    v[: min(k, 3)] = [F.P - 1, (1 << 31) - 1, 1 << 31][: min(k, 3)]
    w = rng.integers(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1), (k, m))
    small = F.SmallMatrix(w)
    assert (small.narrow is None) == (bits > 16)
    want = [sum(int(v[t]) * int(w[t, j]) for t in range(k)) % F.P for j in range(m)]
    assert F.vecmat_small(v, small).tolist() == want


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 6), seed=st.integers(0, 999))
def test_mle_agrees_with_eq_table_and_interpolates_the_cube(m, seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, F.P, 1 << m, dtype=np.uint64)
    point = rng.integers(0, F.P, m, dtype=np.uint64)
    assert F.mle(table, point) == F.inner(table, F.eq_table(point))
    corner = rng.integers(0, 1 << m)
    bits = [(corner >> j) & 1 for j in range(m)]
    assert F.mle(table, bits) == table[corner]  # an MLE agrees with its table on {0,1}^m


@given(values=arrays(np.int64, st.integers(1, 20), elements=st.integers(-(2**59), 2**59)))
def test_signed_embedding_round_trips(values):
    assert (F.signed(F.elements(values)) == values).all()


def test_bad_inputs_are_refused():
    with pytest.raises(InputError):
        F.check(np.array([F.P], dtype=np.uint64))
    with pytest.raises(InputError):
        F.check(np.array([1.0]))
    with pytest.raises(InputError):
        F.matmul(np.zeros((2, 3), np.uint64), np.zeros((2, 3), np.uint64))
    with pytest.raises(InputError):
        F.mle(np.zeros(8, np.uint64), [1, 2])
    with pytest.raises(InputError):
        F.inverse(0)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40))
def test_compact_bytes_is_injective_and_short_for_small_integers(values):
    a = F.elements(np.array(values, dtype=object))
    encoded = F.compact_bytes(a)
    width = encoded[0]
    codes = np.frombuffer(encoded[1:], dtype=f"<u{width}").astype(np.uint64)
    decoded = [int(c) // 2 if c % 2 == 0 else -(int(c) + 1) // 2 for c in codes]
    assert F.elements(np.array(decoded, dtype=object)).tolist() == a.tolist()
    if all(-64 <= v < 64 for v in values):
        assert width == 1 and len(encoded) == 1 + len(values)


def test_kernels_are_cached_on_disk_in_a_folder_named_by_their_sources(tmp_path):
    """A fresh process compiles into $XDG_CACHE_HOME/vtrust/numba-<hash of the kernel
    sources>; the folder's name changes with any of those sources."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from vtrust.proofs import field as F, _jit; "
        "F.mle(np.arange(4, dtype=np.uint64), [3, 5]); print(_jit.FOLDER)"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout.strip()  # fmt: skip
    folder = tmp_path / "vtrust" / out.rsplit("/", 1)[-1]
    assert out == str(folder) and folder.name.startswith("numba-")
    assert any(folder.rglob("*.nbi")), "no numba cache index was written"


def test_editing_a_helper_in_another_file_recompiles_the_kernels_that_inline_it(tmp_path):
    """ext.py's kernels inline field.py's ``_addmod``; numba's own cache watches only
    ext.py. An unedited second process loads every kernel from the cache (no miss); after
    ``_addmod`` is edited in field.py, the next process compiles afresh into a new folder
    and computes with the edited helper — never the stale machine code."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import vtrust

    package = tmp_path / "src" / "vtrust"
    shutil.copytree(Path(vtrust.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(tmp_path / "src"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    code = (
        "import json, numpy as np, vtrust; from vtrust.proofs import ext as X, _jit\n"
        f"assert vtrust.__file__.startswith({str(package)!r})\n"
        "m = np.array([[3], [4]], dtype=np.uint64); z = np.zeros(2, dtype=np.uint64)\n"
        "re, _ = X.vecmat((np.array([1, 2], dtype=np.uint64), z), m)\n"
        "s = X._vecmat.stats\n"
        "print(json.dumps([_jit.FOLDER, int(re[0]), sum(s.cache_hits.values()),"
        " sum(s.cache_misses.values())]))\n"
    )

    def run_once():
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    folder, value, _, misses = run_once()
    assert value == 11 and misses == 1  # 1·3 + 2·4, compiled
    assert run_once() == [folder, 11, 1, 0]  # a second process: from the cache
    field = package / "proofs" / "field.py"
    source = field.read_text()
    edited = source.replace("    return s - _P if s >= _P else s\n",
                            "    return (s - _P if s >= _P else s) + np.uint64(1)\n")  # fmt: skip
    assert edited != source
    field.write_text(edited)
    new_folder, new_value, _, new_misses = run_once()
    assert new_folder != folder and new_misses == 1
    assert new_value == 11 + 2  # two additions, each now one more: the edited helper ran


def test_every_module_that_defines_kernels_is_in_the_cache_key():
    from pathlib import Path

    from vtrust.proofs import _jit

    here = Path(_jit.__file__).parent
    sources = {p.relative_to(here).as_posix(): p.read_text() for p in here.rglob("*.py")}
    users = {name for name, text in sources.items() if "proofs._jit import" in text}
    inlined = {name for name, text in sources.items() if "numba.njit(inline" in text}
    assert users | inlined | {"_jit.py"} <= set(_jit.KERNEL_SOURCES)
