"""Judging metering: what a thief gets for the queries it pays for, and whether a host
that cheats its meter is caught.

* :func:`bought_fidelity`: the thief no answer-changing defense stops (in-distribution
  queries, top-1 labels) against a metered device granted each budget in turn; the
  meter is the only thing that stops it. Per budget: queries answered, the thief's
  fidelity and accuracy, and the owner's reconciled count.
* :func:`cheating_hosts`: a host that rolls its enclave back (with and without a
  platform counter), replays a report, skips one, or edits one — and what caught it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from vtrust import progress
from vtrust.attacks.base import AttackerResources
from vtrust.catalog import Entry
from vtrust.data import Splits
from vtrust.enclave.metered_device import MeteredDevice
from vtrust.enclave.metering import PlatformCounter, RollbackDetected
from vtrust.enclave.usage_ledger import UsageLedger
from vtrust.errors import MeteringViolation, QueryRefused
from vtrust.evaluation.attacks import evaluate_thief
from vtrust.oracle import Oracle, OutputMode

DEVICE = "device-0"


def metered(model: nn.Module, *, counter: bool = True) -> tuple[UsageLedger, MeteredDevice]:
    """A fresh owner ledger and one device provisioned for it (no budget yet)."""
    ledger = UsageLedger.generate()
    device = MeteredDevice(model, device=DEVICE, owner_public=ledger.owner_public,
                           counter=PlatformCounter() if counter else None)  # fmt: skip
    ledger.register(DEVICE, device.meter_public)
    return ledger, device


def bought_fidelity(
    victim: nn.Module, splits: Splits, attack: Entry, budgets: Sequence[int], *, seed: int = 0
) -> list[dict[str, Any]]:
    """For each budget: the ``attack`` (label-only answers) against a device granted
    exactly that many queries, with the attack's own budget far above it."""
    rows = []
    for budget in progress.bar(list(budgets), desc="budgets"):
        ledger, device = metered(victim)
        device.apply(ledger.grant(DEVICE, budget))
        oracle = Oracle(device.target(splits.input_shape), output=OutputMode.LABELS)
        params = dataclasses.replace(attack.params, budget=10 * max(budgets))
        result = (
            dataclasses.replace(attack, params=params)
            .build()
            .run(AttackerResources(oracle, data=splits.attacker, client_id="thief"), seed=seed)
        )
        reconciled = ledger.reconcile(device.report()).count
        progress.stage(f"[metering] budget {budget}: {result.queries} answered, "
                       f"stopped: {result.stopped}")  # fmt: skip
        rows.append({"budget": budget, "queries": result.queries, "reconciled": reconciled,
                     "stopped_by_meter": bool(result.stopped and "meter" in result.stopped),
                     **evaluate_thief(result.thief, victim, splits.test)})  # fmt: skip
    return rows


def _answers(device: MeteredDevice, x: np.ndarray) -> int:
    try:
        return len(device.query(x))
    except QueryRefused as spent:
        return len(spent.answered)


def _caught(run: Callable[[], Any]) -> str | None:
    """What caught a cheat: the enclave (``enclave``) or the owner (the violation kind)."""
    try:
        run()
    except RollbackDetected:
        return "enclave: rollback"
    except MeteringViolation as violation:
        return f"owner: {violation.kind}"
    return None


def cheating_hosts(model: nn.Module, x: np.ndarray, *, budget: int = 100) -> list[dict[str, Any]]:
    """Each way a host can cheat its meter, tried once: what it gained (answers beyond
    what the owner reconciled) and what caught it (``None``: nothing)."""
    out = []

    def rollback(counter: bool) -> dict[str, Any]:
        ledger, device = metered(model, counter=counter)
        device.apply(ledger.grant(DEVICE, budget))
        ledger.reconcile(device.report())
        old = device.sealed
        _answers(device, x[:budget])
        ledger.reconcile(device.report())
        extra = {"answers": 0}

        def attempt() -> None:
            device.restart(old)
            extra["answers"] = _answers(device, x[:budget])
            ledger.reconcile(device.report())

        caught = _caught(attempt)
        return {"cheat": "rollback" + ("" if counter else " (no platform counter)"),
                "caught_by": caught, "answers_before_caught": extra["answers"]}  # fmt: skip

    out += [rollback(True), rollback(False)]
    for cheat in ("replay", "skip", "edit"):
        ledger, device = metered(model)
        device.apply(ledger.grant(DEVICE, budget))
        first = device.report()
        ledger.reconcile(first)
        _answers(device, x[: budget // 2])
        second = device.report()
        attempt = {
            "replay": lambda ledger=ledger, first=first: ledger.reconcile(first),
            "skip": lambda ledger=ledger, device=device: ledger.reconcile(device.report()),
            "edit": lambda ledger=ledger, second=second: ledger.reconcile(
                dataclasses.replace(second, count=0)
            ),
        }[cheat]
        out.append({"cheat": cheat, "caught_by": _caught(attempt), "answers_before_caught": 0})
    return out
