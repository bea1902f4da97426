"""Ambiguity attacks on watermarks (Fan et al., NeurIPS 2019; Li et al. 2019): a
claimant who does not own a model writes a key that makes the ownership test say
"owned" on it.

The attacker has read vtrust's code and key format. Since every value the test compares
is derived from the key's secret, the best it can do is grind: draw ``tries`` fresh
secrets of the victim key's kind (static: on every linear or convolutional layer in
turn; dynamic: the victim key's trigger style and count), test each on the suspect
model, and keep the best. It also tries the original forgery — a key file that states
the bits the model's weights give under the forger's projection — which the key format
now refuses. The promise broken, if any forged key verifies, is "only the owner's key
says owned"; :func:`forge` reports the best attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from torch import nn

from vtrust import progress
from vtrust.catalog import register
from vtrust.data import Splits
from vtrust.errors import InputError, KeyFileError
from vtrust.targets.base import white_box
from vtrust.watermark.dynamic import new_dynamic_key
from vtrust.watermark.keys import key_from_json, key_to_json
from vtrust.watermark.ownership import verify
from vtrust.watermark.static import StaticWatermark, new_static_key


@dataclass(frozen=True)
class AmbiguityParams:
    """``tries``: secrets the forger grinds through; ``bits``/``triggers`` of its keys
    (0: the victim key's)."""

    tries: int = 200
    bits: int = 0
    triggers: int = 0

    def __post_init__(self) -> None:
        if self.tries < 1 or self.bits < 0 or self.triggers < 0:
            raise InputError("tries must be positive, bits and triggers non-negative")


@dataclass(frozen=True)
class Forgery:
    """The best forged key's test result, and whether a stated-bits key was accepted."""

    tries: int
    best: Any  # Verification
    stated_bits_accepted: bool

    @property
    def succeeded(self) -> bool:
        return self.best.owned or self.stated_bits_accepted

    def to_json(self) -> dict[str, Any]:
        return {
            "tries": self.tries,
            "owned": self.succeeded,
            "p_value": self.best.p_value,
            "adjusted_p_value": self.best.adjusted_p_value,
            "score": self.best.score,
            "stated_bits_accepted": self.stated_bits_accepted,
        }


def stated_bits_key(model: nn.Module, layer: str, bits: int, seed: int) -> str:
    """The pre-fix forgery as key JSON: the forger's secret, and as its message the bits
    the model's weights give under the forger's projection (a version-1-style key)."""
    key = new_static_key(model, bits=bits, layer=layer, seed=seed)
    read = StaticWatermark(key).extract(model)
    doc = json.loads(key_to_json(key))
    doc["static"]["bits"] = "".join(map(str, read.tolist()))
    return json.dumps(doc)


class Ambiguity:
    kind = "ambiguity"

    def __init__(self, params: AmbiguityParams) -> None:
        self.params = params

    def forge(
        self, model: nn.Module, splits: Splits, victim_key, *, fpr: float = 1e-6, seed: int = 0
    ) -> Forgery:
        """Grind ``tries`` secrets against ``model``; the best result."""
        p = self.params
        best = None
        module, layers = None, []
        if victim_key.static is not None:  # forged static keys need the weights
            module = white_box(model, "the ambiguity attack on a static mark")
            layers = [n for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
            if not layers:
                raise InputError("the ambiguity attack needs a model with linear or conv layers")
        for i in progress.bar(range(p.tries), desc="ambiguity"):
            if module is not None:
                layer = layers[i % len(layers)]
                weights = dict(module.named_modules())[layer].weight.numel()
                bits = min(p.bits or victim_key.static.bits, weights)
                key = new_static_key(module, bits=bits, layer=layer, seed=seed * 1_000_003 + i)
            else:
                key = new_dynamic_key(
                    splits,
                    style=victim_key.dynamic.style,
                    triggers=p.triggers or victim_key.dynamic.count,
                    seed=seed * 1_000_003 + i,
                )
            result = verify(model, key, splits, fpr=fpr)
            if best is None or result.p_value < best.p_value:
                best = result
        accepted = False
        if module is not None:  # the victim's own layer and message length
            text = stated_bits_key(module, victim_key.static.layer, victim_key.static.bits, seed)
            try:
                key_from_json(text, source="forged key")
                accepted = True
            except KeyFileError:
                accepted = False
        return Forgery(p.tries, best, accepted)


register(
    "attacks", "ambiguity", AmbiguityParams, "forge ownership: grind secrets for a key that fits"
)(Ambiguity)
