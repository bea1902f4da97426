"""Static watermark (Uchida et al., ICMR 2017): message bits embedded in a layer's weights
by a training regularizer; extracted white-box.

The regularizer is ``λ · BCE(σ(X·w), b)`` where ``w`` is the chosen layer's flattened
weight, ``b`` the message and ``X`` a secret Gaussian projection, both derived from the
key's secret (so a key's owner cannot pick them to fit someone else's model)
(Uchida average the kernel over filters first; projecting the full weight vector lets a
layer carry up to as many bits as it has weights, and the capacity is checked against
that). Extraction reads ``b̂ = [X·w > 0]``; the bit error rate (BER) and an exact
binomial test against fair coins decide ownership.

``X`` is dense Gaussian while it holds at most :data:`DENSE_COEFFICIENTS` values (16 MB:
256 bits on a layer of 16k weights, every layer of the zoo). Beyond, a new key's ``X``
is *sparse*: each bit reads :data:`DEFAULT_SUPPORT` weights at secret positions
(uniform, with replacement) with secret Gaussian coefficients scaled by √(n / support),
so each row has the expected norm of a dense row and the logits keep their scale. The
null law is unchanged — for any fixed ``w`` the rows are independent and each ``X_i·w``
is symmetric about 0, so an unrelated model's bits are independent fair coins — and the
cost is ``bits × support`` whatever the layer's size (a dense ``X`` for a 1.3M-weight
classifier would be 1.3 GB, read twice per regularised step). Sparse rows cost some
robustness where dense ones are affordable (digits, 256 bits in 8,192 weights, six
seeds: 81 % of bits left after fine-pruning against 85 % dense), hence the threshold.
Key files record the choice (``support``; absent: dense).

The regularizer attaches to any training loop: ``fit(..., penalties=[wm.penalty()])``
or, in one's own loop, ``loss = loss + wm.penalty()(model)``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.keying import new_secret
from vtrust.models import TrainConfig, fit
from vtrust.watermark.keys import StaticPart, WatermarkKey
from vtrust.watermark.stats import binomial_tail
from vtrust.watermark.verification import Verification


def layer_weight(model: nn.Module, layer: str) -> torch.Tensor:
    """The weight tensor of the named layer (e.g. ``layers.fc2``)."""
    module = dict(model.named_modules()).get(layer)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise InputError(f"the model has no layer {layer!r} with weights")
    return weight


def default_layer(model: nn.Module) -> str:
    """The largest linear or convolutional layer: the most capacity, the least exposed."""
    candidates = [
        (m.weight.numel(), name)
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    if not candidates:
        raise InputError("the model has no linear or convolutional layer")
    return max(candidates)[1]


def new_static_key(
    model: nn.Module,
    *,
    bits: int = 256,
    layer: str | None = None,
    strength: float = 0.05,
    seed: int | None = None,
    owner: str = "",
) -> WatermarkKey:
    """A fresh static key for ``model``: random message, secret from :mod:`secrets`
    (reproducible only with an explicit ``seed``)."""
    layer = layer or default_layer(model)
    capacity = layer_weight(model, layer).numel()
    if not 1 <= bits <= capacity:
        raise InputError(f"layer {layer!r} holds at most {capacity} bits, asked for {bits}")
    if strength <= 0:
        raise InputError(f"strength must be positive, got {strength}")
    support = 0 if bits * capacity <= DENSE_COEFFICIENTS else DEFAULT_SUPPORT
    part = StaticPart(layer, bits, strength, support=support)
    return WatermarkKey(secret=new_secret(seed), static=part, owner=owner, insecure_seed=seed)


DENSE_COEFFICIENTS = 1 << 22  # new keys project densely up to this many (16 MB) ...
DEFAULT_SUPPORT = 512  # ... beyond, each bit reads this many weights
MAX_COEFFICIENTS = 1 << 26  # a projection larger than this is refused (a key file's ask)
EMBED_EVERY = 16  # embedding applies the regularizer on one training step in this many
SETTLE_STEPS = 400  # at most this many regularizer-only steps finish an embedding
SETTLE_MARGIN = 0.5  # ... until every bit's logit sits this far on its side of zero


@dataclass(frozen=True)
class Projection:
    """A static key's secret projection ``X`` (bits × n) as a function ``w ↦ X·w`` of a
    flat weight vector, differentiable in ``w``.

    Attributes:
        values: the coefficients: (bits, n) for a dense projection, (bits, support) for
            a sparse one.
        columns: for a sparse projection, the weight each coefficient reads (bits,
            support) int64; None for a dense one.
    """

    values: torch.Tensor
    columns: torch.Tensor | None = None

    @staticmethod
    def derive(key: WatermarkKey, n_weights: int) -> Projection:
        """The key's projection for a layer of ``n_weights`` weights (see the module).

        Raises:
            InputError: if it would hold more than :data:`MAX_COEFFICIENTS` coefficients
                (a dense key on a very large layer, or a key file asking for that much).
        """
        bits, support = key.static.bits, key.static.support  # type: ignore[union-attr]
        if bits * (support or n_weights) > MAX_COEFFICIENTS:
            raise InputError(
                f"the key's projection would hold {bits * (support or n_weights):,} "
                f"coefficients (at most {MAX_COEFFICIENTS:,}): use fewer bits"
                + ("" if support else " or a key with a sparse projection (support)")
            )
        if not support:
            stream = key.stream(f"static-projection:{n_weights}")
            return Projection(torch.from_numpy(stream.standard_normal((bits, n_weights))))
        stream = key.stream(f"static-projection:{n_weights}:support:{support}")
        columns = torch.from_numpy(stream.below(n_weights, (bits, support)).astype(np.int64))
        scale = np.float32(math.sqrt(n_weights / support))
        values = torch.from_numpy(stream.standard_normal((bits, support)) * scale)
        return Projection(values, columns)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        values = self.values if self.values.dtype == w.dtype else self.values.to(w.dtype)
        if self.columns is None:
            return values @ w
        read = w.index_select(0, self.columns.flatten()).view(self.columns.shape)
        return (values * read).sum(dim=1)

    def to(self, dtype: torch.dtype) -> Projection:
        """The same projection with coefficients of ``dtype``."""
        return Projection(self.values.to(dtype), self.columns)


class StaticWatermark:
    """Embed, extract and verify one static key."""

    def __init__(self, key: WatermarkKey) -> None:
        if key.static is None:
            raise InputError("StaticWatermark needs a static key")
        self.key = key
        self.part: StaticPart = key.static
        self.message = key.message()
        self._projection: dict[int, Projection] = {}

    def projection(self, n_weights: int) -> Projection:
        """The secret projection for a layer of ``n_weights`` weights, derived from the key."""
        if n_weights not in self._projection:
            self._projection[n_weights] = Projection.derive(self.key, n_weights)
        return self._projection[n_weights]

    def _check_capacity(self, model: nn.Module) -> torch.Tensor:
        weight = layer_weight(model, self.part.layer)
        if len(self.message) > weight.numel():
            raise InputError(
                f"layer {self.part.layer!r} holds at most {weight.numel()} bits, the key has "
                f"{len(self.message)}"
            )
        return weight

    def penalty(self, every: int = 1) -> Callable[[nn.Module], torch.Tensor]:
        """The regularizer λ·BCE(σ(X·w), b) as a ``model -> loss`` callable.

        With ``every`` = k > 1 it is applied on one call in k, at k·λ (the same push per
        k steps for 1/k of the cost: the projection product is most of a small model's
        step); the other calls return 0.
        """
        if every < 1:
            raise InputError(f"every must be a positive number of steps, got {every}")
        target = torch.from_numpy(self.message.astype(np.float32))
        weights: weakref.WeakKeyDictionary[nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()
        calls = [0]

        def regularizer(model: nn.Module) -> torch.Tensor:
            calls[0] += 1
            if (calls[0] - 1) % every:
                return torch.zeros(())
            if model not in weights:  # the layer lookup walks the model: once per model
                weights[model] = self._check_capacity(model)
            w = weights[model].flatten()
            logits = self.part.sharpness * self.projection(w.numel())(w) / w.norm()
            bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
            return every * self.part.strength * bce

        return regularizer

    def embed(
        self, model: nn.Module, data: Dataset, config: TrainConfig, *, every: int = EMBED_EVERY
    ) -> nn.Module:
        """Train (or fine-tune) ``model`` in place on ``data`` with the regularizer,
        applied on one step in ``every``, then settle the marked layer so every bit reads
        back (BER 0) with a margin.

        Raises:
            InputError: if the bits cannot be settled (e.g. far more bits than the layer
                can carry at this strength); the model is then left as training made it.
        """
        weight = self._check_capacity(model)
        self.projection(weight.numel())  # derived once, before the clock of the first epoch
        fit(model, data, config, penalties=[self.penalty(every)], desc="embed static watermark")
        self._settle(weight)
        return model

    def _settle(self, weight: torch.Tensor) -> None:
        """Regularizer-only steps on the marked layer alone until every bit's logit is at
        least ``SETTLE_MARGIN`` on its side: training applies the mark by a penalty, which
        leaves the odd weak bit wrong; these steps move the layer only along the
        projection, a tiny change (usually zero steps)."""
        sign = torch.from_numpy(2.0 * self.message.astype(np.float64) - 1.0)
        with torch.no_grad():  # the usual case, checked without copies: already settled
            flat = weight.detach().flatten()
            logits = self.part.sharpness * self.projection(flat.numel())(flat) / flat.norm()
            if bool((sign.float() * logits >= SETTLE_MARGIN).all()):
                return
        target = torch.from_numpy(self.message.astype(np.float64))
        projection = self.projection(weight.numel()).to(torch.float64)
        w = weight.detach().flatten().double().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=1e-3 * float(w.detach().abs().mean()) + 1e-6)
        for _ in range(SETTLE_STEPS + 1):
            logits = self.part.sharpness * projection(w) / w.norm()
            if bool((sign * logits.detach() >= SETTLE_MARGIN).all()):
                with torch.no_grad():
                    weight.copy_(w.detach().reshape(weight.shape).to(weight.dtype))
                return
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss.backward()
            optimizer.step()
        raise InputError(
            f"the {len(self.message)} bits did not settle in layer {self.part.layer!r}; "
            "use fewer bits, a larger layer or more embedding epochs"
        )

    def extract(self, model: nn.Module) -> np.ndarray:
        """The bits read from the model's weights."""
        w = self._check_capacity(model).detach().flatten()
        with torch.no_grad():
            return (self.projection(w.numel())(w) > 0).numpy().astype(np.uint8)

    def verify(self, model: nn.Module, *, fpr: float = 1e-6) -> Verification:
        """Ownership test; a key that does not fit the model is 'not owned', not an error."""
        try:
            bits = self.extract(model)
        except InputError as exc:
            return Verification.mismatch("static", fpr, str(exc))
        matches = int((bits == self.message).sum())
        total = len(bits)
        return Verification.decide(
            "static",
            matches=matches,
            total=total,
            p_value=binomial_tail(matches, total),
            fpr=fpr,
            calibration=self.key.calibration,
        )
