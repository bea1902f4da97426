"""IBM's Adversarial Robustness Toolbox (``vtrust[art]``) both ways.

* :func:`deployment_classifier`: a vtrust deployment — a target behind its defense chain,
  queried as one client — as an ART ``BlackBoxClassifier``, so ART's attacks
  (KnockoffNets, CopycatCNN, …) run against vtrust's defenses and are counted, flagged
  and refused by them like any client.
* :func:`art_target`: an ART classifier as a black-box vtrust target, so vtrust's attacks,
  detectors and audits run against models ART wraps.

Images are vtrust's canonical ``float32`` (N, C, H, W) in [0, 1] on both sides (ART's
convention for PyTorch estimators, with ``clip_values=(0, 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vtrust._extras import require
from vtrust.errors import InputError, QueryRefused
from vtrust.oracle import Oracle, OutputMode
from vtrust.targets.base import InputSpec, Target, from_callable


class RefusalLog:
    """What a refusing deployment did to an ART attack: answered and refused counts."""

    def __init__(self) -> None:
        self.answered = 0
        self.refused = 0
        self.refused_by: str | None = None


def deployment_classifier(oracle: Oracle, client_id: str = "art", *, on_refusal: str = "uniform"):
    """The deployment ``oracle`` as an ART ``BlackBoxClassifier`` for client ``client_id``.

    ART's attacks cannot handle a refusal, so refused queries (``on_refusal="uniform"``)
    are answered with uniform probabilities — the attacker learns nothing from them —
    and counted in ``classifier.vtrust_refusals``; ``"raise"`` lets QueryRefused through.
    A label-only deployment answers one-hot rows.
    """
    art = require("art.estimators.classification", "art")
    if on_refusal not in ("uniform", "raise"):
        raise InputError(f"on_refusal must be uniform or raise, got {on_refusal!r}")
    log = RefusalLog()
    k = oracle.n_classes

    def rows(answers: np.ndarray) -> np.ndarray:
        if oracle.output is OutputMode.LABELS:
            return np.eye(k, dtype=np.float32)[answers]
        return np.asarray(answers, dtype=np.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        try:
            got = rows(oracle.query(x, client_id=client_id))
        except QueryRefused as refusal:
            if on_refusal == "raise":
                raise
            answered = refusal.answered if refusal.answered is not None else x[:0]
            got = rows(answered) if len(answered) else np.zeros((0, k), np.float32)
            log.refused += len(x) - len(got)
            log.refused_by = refusal.defense
            uniform = np.full((len(x) - len(got), k), 1.0 / k, dtype=np.float32)
            got = np.concatenate([got, uniform])
        log.answered += len(x)
        return got

    classifier = art.BlackBoxClassifier(
        predict, tuple(oracle.input_shape), k, clip_values=(0.0, 1.0)
    )
    classifier.vtrust_refusals = log
    return classifier


def art_target(
    classifier: Any,
    *,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Target:
    """Any ART classifier (its ``predict``) as a black-box target on canonical images of
    ``input_shape`` (default: the classifier's)."""
    shape = tuple(input_shape or getattr(classifier, "input_shape", ()) or ())
    if len(shape) != 3:
        raise InputError(
            f"an ART classifier as a target needs a (C, H, W) input shape, got {shape}"
        )
    return from_callable(
        lambda batch: np.asarray(classifier.predict(batch), dtype=np.float32),
        InputSpec(shape),
        provenance={"format": "art", "classifier": type(classifier).__name__},
        class_names=class_names,
        white_box_reason="an ART classifier is used through its predict() only",
    )
