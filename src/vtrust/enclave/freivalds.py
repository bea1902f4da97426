"""Freivalds' check of an outsourced product ``y = x · Wᵀ (mod p)``.

The enclave draws secret vectors s_1..s_r uniform in F_p^m and precomputes v_j = Wᵀ s_j
once per layer. A claimed ``y`` is accepted when ``y s_j = x v_j`` for every j: two
matrix–vector products, O(n (k + m)) work against O(n k m) to recompute. A wrong ``y``
(D = y − x Wᵀ ≠ 0) passes one repetition only if a nonzero row d of D has d · s = 0,
which a uniform s satisfies with probability exactly 1/p.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vtrust.enclave import modp
from vtrust.errors import InputError
from vtrust.keystream import KeyStream


@dataclass(frozen=True)
class FreivaldsCheck:
    secrets_s: np.ndarray = field(repr=False)  # (r, m) secret vectors
    secrets_v: np.ndarray = field(repr=False)  # (r, k) = s Wᵀ… precomputed

    @classmethod
    def prepare(cls, w: np.ndarray, stream: KeyStream, repetitions: int = 2):
        """Precompute the check for the small signed integer matrix ``w`` (m, k), with
        secret vectors from the cryptographic ``stream``."""
        if repetitions < 1:
            raise InputError("Freivalds' check needs at least one repetition")
        s = modp.random(stream, (repetitions, w.shape[0]))
        v = modp.matmul(s, np.ascontiguousarray(w.T))  # (r, k): s · W
        return cls(s, v)

    @property
    def repetitions(self) -> int:
        return len(self.secrets_s)

    @property
    def error_bound(self) -> float:
        """Probability that a wrong product passes: p^−r."""
        return float(modp.P) ** (-self.repetitions)

    def check(self, x: np.ndarray, y: np.ndarray) -> bool:
        """Whether ``y == x Wᵀ (mod p)`` passes every repetition."""
        x = np.asarray(x).reshape(len(x), -1)
        y = np.asarray(y).reshape(len(y), -1)
        if y.shape[1] != self.secrets_s.shape[1] or x.shape[1] != self.secrets_v.shape[1]:
            return False
        try:  # also range-checks y's entries, in the same pass
            return np.array_equal(modp.matvecs(y, self.secrets_s), modp.matvecs(x, self.secrets_v))
        except InputError:
            return False
