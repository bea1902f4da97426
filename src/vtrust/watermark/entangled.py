"""Entangled watermarks (EWE, Jia et al., USENIX Security 2021): trigger inputs whose
hidden representations are pulled onto the target class's, so that a model which learns
the task from the owner's answers has a chance of learning the trigger behaviour too.

Triggers (``entangled`` dynamic keys, :func:`vtrust.watermark.dynamic.trigger_set`):
images of one secret source class stamped with a secret square pattern at a secret
position, all labelled with a secret target class. Embedding fine-tunes the model on
its training data, and after every ``every``-th clean batch takes one *watermark batch*:
half triggers, half clean target-class images, with the loss

    CE(triggers and target images → target) − κ · Σ_l SNNL(h_l, w, T_l)

over the activations h_l of the last ``layers`` ReLUs (w marks trigger vs clean). The
soft nearest-neighbour loss (Frosst et al. 2019) is high when the two groups are
indistinguishable in h_l; the weights *maximise* it (entanglement) while each layer's
temperature T_l descends it (it keeps finding the scale at which the groups still
separate), as in the paper's Algorithm 1.

Deviation from the paper, stated: the trigger position is drawn from the key's secret
rather than chosen by the SNNL gradient, so the verifier re-derives every trigger from
the key and the data alone; and the trigger images are not FGSM-optimised (a step that
depends on the marked model's weights, so it could not be re-derived).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust import progress, quick
from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.models import TrainConfig


@dataclass(frozen=True)
class EntangleParams:
    """Attributes:
    factor: κ, the weight of the summed SNNL terms (the paper uses 32 on MNIST).
    layers: how many of the last ReLU activations are entangled (the paper: 3; fewer if
        the model has fewer).
    every: one watermark batch after this many clean batches.
    temperature: each layer's initial temperature; temperature_lr its step size.
    """

    factor: float = 32.0
    layers: int = 3
    every: int = 2
    temperature: float = 1.0
    temperature_lr: float = 0.1

    def __post_init__(self) -> None:
        if self.factor < 0 or self.layers < 1 or self.every < 1:
            raise InputError(f"invalid entanglement settings {self}")
        if not self.temperature > 0 or self.temperature_lr < 0:
            raise InputError(f"temperatures must be positive, got {self}")


MIN_TEMPERATURE = 0.05  # the temperature's floor: below it exp(−d/T) underflows


def snnl(features: torch.Tensor, groups: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """The soft nearest-neighbour loss of a batch (Frosst et al., ICML 2019):

        −1/b Σ_i log( Σ_{j≠i, g_j=g_i} e^{−d_ij/T} / Σ_{k≠i} e^{−d_ik/T} )

    with d the squared Euclidean distance of the L2-normalised rows of ``features``.
    It is 0 when every point's neighbours are of its own group and grows as the groups
    mix; it is invariant to the order of the batch and to scaling the features — every
    row is first divided by its largest |value|, so a row of tiny values normalises as
    exactly as any other (``normalize`` alone treats norms below its ε = 1e-12 as ε);
    an all-zero row stays zero.
    """
    flat = features.flatten(1)
    peak = flat.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
    rows = nn.functional.normalize(flat / peak, dim=1)
    distances = torch.cdist(rows, rows).pow(2)
    logits = -distances / temperature
    eye = torch.eye(len(rows), dtype=torch.bool)
    logits = logits.masked_fill(eye, float("-inf"))
    same = (groups[:, None] == groups[None, :]) & ~eye
    numerator = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
    denominator = torch.logsumexp(logits, dim=1)
    kept = same.any(dim=1)  # a point alone in its group has no same-group neighbour
    return (denominator - numerator)[kept].mean() if bool(kept.any()) else logits.new_zeros(())


def hidden_activations(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """The model's logits and the outputs of each of its ReLU modules, in order."""
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        logits = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return logits, outputs


def entangle(
    model: nn.Module,
    data: Dataset,
    triggers: np.ndarray,
    target: int,
    config: TrainConfig,
    params: EntangleParams = EntangleParams(),
) -> nn.Module:
    """Fine-tune ``model`` in place on ``data`` with watermark batches entangling
    ``triggers`` (all to be labelled ``target``) with the target class (module docstring).

    Raises:
        InputError: if ``data`` has no image of the target class, or the model no ReLU.
    """
    target_images = data.x[data.y == target]
    if len(target_images) == 0 or len(triggers) == 0:
        raise InputError(f"entangling needs triggers and images of the target class {target}")
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y, dtype=np.int64))
    trig = torch.from_numpy(np.ascontiguousarray(triggers, dtype=np.float32))
    tgt = torch.from_numpy(np.ascontiguousarray(target_images, dtype=np.float32))
    half = max(2, config.batch_size // 2)
    groups = torch.cat([torch.ones(half), torch.zeros(half)])
    labels = torch.full((2 * half,), int(target), dtype=torch.int64)
    temperatures = torch.full((params.layers,), float(params.temperature))
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    cross_entropy = nn.functional.cross_entropy
    model.train()
    for _ in progress.bar(range(quick.epochs(config.epochs)), desc="embed entangled watermark"):
        order = torch.randperm(len(x), generator=generator)
        for step, start in enumerate(range(0, len(x), config.batch_size)):
            batch = order[start : start + config.batch_size]
            loss = cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % params.every:
                continue
            pick_t = torch.randint(len(trig), (half,), generator=generator)
            pick_c = torch.randint(len(tgt), (half,), generator=generator)
            mixed = torch.cat([trig[pick_t], tgt[pick_c]])
            temps = temperatures.clone().requires_grad_(True)
            logits, acts = hidden_activations(model, mixed)
            if not acts:
                raise InputError("EWE entangles ReLU activations; the model has none")
            terms = sum(snnl(a, groups, temps[k]) for k, a in enumerate(acts[-params.layers :]))
            (grad_t,) = torch.autograd.grad(terms, temps, retain_graph=True)
            loss = cross_entropy(logits, labels) - params.factor * terms
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            temperatures = temperatures - params.temperature_lr * grad_t
            temperatures = temperatures.clamp(min=MIN_TEMPERATURE)
    model.eval()
    return model
