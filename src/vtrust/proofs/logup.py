"""Range checks by LogUp-GKR (Papini & Haböck, eprint 2023/1284): every one of a vector
of lookups ``d`` (2^L field elements) lies in the table [0, 2^T).

LogUp turns the multiset inclusion into one identity of rational functions in a fresh
challenge α,

    Σ_i 1 / (α − d_i)  +  Σ_{t < 2^T} (−m_t) / (α − t)  =  0,

with the multiplicities m (how often each t is looked up) sent in the clear. The
identity holds for random α only if every d_i is in the table (both sums are the same
rational function exactly when the multisets agree; the characteristic p = 2^61 − 1
exceeds every count). Each sum is a binary tree of fractions — 2^L lookups
``1 / (α − d_i)``, 2^T table entries ``−m_t / (α − t)`` — whose parent is
``(n_lo d_hi + n_hi d_lo) / (d_lo d_hi)`` of its two children (paired on the top
variable); the two roots must add up to 0 over a nonzero denominator.

Both trees are reduced by GKR from their roots at once, level by level (batched): at
level j (a layer of 2^j fractions reduced to the layer of 2^(j+1) below) a random λ
combines each tree's numerator and denominator claims, and while the table tree still
has levels (j < T) a random ρ combines the two trees into one degree-3 sum-check of j
rounds,

    Σ_x eq(r, x)·([N_lo D_hi + N_hi D_lo + λ D_lo D_hi]_lookups + ρ [ … ]_table)(x),

then ``halves`` — each tree's N_lo, N_hi, D_lo, D_hi at the bound point s — and a random
μ: every next claim is at (s, μ), the same point for both trees. The verifier computes
what it can itself: the table tree's leaves from m and the identity MLE Σ 2^i s_i (no
halves sent for them), the lookup tree's leaf numerators (all 1: only D_lo, D_hi sent),
and the lookups' MLE at the final point through ``lookup_mle`` — the caller's own
evaluation (for requantisation: from the weights and inputs it holds and the quotients
it read), so nothing the prover says about d is taken on trust. Messages:
``multiplicities`` (2^T integers), α, ``roots`` (4 elements of F_{p^2}), then per level
its rounds and halves.

Soundness error (union bound, challenges in F_{p^2}): α — (2^L + 2^T)/|F| (the
identity's numerator has degree < 2^L + 2^T after clearing denominators); per level j,
3j/|F| for the sum-check plus 3/|F| for λ, ρ and μ. The largest single-challenge error
is α's: :func:`noninteractive_bits` is what a grinding prover faces.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs._jit import kernel
from vtrust.proofs.channel import DRAW, Send, VerifierChannel
from vtrust.proofs.ext import _lmul
from vtrust.proofs.field import _addmod, _submod

MAX_TABLE_BITS = 20  #: tables up to 2^20 entries (the verifier evaluates m's MLE)
CHALLENGE_FIELD_SIZE = float(F.P) ** 2


def rounds(lookup_bits: int, table_bits: int) -> int:
    """Sum-check rounds of one range proof: Σ_{j < max(L, T)} j."""
    depth = max(lookup_bits, table_bits)
    return depth * (depth - 1) // 2


def soundness_error(lookup_bits: int, table_bits: int) -> float:
    """Interactive soundness error of one range proof (see the module)."""
    alpha = ((1 << lookup_bits) + (1 << table_bits)) / CHALLENGE_FIELD_SIZE
    levels = range(max(lookup_bits, table_bits))
    return alpha + sum(3 * j + 3 for j in levels) / CHALLENGE_FIELD_SIZE


def noninteractive_bits(lookup_bits: int, table_bits: int) -> float:
    """−log2 of the largest single-challenge error (α's) — the Fiat–Shamir level."""
    alpha = ((1 << lookup_bits) + (1 << table_bits)) / CHALLENGE_FIELD_SIZE
    return -math.log2(alpha)


# -- kernels ---------------------------------------------------------------------------
@kernel
def _parents(n_re, n_im, d_re, d_im):
    """One tree level up: children paired on the top variable (k, k + half)."""
    half = n_re.shape[0] // 2
    on_re, on_im = np.empty(half, np.uint64), np.empty(half, np.uint64)
    od_re, od_im = np.empty(half, np.uint64), np.empty(half, np.uint64)
    for k in range(half):
        ar, ai, br, bi = n_re[k], n_im[k], n_re[k + half], n_im[k + half]
        cr, ci, er, ei = d_re[k], d_im[k], d_re[k + half], d_im[k + half]
        xr, xi = _lmul(ar, ai, er, ei)
        yr, yi = _lmul(br, bi, cr, ci)
        on_re[k], on_im[k] = _addmod(xr, yr), _addmod(xi, yi)
        od_re[k], od_im[k] = _lmul(cr, ci, er, ei)
    return on_re, on_im, od_re, od_im


@numba.njit(inline="always")
def _line(re, im, k):
    """A table's values at pair k: the value at 0 and the step to 1 (real, imaginary)."""
    lo = 2 * k
    return re[lo], im[lo], _submod(re[lo + 1], re[lo]), _submod(im[lo + 1], im[lo])


@numba.njit(inline="always")
def _term(qr, qi, ar, ai, br, bi, cr, ci, er, ei, l_re, l_im):
    """eq·(A E + B C + λ C E) at one point."""
    xr, xi = _lmul(ar, ai, er, ei)
    yr, yi = _lmul(br, bi, cr, ci)
    zr, zi = _lmul(cr, ci, er, ei)
    zr, zi = _lmul(zr, zi, l_re, l_im)
    return _lmul(qr, qi, _addmod(_addmod(xr, yr), zr), _addmod(_addmod(xi, yi), zi))


@kernel
def _round_values(q_re, q_im, a_re, a_im, b_re, b_im, c_re, c_im, e_re, e_im, l_re, l_im):
    """g(t) at t = 0, 2, 3 of Σ_x eq·(A E + B C + λ C E) with the lowest variable set to t
    (pairs 2k, 2k + 1, every table extended linearly in t); g(1) = claim − g(0) is the
    caller's."""
    out = np.zeros(6, dtype=np.uint64)
    for k in range(q_re.shape[0] // 2):
        qr, qi, dqr, dqi = _line(q_re, q_im, k)
        ar, ai, dar, dai = _line(a_re, a_im, k)
        br, bi, dbr, dbi = _line(b_re, b_im, k)
        cr, ci, dcr, dci = _line(c_re, c_im, k)
        er, ei, der, dei = _line(e_re, e_im, k)
        pr, pi = _term(qr, qi, ar, ai, br, bi, cr, ci, er, ei, l_re, l_im)
        out[0], out[1] = _addmod(out[0], pr), _addmod(out[1], pi)
        for slot in range(1, 3):  # t = 2, then t = 3
            steps = 2 if slot == 1 else 1
            for _ in range(steps):
                qr, qi = _addmod(qr, dqr), _addmod(qi, dqi)
                ar, ai = _addmod(ar, dar), _addmod(ai, dai)
                br, bi = _addmod(br, dbr), _addmod(bi, dbi)
                cr, ci = _addmod(cr, dcr), _addmod(ci, dci)
                er, ei = _addmod(er, der), _addmod(ei, dei)
            pr, pi = _term(qr, qi, ar, ai, br, bi, cr, ci, er, ei, l_re, l_im)
            out[2 * slot], out[2 * slot + 1] = (
                _addmod(out[2 * slot], pr),
                _addmod(out[2 * slot + 1], pi),
            )
    return out


@kernel
def _unit_round_values(q_re, q_im, c_re, c_im, e_re, e_im, l_re, l_im):
    """:func:`_round_values` for numerators that are all 1 (the lookup tree's leaves):
    Σ_x eq·(E + C + λ C E) at t = 0, 2, 3."""
    out = np.zeros(6, dtype=np.uint64)
    for k in range(q_re.shape[0] // 2):
        qr, qi, dqr, dqi = _line(q_re, q_im, k)
        cr, ci, dcr, dci = _line(c_re, c_im, k)
        er, ei, der, dei = _line(e_re, e_im, k)
        for slot in range(3):  # t = 0, 2, 3
            steps = 0 if slot == 0 else (2 if slot == 1 else 1)
            for _ in range(steps):
                qr, qi = _addmod(qr, dqr), _addmod(qi, dqi)
                cr, ci = _addmod(cr, dcr), _addmod(ci, dci)
                er, ei = _addmod(er, der), _addmod(ei, dei)
            zr, zi = _lmul(cr, ci, er, ei)
            zr, zi = _lmul(zr, zi, l_re, l_im)
            sr = _addmod(_addmod(er, cr), zr)
            si = _addmod(_addmod(ei, ci), zi)
            pr, pi = _lmul(qr, qi, sr, si)
            out[2 * slot] = _addmod(out[2 * slot], pr)
            out[2 * slot + 1] = _addmod(out[2 * slot + 1], pi)
    return out


def _base_pair(values: np.ndarray) -> X.Pair:
    return np.ascontiguousarray(values, dtype=np.uint64), np.zeros(len(values), np.uint64)


def _minus(alpha: X.Ext, values: np.ndarray) -> X.Pair:
    """α − v for a base array v."""
    re = F.sub(np.full(len(values), alpha[0], dtype=np.uint64), values)
    return np.ascontiguousarray(re), np.full(len(values), alpha[1], dtype=np.uint64)


def _half(table: X.Pair, upper: bool) -> X.Pair:
    half = len(table[0]) // 2
    cut = slice(half, None) if upper else slice(0, half)
    return np.ascontiguousarray(table[0][cut]), np.ascontiguousarray(table[1][cut])


def _exact_log2(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise InputError(f"{what} must be a power of two, got {n}")
    return n.bit_length() - 1


def multiplicities(lookups: np.ndarray, table_bits: int) -> np.ndarray:
    """How often each table entry is looked up; InputError if a lookup is outside the
    table (an honest prover cannot prove it)."""
    size = 1 << table_bits
    lookups = np.asarray(lookups, dtype=np.uint64)
    if lookups.size and int(lookups.max()) >= size:
        raise InputError(f"a lookup is outside the table [0, 2^{table_bits})")
    return np.bincount(lookups.astype(np.int64), minlength=size).astype(np.int64)


def _tree(numerators: X.Pair, denominators: X.Pair) -> list[tuple[X.Pair, X.Pair]]:
    """Every layer of a fraction tree, the leaves first, the root (one fraction) last."""
    tree = [(numerators, denominators)]
    while len(tree[-1][0][0]) > 1:
        (n_re, n_im), (d_re, d_im) = tree[-1]
        a, b, c, d = _parents(n_re, n_im, d_re, d_im)
        tree.append(((a, b), (c, d)))
    return tree


def _root(tree) -> tuple[X.Ext, X.Ext]:
    (n_re, n_im), (d_re, d_im) = tree[-1]
    return (int(n_re[0]), int(n_im[0])), (int(d_re[0]), int(d_im[0]))


class _Reduction:
    """One tree's prover state during the batched reduction."""

    def __init__(self, tree, unit_leaves: bool) -> None:
        self.tree, self.unit_leaves = tree, unit_leaves
        self.claim_n, self.claim_d = _root(tree)
        self.depth = len(tree) - 1

    def start(self, level: int, lam: X.Ext) -> X.Ext:
        """Load the halves of the layer below ``level``; the λ-combined claim."""
        numer, denom = self.tree[self.depth - level - 1]
        self.unit = self.unit_leaves and level == self.depth - 1
        self.tables = [_half(denom, False), _half(denom, True)]
        if not self.unit:
            self.tables = [_half(numer, False), _half(numer, True), *self.tables]
        self.lam = lam
        return X.add(self.claim_n, X.mul(lam, self.claim_d))

    def round_values(self, eq: X.Pair) -> list[X.Ext]:
        """g(0), g(2), g(3) of this tree's part of the round."""
        arrays = (*eq, *(part for t in self.tables for part in t))
        lam = (np.uint64(self.lam[0]), np.uint64(self.lam[1]))
        kernel_ = _unit_round_values if self.unit else _round_values
        return X.unflat(kernel_(*arrays, *lam).tolist())

    def bind(self, r: X.Ext) -> None:
        self.tables = [X.fold(t, r) for t in self.tables]

    def halves(self) -> list[X.Ext]:
        values = [(int(t[0][0]), int(t[1][0])) for t in self.tables]
        return [X.ONE, X.ONE, *values] if self.unit else values

    def descend(self, mu: X.Ext) -> None:
        a, b, c, e = self.halves()
        self.claim_n = X.add(a, X.mul(mu, X.sub(b, a)))
        self.claim_d = X.add(c, X.mul(mu, X.sub(e, c)))


def prove_range(lookups: np.ndarray, table_bits: int):
    """The prover's side (a channel generator) for lookups (2^L field elements, each an
    integer in [0, 2^table_bits))."""
    lookups = np.ascontiguousarray(lookups, dtype=np.uint64)
    _exact_log2(lookups.size, "the number of lookups")
    counts = multiplicities(lookups, table_bits)
    yield Send("multiplicities", counts)
    alpha = yield DRAW
    lookup_tree = _tree(_base_pair(np.ones(lookups.size, np.uint64)), _minus(alpha, lookups))
    table = np.arange(1 << table_bits, dtype=np.uint64)
    table_tree = _tree(_base_pair(F.neg(F.elements(counts))), _minus(alpha, table))
    trees = [_Reduction(lookup_tree, True), _Reduction(table_tree, False)]
    roots = [v for t in trees for v in (t.claim_n, t.claim_d)]
    yield Send("roots", X.flat(roots))
    point: list[X.Ext] = []
    for level in range(max(t.depth for t in trees)):
        active = [t for t in trees if level < t.depth]
        lam = yield DRAW
        rho = (yield DRAW) if len(active) > 1 else X.ONE
        weights = [X.ONE, rho][: len(active)]
        claim = X.ZERO
        for t, w in zip(active, weights, strict=True):
            claim = X.add(claim, X.mul(w, t.start(level, lam)))
        eq = X.eq_table(point)
        bound = []
        for _ in range(level):
            g0, g2, g3 = X.ZERO, X.ZERO, X.ZERO
            for t, w in zip(active, weights, strict=True):
                a, b, c = t.round_values(eq)
                g0, g2, g3 = X.add(g0, X.mul(w, a)), X.add(g2, X.mul(w, b)), X.add(g3, X.mul(w, c))
            g = [g0, X.sub(claim, g0), g2, g3]
            yield Send("round", X.flat(g))
            r = yield DRAW
            claim = X.interpolate(g, r)
            eq = X.fold(eq, r)
            for t in active:
                t.bind(r)
            bound.append(r)
        sent = []
        for t in active:
            if t.unit:
                sent += t.halves()[2:]
            elif level < t.depth - 1 or t.unit_leaves:
                sent += t.halves()
        if sent:
            yield Send("halves", X.flat(sent))
        mu = yield DRAW
        for t in active:
            t.descend(mu)
        point = bound + [mu]


def verify_range(
    channel: VerifierChannel,
    lookup_bits: int,
    table_bits: int,
    lookup_mle: Callable[[list[X.Ext]], X.Ext],
) -> None:
    """The verifier's side: returns if the lookups are in [0, 2^table_bits), raises
    :class:`ProofRejected` otherwise. ``lookup_mle(s)`` must give the lookups' MLE at
    s (``lookup_bits`` coordinates), from what the verifier itself holds."""
    if not 0 <= table_bits <= MAX_TABLE_BITS:
        raise InputError(f"table bits must be in [0, {MAX_TABLE_BITS}], got {table_bits}")
    counts = channel.receive("multiplicities", 1 << table_bits, array=True)
    if int(counts.sum()) != 1 << lookup_bits:
        raise ProofRejected(f"the multiplicities must add up to {1 << lookup_bits} lookups")
    alpha = channel.draw()
    ln, ld, tn, td = X.unflat(channel.receive("roots", 8))
    if X.add(X.mul(ln, td), X.mul(tn, ld)) != X.ZERO:
        raise ProofRejected("range check: the fractions do not sum to zero")
    if X.mul(ld, td) == X.ZERO:
        raise ProofRejected("range check: a zero denominator")
    counts_field = F.elements(counts)

    def table_leaf(point: list[X.Ext]) -> tuple[X.Ext, X.Ext]:
        identity = X.ZERO
        for i, coordinate in enumerate(point):
            identity = X.add(identity, X.scale(coordinate, pow(2, i, F.P)))
        return X.sub(X.ZERO, X.mle_base(counts_field, point)), X.sub(alpha, identity)

    depths = {"lookups": lookup_bits, "table": table_bits}
    claims = {"lookups": (ln, ld), "table": (tn, td)}
    point: list[X.Ext] = []
    lookup_point: list[X.Ext] = []
    for level in range(max(depths.values())):
        active = [name for name in ("lookups", "table") if level < depths[name]]
        lam = channel.draw()
        rho = channel.draw() if len(active) > 1 else X.ONE
        weights = dict(zip(active, [X.ONE, rho], strict=False))
        claim = X.ZERO
        for name in active:
            n, d = claims[name]
            claim = X.add(claim, X.mul(weights[name], X.add(n, X.mul(lam, d))))
        bound = []
        for i in range(level):
            g = X.unflat(channel.receive("round", 8))
            if X.add(g[0], g[1]) != claim:
                raise ProofRejected(f"range check level {level + 1}, round {i + 1}: "
                                    "sums do not match")  # fmt: skip
            r = channel.draw()
            claim = X.interpolate(g, r)
            bound.append(r)
        sizes = {name: 4 if level == depths[name] - 1 and name == "lookups" else
                 (0 if level == depths[name] - 1 else 8) for name in active}  # fmt: skip
        count = sum(sizes.values())  # integers: 8 for four halves, 4 for D_lo and D_hi
        received = X.unflat(channel.receive("halves", count)) if count else []
        halves, expected = {}, X.ZERO
        for name in active:
            if sizes[name] == 8:
                halves[name], received = received[:4], received[4:]
            elif sizes[name] == 4:
                halves[name], received = [X.ONE, X.ONE, *received[:2]], received[2:]
            else:  # the table's leaves: the verifier's own
                (a, c), (b, e) = table_leaf(bound + [X.ZERO]), table_leaf(bound + [X.ONE])
                halves[name] = [a, b, c, e]
            a, b, c, e = halves[name]
            combined = X.add(X.add(X.mul(a, e), X.mul(b, c)), X.mul(lam, X.mul(c, e)))
            expected = X.add(expected, X.mul(weights[name], combined))
        if X.mul(X.eq_value(point, bound), expected) != claim:
            raise ProofRejected(f"range check level {level + 1}: final check failed")
        mu = channel.draw()
        for name in active:
            a, b, c, e = halves[name]
            claims[name] = (X.add(a, X.mul(mu, X.sub(b, a))), X.add(c, X.mul(mu, X.sub(e, c))))
        point = bound + [mu]
        if level == lookup_bits - 1:
            lookup_point = point  # where the lookup tree's leaves are claimed
    lookup_n, lookup_d = claims["lookups"]
    at = lookup_point if lookup_bits else []
    if lookup_n != X.ONE or lookup_d != X.sub(alpha, lookup_mle(list(at))):
        raise ProofRejected("range check: the lookups' leaves do not match")
    if table_bits == 0 and claims["table"] != table_leaf([]):
        raise ProofRejected("range check: the table's leaves do not match")
