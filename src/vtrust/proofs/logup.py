"""Range checks by LogUp-GKR (Papini & Haböck, eprint 2023/1284): every one of a vector
of lookups ``d`` (2^L field elements) lies in the table [0, 2^T).

LogUp turns the multiset inclusion into one identity of rational functions in a fresh
challenge α,

    Σ_i 1 / (α − d_i)  =  Σ_{t < 2^T} m_t / (α − t),

with the multiplicities m (how often each t is looked up) sent in the clear. The
identity holds for random α only if every d_i is in the table (both sides are the same
rational function exactly when the multisets agree; the characteristic p = 2^61 − 1
exceeds every count). The sum of fractions is proven by GKR over a binary tree whose
leaves are the 2·S fractions (S = 2^max(L, T)): lookups ``1 / (α − d_i)`` (padded with
lookups of 0) and table entries ``−m_t / (α − t)`` (padded with 0 / (α − t)). A parent is
``(n_lo d_hi + n_hi d_lo) / (d_lo d_hi)`` of its two children, paired on the top
variable; the root must be 0 / (nonzero).

Messages: ``multiplicities`` (2^T non-negative integers), then α; ``fraction`` — the
two fractions below the root (4 elements of F_{p^2}); then for each level j = 1, …, v−1
(v = log2(2S)) a random μ and λ, a sum-check of j degree-3 rounds for

    Ñ_j(r) + λ D̃_j(r) = Σ_x eq(r, x)·[N_lo D_hi + N_hi D_lo + λ D_lo D_hi](x),

and, below the leaves, ``halves``: N_lo, N_hi, D_lo, D_hi at the bound point. At the
leaves the verifier evaluates all four itself: the table side from m and the identity
MLE Σ 2^i s_i, the lookup side from ``lookup_mle`` — the caller's own evaluation of the
lookups' MLE (for requantisation: from the weights and inputs it holds and the
quotients it read), so nothing the prover says about d is taken on trust.

Soundness error (union bound, challenges in F_{p^2}): α — (2S + 2^T)/|F| (the
identity's numerator has degree < 2S + 2^T after clearing denominators); per level j,
3j/|F| for the sum-check plus 2/|F| for λ and μ. The largest single-challenge error is
α's: :func:`noninteractive_bits` is what a grinding prover faces.
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


def leaves(lookup_bits: int, table_bits: int) -> int:
    """S: the padded size of each side of the tree (at least 2)."""
    return 1 << max(lookup_bits, table_bits, 1)


def rounds(lookup_bits: int, table_bits: int) -> int:
    """Sum-check rounds of one range proof: Σ_{j=1}^{v−1} j."""
    levels = max(lookup_bits, table_bits, 1)  # v − 1
    return levels * (levels + 1) // 2


def soundness_error(lookup_bits: int, table_bits: int) -> float:
    """Interactive soundness error of one range proof (see the module)."""
    levels = max(lookup_bits, table_bits, 1)
    alpha = (2 * leaves(lookup_bits, table_bits) + (1 << table_bits)) / CHALLENGE_FIELD_SIZE
    return alpha + sum(3 * j + 2 for j in range(1, levels + 1)) / CHALLENGE_FIELD_SIZE


def noninteractive_bits(lookup_bits: int, table_bits: int) -> float:
    """−log2 of the largest single-challenge error (α's) — the Fiat–Shamir level."""
    alpha = (2 * leaves(lookup_bits, table_bits) + (1 << table_bits)) / CHALLENGE_FIELD_SIZE
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


def multiplicities(lookups: np.ndarray, table_bits: int) -> np.ndarray:
    """How often each table entry is looked up, the padding lookups of 0 included;
    InputError if a lookup is outside the table (an honest prover cannot prove it)."""
    size = 1 << table_bits
    lookups = np.asarray(lookups, dtype=np.uint64)
    if lookups.size and int(lookups.max()) >= size:
        raise InputError(f"a lookup is outside the table [0, 2^{table_bits})")
    counts = np.bincount(lookups.astype(np.int64), minlength=size).astype(np.int64)
    lookup_bits = int(lookups.size).bit_length() - 1
    counts[0] += leaves(lookup_bits, table_bits) - lookups.size
    return counts


def prove_range(lookups: np.ndarray, table_bits: int):
    """The prover's side (a channel generator) for lookups (2^L field elements, each an
    integer in [0, 2^table_bits))."""
    lookups = np.ascontiguousarray(lookups, dtype=np.uint64)
    lookup_bits = _exact_log2(lookups.size, "the number of lookups")
    size = leaves(lookup_bits, table_bits)
    counts = multiplicities(lookups, table_bits)
    yield Send("multiplicities", counts)
    alpha = yield DRAW
    padded = np.zeros(size, dtype=np.uint64)
    padded[: lookups.size] = lookups
    numerators = np.zeros(2 * size, dtype=np.uint64)
    numerators[:size] = 1
    numerators[size : size + counts.size] = F.neg(F.elements(counts))
    lookup_den = _minus(alpha, padded)
    table_den = _minus(alpha, np.arange(size, dtype=np.uint64))
    tree = [(_base_pair(numerators), (np.concatenate([lookup_den[0], table_den[0]]),
                                      np.concatenate([lookup_den[1], table_den[1]])))]  # fmt: skip
    while len(tree[-1][0][0]) > 2:
        (n_re, n_im), (d_re, d_im) = tree[-1]
        a, b, c, d = _parents(n_re, n_im, d_re, d_im)
        tree.append(((a, b), (c, d)))
    (n_re, n_im), (d_re, d_im) = tree[-1]
    top = [(int(n_re[0]), int(n_im[0])), (int(n_re[1]), int(n_im[1])),
           (int(d_re[0]), int(d_im[0])), (int(d_re[1]), int(d_im[1]))]  # fmt: skip
    yield Send("fraction", X.flat(top))
    point: list[X.Ext] = []
    halves = top
    for level in range(len(tree) - 2, -1, -1):  # the layer being reduced to: tree[level]
        mu = yield DRAW
        lam = yield DRAW
        a, b, c, e = halves
        claim = X.add(
            X.add(a, X.mul(mu, X.sub(b, a))), X.mul(lam, X.add(c, X.mul(mu, X.sub(e, c))))
        )
        point = point + [mu]
        numer, denom = tree[level]
        tables = [_half(numer, False), _half(numer, True), _half(denom, False), _half(denom, True)]
        eq = X.eq_table(point)
        bound = []
        for _ in range(len(point)):
            arrays = (*eq, *(part for t in tables for part in t))
            g0, g2, g3 = X.unflat(
                _round_values(*arrays, np.uint64(lam[0]), np.uint64(lam[1])).tolist()
            )
            g = [g0, X.sub(claim, g0), g2, g3]
            yield Send("round", X.flat(g))
            r = yield DRAW
            claim = X.interpolate(g, r)
            eq = X.fold(eq, r)
            tables = [X.fold(t, r) for t in tables]
            bound.append(r)
        halves = [(int(t[0][0]), int(t[1][0])) for t in tables]
        if level > 0:
            yield Send("halves", X.flat(halves))
        point = bound
    return


def verify_range(
    channel: VerifierChannel,
    lookup_bits: int,
    table_bits: int,
    lookup_mle: Callable[[list[X.Ext]], X.Ext],
) -> None:
    """The verifier's side: returns if the lookups are in [0, 2^table_bits), raises
    :class:`ProofRejected` otherwise. ``lookup_mle(s)`` must give the MLE at s (of
    log2 S coordinates) of the lookups padded with zeros to S entries, from what the
    verifier itself holds."""
    if not 0 <= table_bits <= MAX_TABLE_BITS:
        raise InputError(f"table bits must be in [0, {MAX_TABLE_BITS}], got {table_bits}")
    size = leaves(lookup_bits, table_bits)
    levels = size.bit_length() - 1  # v − 1
    counts = channel.receive("multiplicities", 1 << table_bits, array=True)
    if int(counts.sum()) != size:
        raise ProofRejected(f"the multiplicities must add up to {size} lookups")
    alpha = channel.draw()
    n0, n1, d0, d1 = X.unflat(channel.receive("fraction", 8))
    if X.add(X.mul(n0, d1), X.mul(n1, d0)) != X.ZERO:
        raise ProofRejected("range check: the fractions do not sum to zero")
    if X.mul(d0, d1) == X.ZERO:
        raise ProofRejected("range check: a zero denominator")
    point: list[X.Ext] = []
    halves = (n0, n1, d0, d1)
    for level in range(1, levels + 1):
        mu, lam = channel.draw(), channel.draw()
        a, b, c, e = halves
        claim_n = X.add(a, X.mul(mu, X.sub(b, a)))
        claim_d = X.add(c, X.mul(mu, X.sub(e, c)))
        point = point + [mu]
        claim = X.add(claim_n, X.mul(lam, claim_d))
        bound = []
        for i in range(level):
            g = X.unflat(channel.receive("round", 8))
            if X.add(g[0], g[1]) != claim:
                raise ProofRejected(
                    f"range check level {level}, round {i + 1}: g(0) + g(1) ≠ claim"
                )
            r = channel.draw()
            claim = X.interpolate(g, r)
            bound.append(r)
        if level < levels:
            halves = tuple(X.unflat(channel.receive("halves", 8)))
        else:
            halves = _leaf_values(bound, alpha, counts, table_bits, lookup_mle)
        a, b, c, e = halves
        combined = X.add(X.add(X.mul(a, e), X.mul(b, c)), X.mul(lam, X.mul(c, e)))
        if X.mul(X.eq_value(point, bound), combined) != claim:
            raise ProofRejected(f"range check level {level}: final check failed")
        point = bound


def _leaf_values(s, alpha, counts, table_bits, lookup_mle):
    """N_lo, N_hi, D_lo, D_hi at s, from the verifier's own data."""
    beyond = X.ONE  # Π_{i ≥ T} (1 − s_i): the table's real entries
    for coordinate in s[table_bits:]:
        beyond = X.mul(beyond, X.sub(X.ONE, coordinate))
    counts_mle = X.mle_base(F.elements(counts), list(s[:table_bits]))
    table_numerator = X.sub(X.ZERO, X.mul(counts_mle, beyond))
    identity = X.ZERO
    for i, coordinate in enumerate(s):
        identity = X.add(identity, X.scale(coordinate, pow(2, i, F.P)))
    table_den = X.sub(alpha, identity)
    lookup_den = X.sub(alpha, lookup_mle(list(s)))
    return X.ONE, table_numerator, lookup_den, table_den


def _exact_log2(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise InputError(f"{what} must be a power of two, got {n}")
    return n.bit_length() - 1
