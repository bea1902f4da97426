"""Distribution-shift detection: catch clients whose queries do not look like the data
the model was built for — natural-image Knockoff queries, random noise, synthetic
Jacobian samples — including an attacker spread over many client ids.

Each query is scored by its log-likelihood under a probabilistic PCA model of the
defender's in-distribution data (:meth:`sklearn.decomposition.PCA.score_samples`). A
query is *atypical* when its score falls below the ``p0`` quantile of out-of-fold
scores of that data, so a benign client sends atypical queries at rate ``p0``. A CUSUM
of the log-likelihood ratio of "atypical at rate ``p1``" against "at rate ``p0``"
raises the alarm when it exceeds ``threshold`` = h; for a correctly calibrated ``p0`` a
benign stream raises a false alarm at most once per ``e^h`` queries on average (Lorden's
bound), e.g. once per 8.9 million queries at h = 16.

``scope = "client"`` keeps one CUSUM per client; ``scope = "global"`` feeds every
client's queries into one (the device's view when client ids are free to forge). When
the shared CUSUM crosses the threshold, the querying client is flagged if its own
queries are improbably atypical for a benign client (binomial tail ≤ ``attribution``),
and the CUSUM restarts so the next attacking id must cross it too; an id that sent a
single query can never be told from a benign client's one odd query, so an attacker
using one query per id raises only the device-level alarm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold

from vtrust._io import parse_json
from vtrust.catalog import register
from vtrust.defenses.detection import AlarmParams, DetectorState, StreamDetector
from vtrust.errors import InputError

GLOBAL_SCOPE = "*"


@dataclass(frozen=True)
class ShiftParams(AlarmParams):
    """Detector settings.

    Attributes:
        components: principal components of the PPCA model (capped by the data).
        p0: rate of atypical queries of a benign client (the score quantile).
        p1: rate of atypical queries the CUSUM is tuned to detect.
        threshold: CUSUM alarm level h (false alarms ≤ once per e^h benign queries).
        folds: cross-fitting folds for the out-of-fold calibration scores.
        scope: ``client`` (one statistic per client) or ``global`` (one for all).
        attribution: global scope: when the shared CUSUM crosses the threshold, the
            querying client is flagged only if its own atypical count has a binomial
            tail probability (at rate ``p0``) at most this; otherwise the device-level
            alarm is recorded and the CUSUM stays up for the next query.
        (and ``action``/``poison`` from :class:`~vtrust.defenses.detection.AlarmParams`)
    """

    components: int = 20
    p0: float = 0.01
    p1: float = 0.5
    threshold: float = 16.0
    folds: int = 5
    scope: str = "client"
    attribution: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.components < 1 or self.folds < 2:
            raise InputError("components ≥ 1 and folds ≥ 2 required")
        if not 0.0 < self.p0 < self.p1 < 1.0:
            raise InputError(f"need 0 < p0 < p1 < 1, got p0={self.p0}, p1={self.p1}")
        if self.threshold <= 0:
            raise InputError(f"threshold must be positive, got {self.threshold}")
        if not 0.0 < self.attribution < 1.0:
            raise InputError(f"attribution must be in (0, 1), got {self.attribution}")
        if self.scope not in ("client", "global"):
            raise InputError(f"scope must be 'client' or 'global', got {self.scope!r}")


class ShiftState(DetectorState):
    """One scope's CUSUM: current statistic, queries seen, atypical queries seen, alarms."""

    def __init__(self) -> None:
        self.cusum = 0.0
        self.queries = 0
        self.atypical = 0
        self.alarms = 0  # times the CUSUM crossed the threshold
        self.alarm_at: int | None = None
        self.clients: dict[str, tuple[int, int]] = {}  # global scope: (queries, atypical)

    def to_arrays(self) -> dict[str, np.ndarray]:
        alarm = -1 if self.alarm_at is None else self.alarm_at
        ids = sorted(self.clients)
        return {
            "cusum": np.array([self.cusum]),
            "counts": np.array([self.queries, self.atypical, self.alarms, alarm], np.int64),
            "client_ids": np.frombuffer(json.dumps(ids).encode(), dtype=np.uint8),
            "client_counts": np.array([self.clients[c] for c in ids], np.int64).reshape(-1, 2),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShiftState:
        state = cls()
        (state.cusum,) = (float(v) for v in arrays["cusum"])
        queries, atypical, alarms, alarm = (int(v) for v in arrays["counts"])
        if not (np.isfinite(state.cusum) and state.cusum >= 0 and 0 <= atypical <= queries):
            raise ValueError("inconsistent CUSUM state")
        state.queries, state.atypical, state.alarms = queries, atypical, alarms
        state.alarm_at = None if alarm < 0 else alarm
        ids = parse_json(arrays["client_ids"].tobytes().decode())
        counts = arrays["client_counts"]
        if not isinstance(ids, list) or counts.shape != (len(ids), 2):
            raise ValueError("client counters disagree with client ids")
        state.clients = {str(c): (int(n), int(k)) for c, (n, k) in zip(ids, counts, strict=True)}
        return state


class DensityModel:
    """A probabilistic-PCA density of the defender's data and the score quantile below
    which a query counts as atypical (``held_out_scores``: the cross-fitted scores of
    the reference the quantile is taken from)."""

    def __init__(self, reference: np.ndarray, components: int, p0: float, folds: int, seed: int):
        flat = reference.reshape(len(reference), -1).astype(np.float64)
        k = max(1, min(components, flat.shape[1] - 1, len(flat) * (folds - 1) // folds - 1))
        if len(flat) < 2 * folds:
            raise InputError(f"need at least {2 * folds} reference samples, got {len(flat)}")
        scores = np.empty(len(flat))
        for fit_idx, held_idx in KFold(folds, shuffle=True, random_state=seed).split(flat):
            model = PCA(n_components=k, random_state=seed).fit(flat[fit_idx])
            scores[held_idx] = model.score_samples(flat[held_idx])
        pca = PCA(n_components=k, random_state=seed).fit(flat)
        # the PPCA precision is low rank plus a multiple of the identity:
        #   P = Uᵀ diag(1/λ) U + (I − UᵀU)/σ²   (U: the components' rows)
        # so a score costs one (N, d) × (d, k) product instead of a (d, d) one
        self.mean = pca.mean_
        self.components = pca.components_.T.copy()  # (d, k)
        noise = float(max(pca.noise_variance_, 1e-12))
        variances = np.maximum(pca.explained_variance_, noise)
        self.inverse_noise = 1.0 / noise
        self.component_weights = 1.0 / variances - self.inverse_noise
        logdet = -np.log(variances).sum() - (flat.shape[1] - k) * np.log(noise)
        self.offset = 0.5 * (logdet - flat.shape[1] * np.log(2 * np.pi))
        self.held_out_scores = scores
        self.cutoff = float(np.quantile(scores, p0))

    def score(self, x: np.ndarray) -> np.ndarray:
        """Log-likelihood of each query under the fitted model (as PCA.score_samples)."""
        return self.score_joint(x, (self.mean, self.components))[0]

    def joint_with(
        self, extra: np.ndarray, dtype: type = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, [components | extra])`` in ``dtype``, for :meth:`score_joint`
        (``extra``: (d, m) columns a caller wants from the same queries)."""
        joint = np.hstack([self.components, extra]).astype(dtype)
        return self.mean.astype(dtype), joint

    def score_joint(
        self, x: np.ndarray, joint: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scores of ``x`` and, from the same matrix product, ``(x − mean) @ extra``
        for ``joint = joint_with(extra)``, computed in the joint's dtype (float32: half
        the time of the float64 score, to ≈ 1e-5 relative, for callers that threshold)."""
        mean, columns = joint
        centred = x.reshape(len(x), mean.size).astype(columns.dtype, copy=False) - mean
        k = self.components.shape[1]
        # computed as (columnsᵀ centredᵀ)ᵀ: the result is column-major, so the callers'
        # per-row reductions over its few columns run along contiguous memory
        product = (columns.T @ centred.T).T
        squares = np.einsum("ij,ij->i", centred, centred).astype(np.float64)
        quadratic = self.inverse_noise * squares + (product[:, :k] ** 2) @ self.component_weights
        return self.offset - 0.5 * quadratic, product[:, k:]

    def atypical(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask: which queries score below the cutoff."""
        return self.score(x) < self.cutoff


class ShiftDetector(StreamDetector):
    """The distribution-shift CUSUM detector as an oracle defense."""

    name = "shift"
    state_class = ShiftState

    def __init__(self, params: ShiftParams = ShiftParams()) -> None:
        super().__init__(params)
        self.density: DensityModel | None = None
        self.step_atypical = float(np.log(params.p1 / params.p0))
        self.step_typical = float(np.log((1 - params.p1) / (1 - params.p0)))

    def bind(self, context: Any) -> None:
        super().bind(context)
        p = self.params
        self.density = DensityModel(
            context.reference.x, p.components, p.p0, p.folds, context.seed or 0
        )

    def scope_key(self, client_id: str) -> str:
        return GLOBAL_SCOPE if self.params.scope == "global" else client_id

    def update(
        self, state: ShiftState, x: np.ndarray, probs: np.ndarray, client_id: str
    ) -> int | None:
        if self.density is None:
            raise InputError("the shift detector needs in-distribution data: deploy it with bind()")
        flags = self.density.atypical(x)
        steps = np.where(flags, self.step_atypical, self.step_typical)
        shared = self.params.scope == "global"
        seen, odd = state.clients.get(client_id, (0, 0)) if shared else (0, 0)
        first_alarm = None
        s = state.cusum
        for i, step in enumerate(steps):
            above = s >= self.params.threshold
            s = max(0.0, s + step)
            if s < self.params.threshold:
                continue
            if not above:
                state.alarms += 1
                if state.alarm_at is None:
                    state.alarm_at = state.queries + i
            if not shared:
                first_alarm = i
                break
            n, k = seen + i + 1, odd + int(flags[: i + 1].sum())
            if binom.sf(k - 1, n, self.params.p0) <= self.params.attribution:
                first_alarm = i  # this client's own queries are atypical enough to blame it
                s = 0.0  # restart, so the next attacking id has to cross the threshold too
                break
        state.cusum = s
        state.queries += len(x)
        state.atypical += int(flags.sum())
        if shared:
            state.clients[client_id] = (seen + len(x), odd + int(flags.sum()))
        return first_alarm


register("defenses", "shift", ShiftParams, "distribution-shift CUSUM over atypical queries")(
    ShiftDetector
)
