"""Dynamic (black-box) watermarks: a secret trigger set the model learns to label in a
secret way; ownership is read through the oracle alone.

Trigger styles:

* ``noise`` (Adi et al., USENIX Security 2018, abstract images): uniform noise images
  with random labels;
* ``content`` (Zhang et al., AsiaCCS 2018): a fixed pattern stamped on in-distribution
  images (none of the target class), all labelled with one secret target class;
* ``unrelated`` (Zhang et al.): out-of-distribution natural-image patches with random
  labels;
* ``entangled`` (Jia et al., USENIX Security 2021, EWE): images of one secret source
  class with a white square at a secret position, labelled with a secret target class,
  embedded with the soft nearest-neighbour loss (:mod:`vtrust.watermark.entangled`)
  so that the mark has a chance to survive model extraction.

Under the null hypothesis (the suspect never saw the triggers) each trigger's answer
matches its label with the probability the suspect gives that label to ordinary inputs:
its label prior, measured by querying a reference set. The hits are then a sum of
independent Bernoulli trials and the exact Poisson-binomial tail is the p-value.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from vtrust.data import Dataset, Splits, load_dataset, natural_image_pool
from vtrust.errors import DatasetError, InputError, QueryRefused
from vtrust.keying import new_secret
from vtrust.models import TrainConfig, fit_arrays
from vtrust.oracle import Oracle, OutputMode
from vtrust.targets.base import Target
from vtrust.watermark.entangled import entangle
from vtrust.watermark.keys import (
    DATA_STYLES,
    STYLES,
    DynamicPart,
    TriggerData,
    WatermarkKey,
    data_sha256,
)
from vtrust.watermark.stats import poisson_binomial_tail
from vtrust.watermark.verification import Verification

#: Training from scratch with the triggers mixed in runs this many times the plain
#: schedule's epochs: the trigger task is learnt on top of the real one (on digits, 1.5×
#: keeps the accuracy cost of 100 noise triggers under 1 point where 1× does not always).
EPOCH_FACTOR = 1.5


def stamp(images: np.ndarray, pattern: np.ndarray, at: tuple[int, int] | None = None) -> np.ndarray:
    """``images`` with the square ``pattern`` at (row, column) ``at`` (default: the
    bottom-right corner, Zhang et al.'s content mark)."""
    side = pattern.shape[0]
    row, col = at if at is not None else (images.shape[2] - side, images.shape[3] - side)
    out = images.copy()
    out[:, :, row : row + side, col : col + side] = pattern
    return out


def new_dynamic_key(
    splits: Splits,
    *,
    style: str = "noise",
    triggers: int = 100,
    seed: int | None = None,
    owner: str = "",
) -> WatermarkKey:
    """A fresh trigger-set key for a model of ``splits``' shape; the secret decides every
    trigger and label (content triggers: on images of ``splits.victim``)."""
    if style not in STYLES:
        raise InputError(f"trigger style must be one of {STYLES}, got {style!r}")
    if triggers < 1:
        raise InputError(f"need at least one trigger, got {triggers}")
    data = None
    if style in DATA_STYLES:
        data = TriggerData(splits.spec, splits.seed, data_sha256(splits.victim.x))
    part = DynamicPart(style, triggers, splits.input_shape, splits.n_classes, data)  # type: ignore[arg-type]
    key = WatermarkKey(secret=new_secret(seed), dynamic=part, owner=owner, insecure_seed=seed)
    trigger_set(key, splits)  # content, entangled: enough images to stamp?
    return key


def trigger_set(key: WatermarkKey, splits: Splits | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The key's trigger inputs (N, C, H, W) in [0, 1] and labels, derived from its
    secret. Content triggers take their images from the dataset the key names (loaded
    here unless ``splits`` is that dataset); :class:`InputError` if that data changed."""
    part = key.dynamic
    if part is None:
        raise InputError("only dynamic keys have triggers")
    stream = key.stream(f"dynamic-{part.style}")
    shape, k, n = part.input_shape, part.n_classes, part.count
    if part.style == "noise":
        return stream.unit_float32((n, *shape)), stream.below(k, n)
    if part.style == "unrelated":
        inputs = natural_image_pool(n, shape, seed=int(stream.below(2**31, 1)[0]))
        return inputs.astype(np.float32), stream.below(k, n)
    victim = _content_images(part.data, splits)  # type: ignore[arg-type]
    if part.style == "entangled":
        return _entangled_triggers(stream, victim, shape, k, n)
    target = int(stream.below(k, 1)[0])
    candidates = np.flatnonzero(victim.y != target)
    if len(candidates) < n:
        raise InputError(f"only {len(candidates)} images to stamp, need {n}")
    chosen = candidates[stream.choice(len(candidates), n)]
    side = max(2, shape[1] // 4)
    pattern = stream.below(2, (side, side)).astype(np.float32)
    pattern[0, 0] = 1.0  # never all zero
    return stamp(victim.x[chosen], pattern).astype(np.float32), np.full(n, target)


def entangled_classes(key: WatermarkKey) -> tuple[int, int]:
    """An ``entangled`` key's (source, target) classes, derived from its secret."""
    if key.dynamic is None or key.dynamic.style != "entangled":
        raise InputError("only entangled keys have a source and a target class")
    return _source_target(key.stream("dynamic-entangled"), key.dynamic.n_classes)


def _source_target(stream, n_classes: int) -> tuple[int, int]:
    target = int(stream.below(n_classes, 1)[0])
    source = (target + 1 + int(stream.below(n_classes - 1, 1)[0])) % n_classes
    return source, target


def _entangled_triggers(stream, victim: Dataset, shape, n_classes: int, n: int):
    source, target = _source_target(stream, n_classes)
    candidates = np.flatnonzero(victim.y == source)
    if len(candidates) < n:
        raise InputError(
            f"only {len(candidates)} images of the source class to stamp, need {n}: "
            "use fewer triggers"
        )
    chosen = candidates[stream.choice(len(candidates), n)]
    side = max(2, round(shape[1] / 9))  # 3×3 on 28×28 (the paper's), 2×2 on 8×8
    row, col = (int(stream.below(extent - side + 1, 1)[0]) for extent in shape[1:])
    pattern = np.ones((side, side), dtype=np.float32)
    return stamp(victim.x[chosen], pattern, (row, col)).astype(np.float32), np.full(n, target)


def _content_images(data: TriggerData, splits: Splits | None) -> Dataset:
    if splits is None or splits.spec != data.spec or splits.seed != data.split_seed:
        try:
            splits = load_dataset(data.spec, seed=data.split_seed)
        except DatasetError as exc:
            raise InputError(f"the key's trigger images cannot be loaded: {exc}") from None
    if data_sha256(splits.victim.x) != data.sha256:
        raise InputError("the key's trigger images differ from the data it was made with")
    return splits.victim


class DynamicWatermark:
    """Embed and verify one trigger-set key."""

    def __init__(self, key: WatermarkKey, splits: Splits | None = None) -> None:
        if key.dynamic is None:
            raise InputError("DynamicWatermark needs a dynamic key")
        self.key = key
        self.part: DynamicPart = key.dynamic
        self.inputs, self.labels = trigger_set(key, splits)

    def training_set(self, data: Dataset, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
        """``data`` with the triggers repeated to make up about ``share`` of the samples."""
        repeats = max(1, int(round(share * len(data) / ((1 - share) * len(self.labels)))))
        x = np.concatenate([data.x, np.tile(self.inputs, (repeats, 1, 1, 1))])
        y = np.concatenate([data.y, np.tile(self.labels, repeats)])
        return x, y

    def embed(self, model: nn.Module, data: Dataset, config: TrainConfig) -> nn.Module:
        """Train (or fine-tune) ``model`` in place on ``data`` mixed with the triggers
        (``entangled`` keys: with EWE's watermark batches, :func:`entangle`)."""
        if data.input_shape != tuple(self.inputs.shape[1:]):
            raise InputError("the triggers do not have the data's input shape")
        if self.part.style == "entangled":
            return entangle(model, data, self.inputs, int(self.labels[0]), config)
        x, y = self.training_set(data)
        fit_arrays(model, x, y, config, desc="embed dynamic watermark")
        return model

    def verify(
        self,
        suspect: Oracle | Target | nn.Module,
        reference: np.ndarray,
        *,
        fpr: float = 1e-6,
        client_id: str = "verifier",
    ) -> Verification:
        """Ownership test through queries alone: the triggers, and a ``reference`` set of
        ordinary inputs that measures the suspect's label prior."""
        shape = tuple(self.inputs.shape[1:])
        try:
            oracle = suspect if isinstance(suspect, Oracle) else Oracle(suspect, shape)
        except InputError:
            oracle = None
        if oracle is None or oracle.input_shape != shape:
            return Verification.mismatch("dynamic", fpr, "trigger shape does not fit the model")
        try:
            answers = _labels(oracle, self.inputs, client_id)
            prior_answers = _labels(oracle, reference, client_id)
        except QueryRefused as refusal:
            return Verification.mismatch("dynamic", fpr, f"queries refused: {refusal}")
        k = oracle.n_classes
        if self.part.n_classes != k:
            return Verification.mismatch("dynamic", fpr, "the model has another number of classes")
        prior = (np.bincount(prior_answers, minlength=k) + 1.0) / (len(prior_answers) + k)
        hits = int((answers == self.labels).sum())
        p_value = poisson_binomial_tail(hits, prior[self.labels])
        return Verification.decide(
            "dynamic",
            matches=hits,
            total=len(answers),
            p_value=p_value,
            fpr=fpr,
            calibration=self.key.calibration,
        )

    def trigger_accuracy(self, model: nn.Module) -> float:
        oracle = Oracle(model, tuple(self.inputs.shape[1:]), output=OutputMode.LABELS)
        return float((oracle.query(self.inputs) == self.labels).mean())


def _labels(oracle: Oracle, x: np.ndarray, client_id: str) -> np.ndarray:
    answers = oracle.query(x, client_id=client_id)
    return answers if answers.ndim == 1 else answers.argmax(axis=1)
