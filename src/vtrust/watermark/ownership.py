"""The ownership decision on a suspect model: verify a watermark key, optionally under a
dating policy (a notary receipt older than when the suspect was first seen)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from torch import nn

from vtrust.data import Splits
from vtrust.errors import InputError
from vtrust.targets.base import Target, white_box
from vtrust.watermark.dynamic import DynamicWatermark
from vtrust.watermark.keys import WatermarkKey
from vtrust.watermark.notary import NotaryPublic, check_receipt
from vtrust.watermark.static import StaticWatermark
from vtrust.watermark.verification import Verification


@dataclass(frozen=True)
class Dating:
    """The verifier's dating policy: the notary it trusts and when it first saw the
    suspect. With it, "owned" also needs a receipt dating the key before that."""

    notary: NotaryPublic
    suspect_seen: datetime


def verify(
    model: Target | nn.Module,
    key: WatermarkKey,
    splits: Splits,
    *,
    fpr: float,
    dating: Dating | None = None,
) -> Verification:
    """Verify ``key`` on ``model``: white-box for static keys, through queries for dynamic
    ones (the test split measures the label prior). Everything compared is derived from
    the key's secret; ``dating`` adds the notary check. ``model`` is a target of any
    format (static keys need its white box: BlackBoxOnly otherwise) or a torch module."""
    if key.static is not None:
        result = StaticWatermark(key).verify(white_box(model, "static watermark verification"),
                                             fpr=fpr)  # fmt: skip
    else:
        try:
            marked = DynamicWatermark(key, splits)
        except InputError as exc:
            return Verification.mismatch("dynamic", fpr, str(exc))
        result = marked.verify(model, splits.test.x, fpr=fpr)
    result = replace(result, insecure_key=key.insecure_seed is not None)
    if dating is not None:
        reason = check_receipt(key.receipt, key.commitment, dating.notary, dating.suspect_seen)
        result = result.undated(reason) if reason else replace(result, dated=True)
    return result
