"""Finding an answer watermark in a suspect model, and naming the client it came from.

The suspect is a black box: it is asked the recorded queries and its top-1 labels are
compared with the planted ones. The test is exact under the null hypothesis that the
suspect was made without the oracle's planted answers (an independent model, or a copy
of the model itself that never passed through the oracle): a planted label is the
model's true label shifted by a keyed PRF value uniform over the C − 1 other classes, so
on a planted query where the suspect does *not* give the true label, it gives the
planted one with probability exactly 1/(C − 1), independently across planted queries.
With n such *informative* queries and k agreements, the p-value is
P(Binomial(n, 1/(C − 1)) ≥ k). (It conditions on the suspect's own answers, which is
sharper than comparing with the suspect's label frequencies and needs no estimate.)
Queries where the suspect gives the true label carry no evidence either way, so a thief
that learned the model but not the marks is not flagged, and a perfect copy of the
model made without the oracle (direct theft) is not answer-marked at all — that is
what model watermarks are for.

Tracing: every client's records are tested on their own (one p-value per client,
ranked); a sybil thief spreading its queries over many client ids is found by the test
over all records (valid: no selection), and the clients whose planted answers the
suspect repeats are *implicated* — a descriptive set; a benign client is in it only if
the suspect agrees with one of its planted answers by chance (probability 1/(C − 1) per
informative answer).

Checking the records against the key (:func:`inconsistent_records`) closes the crude
ways for an owner to cheat: a planted label and the choice of which query was marked are
functions of the secret, so records copied from the suspect, edited labels or records
from another deployment do not pass once the key is revealed. An owner holding the
secret can still write consistent records that fit any suspect
(:mod:`vtrust.attacks.forged_log`); only dating the log before the suspect was seen
(:mod:`vtrust.ownership.log_dating`) rules that out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from vtrust.defenses.answer_marks import planted_label
from vtrust.defenses.answer_prf import AnswerPrf
from vtrust.errors import InputError
from vtrust.ownership.mark_store import MarkRecord
from vtrust.targets.base import Target, as_target
from vtrust.watermark.stats import binomial_tail


@dataclass(frozen=True)
class AnswerEvidence:
    """The answer-watermark test of one suspect over one set of clients' records.

    Attributes:
        clients: the clients whose records were tested (sorted).
        marks: distinct planted answers among them.
        informative: marks where the suspect does not give the model's true label.
        agreements: marks where the suspect gives the planted label.
        p_value: P(Binomial(informative, 1/(C − 1)) ≥ agreements).
        implicated: clients with at least one agreement, most agreements first.
    """

    clients: tuple[str, ...]
    marks: int
    informative: int
    agreements: int
    p_value: float
    implicated: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "clients": len(self.clients),
            "marks": self.marks,
            "informative": self.informative,
            "agreements": self.agreements,
            "p_value": self.p_value,
            "implicated": list(self.implicated),
        }


def suspect_answers(suspect: Target | nn.Module, records: Sequence[MarkRecord]) -> dict[int, int]:
    """The suspect's top-1 label on every record's query, by record id (a torch module
    is taken to read queries of the records' shape)."""
    if not records:
        return {}
    shape = tuple(records[0].canonical.shape)
    suspect = as_target(suspect, shape)
    if shape != tuple(suspect.input_shape):
        raise InputError(f"the records hold queries of shape {shape}; the suspect takes "
                         f"{tuple(suspect.input_shape)}")  # fmt: skip
    x = np.stack([r.input() for r in records])
    labels = suspect.predict(x)
    return {r.id: int(label) for r, label in zip(records, labels, strict=True)}


def evidence(
    records: Sequence[MarkRecord],
    answers: dict[int, int],
    n_classes: int,
    clients: Iterable[str] | None = None,
    *,
    own: bool = False,
) -> AnswerEvidence:
    """The test over the records of ``clients`` (all clients when None), from the
    suspect's ``answers`` (:func:`suspect_answers`). Each planted answer counts once,
    asked on the first of the set's records that carries it. ``own`` keeps only answers
    planted under the clients' own keys — not those repeated to them because another
    client had asked a near-identical query first, which would implicate both."""
    if n_classes < 2:
        raise InputError("an answer-watermark test needs at least 2 classes")
    wanted = None if clients is None else set(clients)
    first: dict[int, MarkRecord] = {}
    for record in records:
        if (wanted is None or record.client in wanted) and not (own and record.of is not None):
            first.setdefault(record.origin, record)
    informative = agreements = 0
    per_client: dict[str, int] = {}
    for record in first.values():
        label = answers[record.id]
        if label == record.true_label:
            continue
        informative += 1
        if label == record.planted:
            agreements += 1
    for record in records:
        if (wanted is None or record.client in wanted) and answers[record.id] == record.planted:
            per_client[record.client] = per_client.get(record.client, 0) + 1
    tested = sorted(wanted if wanted is not None else {r.client for r in records})
    implicated = sorted(per_client, key=lambda c: (-per_client[c], c))
    p_value = binomial_tail(agreements, informative, 1.0 / (n_classes - 1)) if informative else 1.0
    return AnswerEvidence(tuple(tested), len(first), informative, agreements, p_value,
                          tuple(implicated))  # fmt: skip


def trace(
    suspect: Target | nn.Module, records: Sequence[MarkRecord], n_classes: int | None = None
) -> tuple[AnswerEvidence, list[AnswerEvidence]]:
    """The test over all records, and one test per client on the answers planted under
    its own key, ranked by p-value (smallest first; ties: most agreements, then id)."""
    shape = records[0].canonical.shape if records else None
    classes = as_target(suspect, shape).n_classes if n_classes is None else n_classes
    answers = suspect_answers(suspect, records)
    overall = evidence(records, answers, classes)
    clients = sorted({r.client for r in records})
    ranked = sorted((evidence(records, answers, classes, [c], own=True) for c in clients),
                    key=lambda e: (e.p_value, -e.agreements, e.clients))  # fmt: skip
    return overall, ranked


def inconsistent_records(
    records: Iterable[MarkRecord], secret: bytes, rate: float, n_classes: int
) -> list[int]:
    """Ids of records the owner's secret does not explain: a planted record whose query
    the key would not have selected, or whose planted label is not the key's; a reused
    one whose label differs from the planted record it names. Empty for an honest log."""
    bad: list[int] = []
    planted: dict[int, int] = {}
    keyed = AnswerPrf(secret)
    for record in records:
        if record.of is not None:
            if planted.get(record.of) != record.planted:
                bad.append(record.id)
            continue
        u, v = keyed.select_and_label(record.client, record.canonical[None])
        if u[0] >= rate or planted_label(record.true_label, v[0], n_classes) != record.planted:
            bad.append(record.id)
        planted[record.id] = record.planted
    return bad
