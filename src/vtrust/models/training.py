"""A seeded, deterministic training loop and the prediction helpers every module uses.

The loop takes the user's model and data and leaves the model in place; extra loss terms
(e.g. a watermark regularizer) attach through ``penalties`` without replacing the loop.
Given the same seed, data and torch build, two runs on CPU give bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from vtrust import progress, quick
from vtrust.data import Dataset
from vtrust.errors import InputError

Penalty = Callable[[nn.Module], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (AdamW, cross-entropy).

    ``grad_clip`` > 0 clips the global gradient norm; ``cosine`` anneals the learning rate
    to zero over the run; ``seed`` fixes the batch order.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    cosine: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if (
            self.epochs < 0
            or self.batch_size < 1
            or self.lr <= 0
            or self.weight_decay < 0
            or self.grad_clip < 0
        ):
            raise InputError(f"invalid training settings {self}")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TrainHistory:
    """Per-epoch mean training loss (including penalties) and training accuracy."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def fit(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    penalties: Sequence[Penalty] = (),
    parameters: Sequence[nn.Parameter] | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
) -> TrainHistory:
    """Train ``model`` in place on ``data`` with AdamW and cross-entropy.

    Args:
        model: any module mapping (N, C, H, W) images to logits.
        data: the training set.
        config: epochs, batch size, learning rate, weight decay, clipping, seed.
        penalties: callables ``model -> scalar tensor`` added to every batch's loss.
        parameters: train only these parameters (default: all of the model's).
        after_step: called after every optimizer step (e.g. to re-apply a pruning mask).
        desc: label of the progress bar.

    Returns:
        The per-epoch loss and accuracy.
    """
    return fit_arrays(
        model,
        data.x,
        data.y,
        config,
        penalties=penalties,
        parameters=parameters,
        after_step=after_step,
        desc=desc,
    )


def fit_arrays(
    model: nn.Module,
    x: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig = TrainConfig(),
    *,
    penalties: Sequence[Penalty] = (),
    parameters: Sequence[nn.Parameter] | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
) -> TrainHistory:
    """:func:`fit` on raw arrays: ``targets`` are labels (N,) or probability rows (N, K).

    Probability targets train with the soft cross-entropy (the distillation loss); a
    one-hot row is the same as its label.
    """
    if len(x) == 0 or len(x) != len(targets):
        raise InputError(f"need equally many inputs and targets, got {len(x)} and {len(targets)}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    soft = np.asarray(targets).ndim == 2
    yt = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32 if soft else np.int64))
    labels = yt.argmax(1) if soft else yt
    params = list(parameters) if parameters is not None else list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(xt) // config.batch_size)
    n_epochs = quick.epochs(config.epochs)  # as configured, unless VTRUST_QUICK caps it
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_epochs * steps_per_epoch)
        if config.cosine and n_epochs > 0
        else None
    )
    generator = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss()
    history = TrainHistory()
    model.train()
    epochs = progress.bar(range(n_epochs), desc=desc, unit="epoch")
    for _ in epochs:
        order = torch.randperm(len(xt), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(xt), config.batch_size):
            idx = order[start : start + config.batch_size]
            logits = model(xt[idx])
            loss = loss_fn(logits, yt[idx])
            for penalty in penalties:
                loss = loss + penalty(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            if after_step is not None:
                after_step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        history.loss.append(total_loss / len(xt))
        history.accuracy.append(correct / len(xt))
        epochs.set_postfix(loss=f"{history.loss[-1]:.4f}")
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """The model's logits for ``x`` (N, C, H, W), computed in batches in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], np.float32))
        out.append(model(chunk).numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)


def predict_proba(model: nn.Module, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities (N, n_classes) as ``float64`` rows summing to 1; ``model`` is
    a torch module or a :class:`vtrust.targets.Target` (its black box)."""
    if not isinstance(model, nn.Module):
        return model.predict_proba(x)
    logits = predict_logits(model, x, batch_size=batch_size).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def top1(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Top-1 classes (N,) of a torch module or a :class:`vtrust.targets.Target`."""
    if not isinstance(model, nn.Module):
        return model.predict(x)
    return predict_logits(model, x).argmax(1)


def accuracy(model: nn.Module, data: Dataset) -> float:
    """Top-1 accuracy of ``model`` (a torch module or a target) on ``data``."""
    if len(data) == 0:
        raise InputError("cannot measure accuracy on an empty dataset")
    return float((top1(model, data.x) == data.y).mean())


def agreement(model_a: nn.Module, model_b: nn.Module, x: np.ndarray) -> float:
    """Fraction of inputs on which two models (torch modules or targets) give the same
    top-1 class (fidelity)."""
    if len(x) == 0:
        raise InputError("cannot measure agreement on no inputs")
    return float((top1(model_a, x) == top1(model_b, x)).mean())
