"""The dishonest owner's attack on answer-watermark evidence: a mark log written after
the suspect was seen.

The owner holds the answer-watermark secret, so it can write records the key explains
(:func:`~vtrust.ownership.answer_evidence.inconsistent_records` finds nothing wrong)
on which *any* suspect agrees: query the suspect on inputs of its choice, keep those the
key selects, and for each claim the "true" label that makes the key's planted label the
suspect's answer. The forged log makes an independent model look stolen with p as small
as the forger likes. What stops it is dating (:mod:`vtrust.ownership.log_dating`): only
records fixed before the suspect was seen count, and these were written after.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtrust.defenses.answer_marks import canonical
from vtrust.defenses.answer_prf import AnswerPrf
from vtrust.ownership.mark_store import MarkRecord


def forge_mark_log(
    suspect_labels: Sequence[int] | np.ndarray,
    queries: np.ndarray,
    secret: bytes,
    *,
    rate: float,
    n_classes: int,
    step: float = 1.0 / 255.0,
    client: str = "thief",
    first_id: int = 0,
) -> list[MarkRecord]:
    """Records consistent with ``secret`` at ``rate`` on which the suspect (its answers
    ``suspect_labels`` to ``queries``) gives every planted label: one per query the key
    selects, its claimed true label solved from the suspect's answer."""
    canon = canonical(queries, step)
    keyed = AnswerPrf(secret)
    u, v = keyed.select_and_label(client, canon)
    records = []
    for i in np.flatnonzero(u < rate):
        answer = int(suspect_labels[i])
        claimed_true = (answer - 1 - int(v[i]) % (n_classes - 1)) % n_classes
        records.append(MarkRecord(first_id + len(records), client, int(i), canon[i].copy(),
                                  float(step), claimed_true, answer))  # fmt: skip
    return records
