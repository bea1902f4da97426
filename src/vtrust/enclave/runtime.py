"""The simulated enclave: a model part behind an explicit call boundary, a memory budget,
sealed storage with a key that stays inside, and a measurement for attestation.

Python cannot enforce isolation; the simulation makes the boundary explicit instead.
Everything the enclave holds is private to this object (the model part, the device's
root secret, the sealing key derived from it); the host reaches it only through
:meth:`Enclave.ecall`, which counts the call and the bytes crossing in both directions,
times the work inside on one thread, and charges the :class:`~vtrust.enclave.costs.
CostModel` (crossing, copying, paging beyond the memory budget).

The measurement, like SGX's MRENCLAVE, hashes everything that decides what the enclave
does: the sources of the modules that run inside, the enclave's **entry points** (the
bytecode, constants and names of every function it may run, declared when it is made,
like an SGX EDL), the model part's **architecture** (its module tree) and the hash of its
weights, and the role. :meth:`Enclave.ecall` refuses a function that is not one of the
measured entry points, so two enclaves that can run different code never share a
measurement.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import secrets
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import threadpoolctl
import torch
from torch import nn

from vtrust.enclave.costs import CostModel, Ledger
from vtrust.errors import EnclaveError
from vtrust.keying import ProtectionKey, hkdf
from vtrust.models.files import model_sha256
from vtrust.protect.seal import open_bytes, seal_bytes

T = TypeVar("T")
_INSIDE_MODULES = ("runtime.py", "split.py", "slalom.py", "modp.py", "freivalds.py", "metering.py")


def code_identity() -> str:
    """SHA-256 over the sources of the modules that run inside the enclave."""
    digest = hashlib.sha256(b"vtrust-enclave-code/1\x00")
    here = Path(__file__).parent
    for name in _INSIDE_MODULES:
        digest.update(name.encode() + b"\x00" + (here / name).read_bytes())
    return digest.hexdigest()


def code_digest(code: types.CodeType) -> str:
    """SHA-256 of a function's code: bytecode, constants (nested code recursively) and
    the names it uses — what decides what it does, not where it was defined."""
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        item = code_digest(const) if isinstance(const, types.CodeType) else repr(const)
        digest.update(b"\x00" + item.encode())
    digest.update(("\x00".join(code.co_names + code.co_varnames + code.co_freevars)).encode())
    return digest.hexdigest()


def architecture(part: nn.Module | None) -> str:
    """The model part's module tree (types and hyperparameters, not weights)."""
    return "none" if part is None else repr(part)


def measurement(
    identity: str, part_sha256: str, role: str, *, architecture: str = "", entries: str = ""
) -> str:
    """The enclave's measurement: code identity, entry points, architecture, weights and
    role, hashed together."""
    text = (
        f"vtrust-measurement/2\x00{identity}\x00{entries}\x00{architecture}\x00"
        f"{part_sha256}\x00{role}"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def nbytes(value: Any) -> int:
    """Bytes a value occupies when copied across the boundary."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple | list):
        return sum(nbytes(v) for v in value)
    return 0


@functools.cache
def _blas() -> threadpoolctl.ThreadpoolController:
    return threadpoolctl.ThreadpoolController()  # scanning the loaded libraries is slow


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch and BLAS limited to one thread (the enclave's single core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas().limit(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


class Inside:
    """What code running inside the enclave sees: the model part, private state that
    persists between calls, and sealing under the enclave's key (which it cannot read)."""

    def __init__(self, part: nn.Module | None, sealing_key: ProtectionKey, measurement: str):
        self.part = part
        self.state: dict[str, Any] = {}
        self.__key = sealing_key
        self.__measurement = measurement

    def seal(self, data: bytes) -> bytes:
        """``data`` encrypted under the sealing key (storable outside the enclave)."""
        return seal_bytes(data, self.__key, {"measurement": self.__measurement})

    def unseal(self, blob: bytes) -> bytes:
        """Sealed data back, or :class:`~vtrust.errors.SealError`: only an enclave with
        the same measurement on the same device can open it."""
        return open_bytes(blob, self.__key).data


def _seal_entry(inside: Inside, data: bytes) -> bytes:
    return inside.seal(data)


def _unseal_entry(inside: Inside, blob: bytes) -> bytes:
    return inside.unseal(blob)


class Enclave:
    """A simulated enclave holding ``part`` (a module, or None for a code-only enclave).

    ``entry_points``: the functions ``fn(inside, *args)`` it may run (besides sealing and
    unsealing); their code is part of the measurement. ``root_secret`` stands for the
    device's fused key (random unless given, e.g. by a test); the sealing key is derived
    from it and the measurement and never leaves.
    """

    def __init__(
        self,
        part: nn.Module | None,
        *,
        role: str,
        entry_points: tuple[Callable[..., Any], ...] = (),
        cost: CostModel | None = None,
        root_secret: bytes | None = None,
    ) -> None:
        part = copy.deepcopy(part).eval() if part is not None else None
        part_hash = model_sha256(part) if part is not None else "none"
        self.role = role
        functions = (_seal_entry, _unseal_entry, *entry_points)
        self._entries = frozenset(code_digest(fn.__code__) for fn in functions)
        self.measurement = measurement(
            code_identity(), part_hash, role, architecture=architecture(part),
            entries="\x00".join(sorted(self._entries)),
        )  # fmt: skip
        self.ledger = Ledger(cost or CostModel())
        root = root_secret if root_secret is not None else secrets.token_bytes(32)
        key = ProtectionKey(hkdf(root, f"sealing:{self.measurement}"))
        self.__inside = Inside(part, key, self.measurement)
        self._resident = (
            sum(t.numel() * t.element_size() for t in part.state_dict().values()) if part else 0
        )

    @property
    def resident_bytes(self) -> int:
        """Bytes of the model part kept inside."""
        return self._resident

    def ecall(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(inside, *args)`` in the enclave (``inside``: an :class:`Inside`):
        count the call and the bytes crossing, time the work on one thread and charge
        the cost model. :class:`EnclaveError` if ``fn`` is not a measured entry point."""
        code = getattr(fn, "__code__", None)
        if code is None or code_digest(code) not in self._entries:
            raise EnclaveError(f"{getattr(fn, '__name__', fn)!r} is not a measured entry point")
        bytes_in = nbytes(args)
        with one_thread():
            started = time.perf_counter()
            result = fn(self.__inside, *args)
            elapsed = time.perf_counter() - started
        bytes_out = nbytes(result)
        self.ledger.charge_call(bytes_in, bytes_out)
        self.ledger.charge_inside(elapsed, self.resident_bytes + bytes_in + bytes_out)
        return result

    def seal(self, data: bytes) -> bytes:
        """An ecall that seals ``data`` inside and hands back the sealed blob."""
        return self.ecall(_seal_entry, data)

    def unseal(self, blob: bytes) -> bytes:
        """An ecall that opens ``blob`` (:class:`~vtrust.errors.SealError` if it fails)."""
        return self.ecall(_unseal_entry, blob)
