"""Dishonest provers against the int8 proofs (:mod:`vtrust.proofs.int8.protocol`): each
changes one value of the computation by the smallest step and then proves as well as
it can — every later layer, quotient and range proof computed consistently from the
changed value, and any remainder the change pushed outside its table proven as if it
were inside (its residue mod 2^T). A sound verifier rejects every one.

* ``relu``: one ReLU output one higher — the prover claims an accumulator just large
  enough that the rounding gives z + 1, and proves everything from it;
* ``rounding``: one quotient off by one (a requantisation rounded the wrong way), the
  accumulators kept;
* ``maxpool``: one max-pool window answers its second-largest value;
* ``output``: one output (logit) one higher;
* ``add``: one residual add's output one higher;
* ``wraparound``: one quotient raised by 2^(61−T), so that its remainder is d − 1 modulo
  p = 2^61 − 1 — inside the table — while the activation it gives is 127; everything
  later computed from the forged activation (what a verifier without quotient bounds
  accepted: found while building this catalog).

:func:`cheating_prover` returns the prover generator, for either mode (interactive
channel or Fiat–Shamir); the catalog's ``int8-dishonest-prover`` entries
(``attacks/int8-*.toml``) run one against the verifier (:meth:`DishonestProver.attempt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vtrust.catalog import register
from vtrust.errors import InputError, ProofRejected
from vtrust.proofs import field as F
from vtrust.proofs.channel import InteractiveChannel, prove_fiat_shamir
from vtrust.proofs.int8.mle import padded_dims
from vtrust.proofs.int8.network import (
    INT8_MAX,
    Add,
    Int8Network,
    MaxPool,
    Requant,
    channel_multipliers,
    requantise,
    rounded,
)
from vtrust.proofs.int8.protocol import (
    Witness,
    plan,
    prover,
    statement,
    verify,
    verify_noninteractive,
    witness,
)

Cheat = Literal["relu", "rounding", "maxpool", "output", "add", "wraparound"]
CHEATS: tuple[Cheat, ...] = ("relu", "rounding", "maxpool", "output", "add", "wraparound")


def cheating_prover(network: Int8Network, x: np.ndarray, cheat: Cheat, *, layer: int | None = None):
    """A prover generator for inputs x that commits ``cheat`` (see the module) at the
    first suitable place (in layer ``layer`` if given); InputError if there is none."""
    x = network.check_inputs(x)
    if cheat in ("rounding", "wraparound") and not plan(network, len(x)):
        raise InputError("the network has no requantised layer to cheat in")
    if cheat == "rounding":
        values = network.forward(x)
        return prover(network, x, values, _off_by_one_quotient(network, values, layer))
    if cheat == "wraparound":
        return _wraparound(network, x)
    if cheat == "output":
        values = network.forward(x)
        values[-1] = values[-1].copy()
        values[-1].flat[0] += 1
        return prover(network, x, values)
    kind = {"relu": Requant, "maxpool": MaxPool, "add": Add}[cheat]
    target = _first(network, kind, layer)
    if cheat == "add":
        values = _effective_add(network, x, target)
    else:

        def tamper(i: int, v: np.ndarray) -> np.ndarray:
            if cheat == "relu" and i == target - 1:
                return _relu_up(network, i, v)
            if cheat == "maxpool" and i == target:
                return _second_largest(network, i, x, v)
            return v

        values = network.forward(x, tamper)
    # the tampered values come through consistently; the witness is derived from them,
    # with remainders the change pushed out of range proven by their residues
    return prover(network, x, values, _residues(network, values))


def _wraparound(network: Int8Network, x: np.ndarray):
    """The ``wraparound`` prover (see the module)."""
    honest = network.forward(x)
    block, w = plan(network, len(x))[0], witness(network, honest)[0]
    requant, t = network.layers[block.index + 1], block.table_bits
    dims = padded_dims(w.quotients.shape)
    z = requant.apply(w.quotients, t)
    remainders = w.remainders.astype(np.int64)
    for position in range(w.quotients.size):
        where = np.unravel_index(position, w.quotients.shape)
        padded = int(np.ravel_multi_index(where, dims))
        if remainders[padded] >= 1 and z[where] < requant.high:
            break
    else:
        raise InputError("no remainder of at least 1 below an unclamped activation")
    quotients = w.quotients.copy()
    quotients[where] += 1 << (61 - t)
    remainders[padded] -= 1
    forged = Witness(quotients, F.elements(remainders))

    def tamper(i: int, v: np.ndarray) -> np.ndarray:
        if i != block.index + 1:
            return v
        out = v.copy()
        out[where] = requant.apply(quotients, t)[where]
        return out

    values = network.forward(x, tamper)
    witnesses = witness(network, values)
    witnesses[0] = forged
    return prover(network, x, values, witnesses)


def _effective_add(network: Int8Network, x: np.ndarray, target: int) -> list[np.ndarray]:
    """The forward values with one output of the add ``target`` one higher — the first
    entry whose change reaches a later quotient or output (a change a max-pool or a
    rounding swallows is no cheat: the claimed computation would be the true one)."""
    honest = network.forward(x)
    blocks = plan(network, len(x))
    later = [w.quotients for b, w in zip(blocks, witness(network, honest), strict=True)
             if b.index > target]  # fmt: skip
    for position in np.flatnonzero(honest[target + 1].ravel() < INT8_MAX)[:256]:

        def tamper(i: int, v: np.ndarray, position=position) -> np.ndarray:
            if i != target:
                return v
            out = v.copy()
            out.flat[position] += 1
            return out

        values = network.forward(x, tamper)
        changed = [w.quotients for b, w in zip(blocks, witness(network, values), strict=True)
                   if b.index > target]  # fmt: skip
        if not np.array_equal(values[-1], honest[-1]) or any(
            not np.array_equal(a, b) for a, b in zip(later, changed, strict=True)
        ):
            return values
    raise InputError("no add output whose change reaches the outputs")


def _first(network: Int8Network, kind: type, layer: int | None) -> int:
    for i, candidate in enumerate(network.layers):
        if isinstance(candidate, kind) and (layer is None or i == layer):
            return i
    raise InputError(f"the network has no {kind.__name__} layer to cheat in")


def _relu_up(network: Int8Network, i: int, acc: np.ndarray) -> np.ndarray:
    """Accumulators of linear layer i with one entry raised until its requantised value
    is one higher (an entry inside the clamp)."""
    requant = network.layers[i + 1]
    m = channel_multipliers(requant, acc.shape[1])
    z = requantise(acc, requant)
    candidates = np.argwhere((z > requant.low) & (z < requant.high))
    if not len(candidates):
        raise InputError("no unclamped activation to raise")
    where = tuple(candidates[0])
    step = -(-(1 << requant.shift) // int(m[where[1]]))  # ⌈2^k / M⌉ raises t by one
    out = acc.copy()
    while requantise(out[where[0] : where[0] + 1], requant)[(0, *where[1:])] == z[where]:
        out[where] += step  # a post-shift needs t raised several times
    return out


def _second_largest(network: Int8Network, i: int, x: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """The max-pool's output with one window answering its second-largest value (a
    window whose two largest differ)."""
    size = network.layers[i].size
    before = network.forward(x)[i]  # the pool's input
    n, c, h, w = pooled.shape
    windows = before[:, :, : h * size, : w * size].reshape(n, c, h, size, w, size)
    ordered = np.sort(windows.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w, -1), axis=-1)
    second, first = ordered[..., -2], ordered[..., -1]
    where = np.argwhere(second < first)
    if not len(where):
        raise InputError("every max-pool window has a tie at the top")
    out = pooled.copy()
    out[tuple(where[0])] = second[tuple(where[0])]
    return out


def _off_by_one_quotient(network, values, layer) -> list[Witness]:
    honest = witness(network, values)
    blocks = plan(network, len(values[0]))
    k = 0 if layer is None else next(j for j, b in enumerate(blocks) if b.index + 1 == layer)
    w = honest[k]
    quotients = w.quotients.copy()
    quotients.flat[0] += 1
    honest[k] = _with_quotients(network, values, blocks[k], quotients)
    return honest


def _with_quotients(network, values, block, quotients) -> Witness:
    """The witness for given quotients: remainders from the true accumulators, residues
    mod 2^T where they fall outside the table."""
    acc, requant = values[block.index + 1], network.layers[block.index + 1]
    a = rounded(acc, requant)
    fill = (1 << (requant.shift - 1)) % (1 << block.table_bits)
    d = np.full(padded_dims(acc.shape), fill, dtype=np.int64)
    d[tuple(slice(0, s) for s in acc.shape)] = (a - (quotients << block.table_bits)) % (
        1 << block.table_bits
    )
    return Witness(quotients, F.elements(d.ravel()))


def _residues(network, values) -> list[Witness]:
    """The witness of (tampered) values, every remainder reduced into its table."""
    blocks = plan(network, len(values[0]))
    out = []
    for block, w in zip(blocks, witness(network, values), strict=True):
        out.append(_with_quotients(network, values, block, w.quotients))
    return out


@dataclass(frozen=True)
class CheatParams:
    """Which cheat (see the module) and in which mode the verifier is attacked."""

    cheat: Cheat = "relu"
    mode: Literal["fiat-shamir", "interactive"] = "fiat-shamir"

    def __post_init__(self) -> None:
        if self.cheat not in CHEATS:
            raise InputError(f"cheat must be one of {', '.join(CHEATS)}, not {self.cheat!r}")
        if self.mode not in ("fiat-shamir", "interactive"):
            raise InputError(f"mode must be fiat-shamir or interactive, not {self.mode!r}")


class DishonestProver:
    """A catalog attack on the int8 verifier: the promise is broken if it accepts."""

    kind = "int8-dishonest-prover"

    def __init__(self, params: CheatParams) -> None:
        self.params = params

    def attempt(self, network: Int8Network, x: np.ndarray) -> dict[str, Any]:
        """Run the cheat against the verifier (its own network and inputs)."""
        from vtrust.proofs.protocol import RandomChallenges

        p = self.params
        forged = cheating_prover(network, x, p.cheat)
        try:
            if p.mode == "interactive":
                verify(
                    network, network.check_inputs(x), InteractiveChannel(forged, RandomChallenges())
                )
            else:
                messages = prove_fiat_shamir(forged, statement(network, network.check_inputs(x)))
                verify_noninteractive(network, x, messages)
        except ProofRejected as exc:
            return {"cheat": p.cheat, "mode": p.mode, "accepted": False, "reason": exc.reason}
        return {"cheat": p.cheat, "mode": p.mode, "accepted": True, "reason": ""}


register(
    "attacks", "int8-dishonest-prover", CheatParams,
    "verifiable inference for int8 networks: a prover that cheats by the smallest step",
)(DishonestProver)  # fmt: skip


def attack_verifier(network: Int8Network, x: np.ndarray, modes=("fiat-shamir", "interactive"),
                    ) -> list[dict[str, Any]]:  # fmt: skip
    """Every ``int8-dishonest-prover`` of the attack catalog against the verifier of
    ``network`` on inputs x, in each mode: one row per (entry, mode) with ``accepted``
    (True: the promise is broken), or ``applicable`` False where the network has no
    layer the cheat needs (an add, a max-pool)."""
    import dataclasses

    from vtrust.catalog import list_entries

    rows = []
    for entry in list_entries("attacks"):
        if entry.kind != DishonestProver.kind:
            continue
        for mode in modes:
            attack = entry.build()
            attack.params = dataclasses.replace(attack.params, mode=mode)
            try:
                row = attack.attempt(network, x)
            except InputError as exc:  # the cheat needs a layer this network lacks
                row = {"cheat": attack.params.cheat, "mode": mode, "accepted": False,
                       "applicable": False, "reason": str(exc)}  # fmt: skip
            rows.append({"attack": entry.name, "applicable": True, **row})
    return rows
