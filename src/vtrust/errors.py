"""The exceptions vtrust raises on bad input.

Every error a user can cause by handing vtrust a wrong file, option or value is a
:class:`VtrustError`. The CLI turns these into a one-line message and exit code 2;
anything else escaping is a bug. Each class also subclasses the builtin exception a
caller would already catch for that kind of problem (``ValueError`` for bad values).
"""

from __future__ import annotations


class VtrustError(Exception):
    """Base class of every error caused by the caller's input or files."""


class InputError(VtrustError, ValueError):
    """A value, option or array given by the caller is unusable (wrong shape, range, name)."""


class DatasetError(VtrustError, ValueError):
    """A dataset specification or data file is missing or malformed."""


class ModelFileError(VtrustError, ValueError):
    """A model file is truncated, corrupted, of an unknown version or architecture."""


class CatalogError(VtrustError, ValueError):
    """A catalog entry (TOML file) is missing, malformed or names unknown settings."""


class QueryRefused(VtrustError):
    """An oracle defense refused to answer a client's query.

    Attributes:
        client_id: the client whose query was refused.
        defense: the name of the defense that refused it.
        queries: how many of the client's queries had been answered before the refusal.
        answered: the outputs of the refused call's queries answered before the refusal
            (an array, possibly empty), so an attack can keep what it got.
    """

    def __init__(
        self,
        client_id: str,
        defense: str,
        queries: int,
        reason: str = "",
        answered: object = None,
    ) -> None:
        self.client_id = client_id
        self.answered = answered
        self.defense = defense
        self.queries = queries
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"defense {defense!r} refused client {client_id!r} after {queries} queries{detail}"
        )


class StateFileError(VtrustError, ValueError):
    """A saved defense-state file is truncated, malformed or from another detector."""


class CircuitError(VtrustError, ValueError):
    """A network cannot be compiled to a circuit: unsupported layer, or a bit width at
    which some value could wrap around the field."""


class ProofRejected(VtrustError):
    """A proof did not verify, or its file is malformed. ``reason`` says which check
    failed; the CLI prints it and exits with 1."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"proof rejected: {reason}")


class KeyFileError(VtrustError, ValueError):
    """A key or key file is missing, malformed, tampered with or of another version."""


class SealError(VtrustError, ValueError):
    """A sealed file could not be opened: it was tampered with, truncated, or the key is
    wrong (authenticated encryption cannot tell these apart, and says so)."""


class ScrambleError(VtrustError, ValueError):
    """A model could not be scrambled or unscrambled (wrong key, not a scrambled model)."""


class TamperDetected(VtrustError):
    """An untrusted party's result failed its integrity check (an outsourced product
    failed Freivalds' test)."""


class AttestationError(VtrustError, ValueError):
    """An attestation quote is malformed, forged, stale or for the wrong measurement."""


class EnclaveError(VtrustError, RuntimeError):
    """Code the enclave was not measured with was asked to run inside it, or the
    enclave refuses the state it was handed."""


class MeteringError(VtrustError, ValueError):
    """A usage report, budget grant or sealed meter state is malformed, forged, or not
    the one this meter or ledger can accept."""


class MeteringViolation(MeteringError):
    """The owner's reconciliation caught a device cheating its meter.

    Attributes:
        device: the device.
        kind: ``replay`` (a report it already has), ``skip`` (a missing report),
            ``rollback`` (a report off the chain the owner holds: the enclave was
            restarted from older state), ``overuse`` (more answers than granted),
            or ``forgery`` (a bad signature).
    """

    def __init__(self, device: str, kind: str, message: str) -> None:
        self.device = device
        self.kind = kind
        super().__init__(f"{device}: {kind}: {message}")


class BlackBoxOnly(VtrustError, ValueError):
    """An operation that needs a model's weights (a removal attack, a static watermark,
    embedding, quantising or proving) was asked of a target that is a black box only."""


class OutputError(VtrustError, ValueError):
    """An output path vtrust will not write: its folder does not exist (a typo must not
    put a secret somewhere unexpected), or it is a folder."""


class MissingExtra(VtrustError, ImportError):
    """A model format or interop needs an optional dependency that is not installed;
    the message names the extra to install (``pip install 'vtrust[onnx]'``)."""
