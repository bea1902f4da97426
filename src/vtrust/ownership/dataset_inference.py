"""Dataset inference (Maini, Yaghini & Papernot, ICLR 2021): mark-free evidence that a
suspect model learnt from the owner's private training set, black-box and label-only.

A model is farther from its decision boundary on the points it was trained on than on
points it never saw, and a copy — direct, fine-tuned, distilled or stolen through
queries — inherits that margin. **Blind walk** (the paper's black-box feature): from
each point, in each of D random directions of three noise types (uniform, Gaussian,
Laplace, unit root-mean-square per value), step ``k · step`` until the suspect's label
differs from the point's true label; the distance at the first change is one feature
(``max_steps + 1`` steps if it never changes; 0 if the point is misclassified). The
features are sorted within each noise type (the directions are exchangeable).

The owner fits a linear score (logistic regression) on its *own* model's features of
private (training) points against public points, then scores the suspect's features of
m other private and m other public points; a one-sided Welch t-test of "private scores
> public scores" gives the p-value. The test compares two samples of the suspect's own
behaviour, so the only thing it can detect is a model that treats the private points
unlike the public ones — and that is also its known weakness: an *independent* model
trained on the same distribution can be farther from the boundary on any
well-represented point, private or not. What it does (and does not) reach is measured
against independent models by the ownership study, not assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vtrust.errors import InputError
from vtrust.targets.base import Target, as_target

NOISES = ("uniform", "gaussian", "laplace")


@dataclass(frozen=True)
class WalkParams:
    """Attributes:
    directions: random directions per noise type (features = 3 × directions).
    step: root-mean-square distance per value of one step.
    max_steps: steps walked before giving up on a direction.
    """

    directions: int = 10
    step: float = 0.02
    max_steps: int = 40

    def __post_init__(self) -> None:
        if self.directions < 1 or self.max_steps < 1 or not self.step > 0:
            raise InputError(f"blind-walk parameters must be positive, got {asdict(self)}")


def _directions(rng: np.random.Generator, n: int, shape: tuple[int, ...], per: int) -> np.ndarray:
    """(n, 3·per, *shape) unit-RMS directions: ``per`` of each noise type per point."""
    draws = {
        "uniform": lambda size: rng.uniform(-1.0, 1.0, size),
        "gaussian": lambda size: rng.standard_normal(size),
        "laplace": lambda size: rng.laplace(0.0, 1.0, size),
    }
    parts = [draws[noise]((n, per, *shape)) for noise in NOISES]
    out = np.concatenate(parts, axis=1).astype(np.float32)
    rms = np.sqrt((out.reshape(n, 3 * per, -1) ** 2).mean(axis=2))
    return out / rms.reshape(n, 3 * per, *([1] * len(shape)))


def blind_walk(
    suspect: Target, x: np.ndarray, labels: np.ndarray, params: WalkParams, seed: int
) -> np.ndarray:
    """(n, 3·directions) blind-walk features of ``suspect`` at the points ``x``: the
    distance (steps × ``step``) to the first label other than ``labels``, sorted within
    each noise type. Queries at most n · 3 · directions · max_steps points, batched."""
    target = as_target(suspect)
    x = target.check_images(x)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(x):
        raise InputError(f"{len(x)} points but {len(labels)} labels")
    n, per = len(x), params.directions
    walks = 3 * per
    directions = _directions(np.random.default_rng(seed), n, x.shape[1:], per)
    steps = np.full((n, walks), params.max_steps + 1, dtype=np.int64)
    start = target.predict(x)
    steps[start != labels] = 0
    active = np.argwhere(steps > 0)  # (point, direction) pairs still walking
    for k in range(1, params.max_steps + 1):
        if len(active) == 0:
            break
        moved = (
            x[active[:, 0]] + np.float32(k * params.step) * directions[active[:, 0], active[:, 1]]
        )
        changed = target.predict(moved) != labels[active[:, 0]]
        done = active[changed]
        steps[done[:, 0], done[:, 1]] = k
        active = active[~changed]
    distance = steps.astype(np.float64) * params.step
    return np.concatenate(
        [np.sort(distance[:, i * per : (i + 1) * per], axis=1) for i in range(3)], axis=1
    )


@dataclass(frozen=True)
class InferenceResult:
    """The test's outcome: the mean score of private and public points on the suspect,
    the Welch t statistic, its one-sided p-value and the sample size per side."""

    private_mean: float
    public_mean: float
    t_statistic: float
    p_value: float
    samples: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


class DatasetInference:
    """The owner's side: a linear score fitted on its own model's blind-walk features.

    Args:
        owner_model: the owner's model (any target).
        private: (x, y) of training points the owner keeps to itself (fitting half).
        public: (x, y) of points the model was not trained on (fitting half).
        params: the walk.
        seed: the walk's directions (not a secret: the test needs no secret).
    """

    def __init__(
        self, owner_model, private, public, params: WalkParams = WalkParams(), seed: int = 0
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        self.params, self.seed = params, seed
        f_private = blind_walk(owner_model, *private, params, seed)
        f_public = blind_walk(owner_model, *public, params, seed + 1)
        features = np.concatenate([f_private, f_public])
        target = np.r_[np.ones(len(f_private)), np.zeros(len(f_public))]
        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0) + 1e-9
        self.score_model = LogisticRegression(C=1.0, max_iter=2000)
        self.score_model.fit((features - self.mean) / self.scale, target)

    def scores(self, suspect, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """The fitted score of each point's blind-walk features on ``suspect``."""
        features = blind_walk(suspect, x, y, self.params, seed)
        return self.score_model.decision_function((features - self.mean) / self.scale)

    def test(self, suspect, private, public) -> InferenceResult:
        """One-sided Welch t-test that ``suspect`` scores the (held-out) private points
        above the public ones; private and public samples of equal size."""
        from scipy import stats

        if len(private[0]) != len(public[0]) or len(private[0]) < 2:
            raise InputError("dataset inference needs as many private as public points (≥ 2)")
        s_private = self.scores(suspect, *private, self.seed + 2)
        s_public = self.scores(suspect, *public, self.seed + 3)
        if np.ptp(np.r_[s_private, s_public]) == 0:
            return InferenceResult(
                float(s_private.mean()), float(s_public.mean()), 0.0, 1.0, len(s_private)
            )
        result = stats.ttest_ind(s_private, s_public, equal_var=False, alternative="greater")
        p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
        means = float(s_private.mean()), float(s_public.mean())
        return InferenceResult(*means, float(result.statistic), p_value, len(s_private))
