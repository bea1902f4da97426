"""The host side of a metered device: the model inside a metering enclave, the newest
sealed meter state the host stores, restarts, and the device as a black-box target.

The host is the adversary here: it holds every sealed state the enclave ever handed
out and may restart the enclave from any of them (:meth:`MeteredDevice.restart`),
deliver reports or not, and replay old ones. What it cannot do is open a sealed state,
sign a report or a grant, or move the platform counter back (see
:mod:`vtrust.enclave.metering` for what each attempt runs into).
"""

from __future__ import annotations

import secrets

import numpy as np
from torch import nn

from vtrust.enclave import metering as m
from vtrust.enclave.runtime import Enclave
from vtrust.errors import InputError, QueryRefused
from vtrust.targets.base import InputSpec, Target

METER_ROLE = "meter"


class MeteredDevice:
    """A model answering through a metering enclave on a host-controlled device.

    Args:
        model: the deployed model (canonical images → logits); it stays inside.
        device: the device id the owner registered.
        owner_public: the owner's grant-signing public key (hex).
        counter: the platform's monotonic counter; ``None`` models a TEE without one
            (rollbacks are then caught only by the owner's reconciliation).
    """

    def __init__(self, model: nn.Module, *, device: str, owner_public: str,
                 counter: m.PlatformCounter | None = None) -> None:  # fmt: skip
        self._model = model
        self._root = secrets.token_bytes(32)  # the device's fused key (simulated)
        self.device = device
        self.counter = counter
        self.enclave = self._boot()
        self.meter_public, self.sealed = self.enclave.ecall(
            m.meter_provision, device, owner_public, counter
        )
        spec = getattr(model, "spec", None)  # a zoo model knows its shapes
        self.input_shape = tuple(getattr(spec, "input_shape", ()) or ())
        self.n_classes = int(getattr(spec, "n_classes", 0) or 0)

    def _boot(self) -> Enclave:
        return Enclave(self._model, role=METER_ROLE, entry_points=m.ENTRY_POINTS,
                       root_secret=self._root)  # fmt: skip

    def restart(self, sealed: bytes | None = None) -> None:
        """Restart the enclave (a reboot) from ``sealed`` — by default the newest state;
        an older one is what a rollback hands it. :class:`~vtrust.enclave.metering.
        RollbackDetected` if the platform counter shows the state is old;
        :class:`~vtrust.errors.MeteringError` if it is not a sealed meter state."""
        state = self.sealed if sealed is None else sealed
        self.enclave = self._boot()
        self.enclave.ecall(m.meter_resume, state, self.counter)
        self.sealed = state

    def query(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for as many rows of ``x`` as the budget allows; past it,
        :class:`~vtrust.errors.QueryRefused` (by ``meter``) carrying those answered."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        probs, self.sealed, before = self.enclave.ecall(m.meter_answer, x)
        if len(probs) < len(x):
            raise QueryRefused(self.device, "meter", before,
                               "the device's query budget is spent", probs)  # fmt: skip
        return probs

    def report(self) -> m.UsageReport:
        """Have the enclave sign the next usage report (for the owner)."""
        doc, self.sealed = self.enclave.ecall(m.meter_report)
        return m.UsageReport.from_json(doc)

    def apply(self, grant: m.BudgetGrant) -> None:
        """Hand the owner's budget grant to the enclave."""
        self.sealed = self.enclave.ecall(m.meter_grant, grant.to_json())

    def target(self, input_shape: tuple[int, int, int] | None = None) -> Target:
        """The device as a black-box target (answers are the enclave's probabilities;
        past the budget a query raises QueryRefused). No probe query is spent."""
        shape = tuple(input_shape or self.input_shape)
        if len(shape) != 3:
            raise InputError("a metered device as a target needs the model's (C, H, W)")
        n_classes = self.n_classes or _classes(self._model, shape)
        return Target(spec=InputSpec(shape), n_classes=n_classes, run=self.query,
                      outputs="probabilities", provenance={"format": "metered-device",
                                                           "device": self.device},
                      white_box_reason="the model runs inside the device's enclave")  # fmt: skip


def _classes(model: nn.Module, shape: tuple[int, ...]) -> int:
    """The class count, from one forward pass outside the meter (the owner's own copy)."""
    import torch

    with torch.no_grad():
        return int(model.eval()(torch.zeros((1, *shape))).shape[1])
