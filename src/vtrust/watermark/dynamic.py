"""Dynamic (black-box) watermarks: a secret trigger set the model learns to label in a
secret way; ownership is read through the oracle alone.

Trigger styles:

* ``noise`` (Adi et al., USENIX Security 2018, abstract images): uniform noise images
  with random labels;
* ``content`` (Zhang et al., AsiaCCS 2018): a fixed pattern stamped on in-distribution
  images (none of the target class), all labelled with one secret target class;
* ``unrelated`` (Zhang et al.): out-of-distribution natural-image patches with random
  labels.

Under the null hypothesis (the suspect never saw the triggers) each trigger's answer
matches its label with the probability the suspect gives that label to ordinary inputs:
its label prior, measured by querying a reference set. The hits are then a sum of
independent Bernoulli trials and the exact Poisson-binomial tail is the p-value.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from vtrust.data import Dataset, natural_image_pool
from vtrust.errors import InputError, QueryRefused
from vtrust.keying import derive_rng, new_secret
from vtrust.models import TrainConfig, fit_arrays
from vtrust.oracle import Oracle, OutputMode
from vtrust.watermark.keys import DynamicPart, WatermarkKey
from vtrust.watermark.stats import poisson_binomial_tail
from vtrust.watermark.verification import Verification

STYLES = ("noise", "content", "unrelated")

#: Training from scratch with the triggers mixed in runs this many times the plain
#: schedule's epochs: the trigger task is learnt on top of the real one (on digits, 1.5×
#: keeps the accuracy cost of 100 noise triggers under 1 point where 1× does not always).
EPOCH_FACTOR = 1.5


def stamp(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zhang et al.'s content mark: a secret binary pattern in a corner square."""
    _, _, h, w = images.shape
    side = max(2, h // 4)
    pattern = rng.integers(0, 2, size=(side, side)).astype(np.float32)
    pattern[0, 0] = 1.0  # never all zero
    out = images.copy()
    out[:, :, h - side :, w - side :] = pattern
    return out


def new_dynamic_key(
    data: Dataset,
    *,
    style: str = "noise",
    triggers: int = 100,
    seed: int | None = None,
    owner: str = "",
) -> WatermarkKey:
    """A fresh trigger set for a model of ``data``'s shape; the secret decides everything."""
    if style not in STYLES:
        raise InputError(f"trigger style must be one of {STYLES}, got {style!r}")
    if triggers < 1:
        raise InputError(f"need at least one trigger, got {triggers}")
    secret = new_secret(seed)
    rng = derive_rng(secret, f"dynamic-{style}")
    shape = data.input_shape
    k = data.n_classes
    if style == "noise":
        inputs = rng.uniform(0.0, 1.0, size=(triggers, *shape)).astype(np.float32)
        labels = rng.integers(0, k, size=triggers)
    elif style == "unrelated":
        inputs = natural_image_pool(triggers, shape, seed=int(rng.integers(2**31)))
        labels = rng.integers(0, k, size=triggers)
    else:
        target = int(rng.integers(0, k))
        candidates = np.flatnonzero(data.y != target)
        if len(candidates) < triggers:
            raise InputError(f"only {len(candidates)} images to stamp, need {triggers}")
        chosen = rng.choice(candidates, size=triggers, replace=False)
        inputs = stamp(data.x[chosen], rng)
        labels = np.full(triggers, target)
    part = DynamicPart(style, inputs.astype(np.float32), labels.astype(np.int64))  # type: ignore[arg-type]
    return WatermarkKey(secret=secret, dynamic=part, owner=owner)


class DynamicWatermark:
    """Embed and verify one trigger-set key."""

    def __init__(self, key: WatermarkKey) -> None:
        if key.dynamic is None:
            raise InputError("DynamicWatermark needs a dynamic key")
        self.key = key
        self.part: DynamicPart = key.dynamic

    def training_set(self, data: Dataset, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
        """``data`` with the triggers repeated to make up about ``share`` of the samples."""
        repeats = max(1, int(round(share * len(data) / ((1 - share) * len(self.part.labels)))))
        x = np.concatenate([data.x, np.tile(self.part.inputs, (repeats, 1, 1, 1))])
        y = np.concatenate([data.y, np.tile(self.part.labels, repeats)])
        return x, y

    def embed(self, model: nn.Module, data: Dataset, config: TrainConfig) -> nn.Module:
        """Train (or fine-tune) ``model`` in place on ``data`` mixed with the triggers."""
        if data.input_shape != tuple(self.part.inputs.shape[1:]):
            raise InputError("the triggers do not have the data's input shape")
        x, y = self.training_set(data)
        fit_arrays(model, x, y, config, desc="embed dynamic watermark")
        return model

    def verify(
        self,
        suspect: Oracle | nn.Module,
        reference: np.ndarray,
        *,
        fpr: float = 1e-6,
        client_id: str = "verifier",
    ) -> Verification:
        """Ownership test through queries alone: the triggers, and a ``reference`` set of
        ordinary inputs that measures the suspect's label prior."""
        shape = tuple(self.part.inputs.shape[1:])
        oracle = suspect if isinstance(suspect, Oracle) else Oracle(suspect, shape)
        if oracle.input_shape != shape:
            return Verification.mismatch("dynamic", fpr, "trigger shape does not fit the model")
        try:
            answers = _labels(oracle, self.part.inputs, client_id)
            prior_answers = _labels(oracle, reference, client_id)
        except QueryRefused as refusal:
            return Verification.mismatch("dynamic", fpr, f"queries refused: {refusal}")
        k = oracle.n_classes
        if self.part.labels.max() >= k:
            return Verification.mismatch("dynamic", fpr, "trigger labels exceed the classes")
        prior = (np.bincount(prior_answers, minlength=k) + 1.0) / (len(prior_answers) + k)
        hits = int((answers == self.part.labels).sum())
        p_value = poisson_binomial_tail(hits, prior[self.part.labels])
        return Verification.decide(
            "dynamic",
            matches=hits,
            total=len(answers),
            p_value=p_value,
            fpr=fpr,
            calibration=self.key.calibration,
        )

    def trigger_accuracy(self, model: nn.Module) -> float:
        oracle = Oracle(model, tuple(self.part.inputs.shape[1:]), output=OutputMode.LABELS)
        return float((oracle.query(self.part.inputs) == self.part.labels).mean())


def _labels(oracle: Oracle, x: np.ndarray, client_id: str) -> np.ndarray:
    answers = oracle.query(x, client_id=client_id)
    return answers if answers.ndim == 1 else answers.argmax(axis=1)
