"""The simulated enclave: a model part behind an explicit call boundary, a memory budget,
sealed storage with a key that stays inside, and a measurement for attestation.

Python cannot enforce isolation; the simulation makes the boundary explicit instead.
Everything the enclave holds is private to this object (the model part, the device's
root secret, the sealing key derived from it); the host reaches it only through
:meth:`Enclave.ecall`, which counts the call and the bytes crossing in both directions,
times the work inside on one thread, and charges the :class:`~vtrust.enclave.costs.
CostModel` (crossing, copying, paging beyond the memory budget).

The measurement, like SGX's MRENCLAVE, hashes the enclave's code identity — the
sources of the modules that run inside — with the hash of the model part it loaded and
the name of its role.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import threadpoolctl
import torch
from torch import nn

from vtrust.enclave.costs import CostModel, Ledger
from vtrust.keying import ProtectionKey, hkdf
from vtrust.models.files import model_sha256
from vtrust.protect.seal import open_bytes, seal_bytes

T = TypeVar("T")
_INSIDE_MODULES = ("runtime.py", "split.py", "slalom.py", "modp.py", "freivalds.py")


def code_identity() -> str:
    """SHA-256 over the sources of the modules that run inside the enclave."""
    digest = hashlib.sha256(b"vtrust-enclave-code/1\x00")
    here = Path(__file__).parent
    for name in _INSIDE_MODULES:
        digest.update(name.encode() + b"\x00" + (here / name).read_bytes())
    return digest.hexdigest()


def measurement(identity: str, part_sha256: str, role: str) -> str:
    """The enclave's measurement: code identity, model part and role, hashed together."""
    text = f"vtrust-measurement/1\x00{identity}\x00{part_sha256}\x00{role}"
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


class Enclave:
    """A simulated enclave holding ``part`` (a module, or None for a code-only enclave).

    ``root_secret`` stands for the device's fused key (random unless given, e.g. by a
    test); the sealing key is derived from it and the measurement and never leaves.
    """

    def __init__(
        self,
        part: nn.Module | None,
        *,
        role: str,
        cost: CostModel | None = None,
        root_secret: bytes | None = None,
    ) -> None:
        part = copy.deepcopy(part).eval() if part is not None else None
        part_hash = model_sha256(part) if part is not None else "none"
        self.role = role
        self.measurement = measurement(code_identity(), part_hash, role)
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
        the cost model."""
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
        return self.ecall(lambda inside, d: inside.seal(d), data)

    def unseal(self, blob: bytes) -> bytes:
        """An ecall that opens ``blob`` (:class:`~vtrust.errors.SealError` if it fails)."""
        return self.ecall(lambda inside, b: inside.unseal(b), blob)
