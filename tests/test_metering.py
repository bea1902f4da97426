"""Metering: sealed, monotonic, signed usage counters and the owner's reconciliation,
against a host that rolls back, replays, skips and forges."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.enclave import metering as m
from vtrust.enclave.metered_device import MeteredDevice
from vtrust.enclave.usage_ledger import UsageLedger
from vtrust.errors import MeteringError, MeteringViolation, QueryRefused
from vtrust.oracle import Oracle


def provisioned(model, *, counter=True, budget=100):
    ledger = UsageLedger.generate()
    device = MeteredDevice(model, device="dev-1", owner_public=ledger.owner_public,
                           counter=m.PlatformCounter() if counter else None)  # fmt: skip
    ledger.register("dev-1", device.meter_public)
    if budget:
        device.apply(ledger.grant("dev-1", budget))
    return ledger, device


def test_answers_stop_at_the_budget_and_resume_after_a_grant(small_mlp, digits):
    ledger, device = provisioned(small_mlp, budget=50)
    x = digits.test.x[:80]
    assert device.query(x[:30]).shape == (30, 10)
    with pytest.raises(QueryRefused) as spent:
        device.query(x[30:])
    assert spent.value.defense == "meter" and len(spent.value.answered) == 20
    ledger.reconcile(device.report())
    device.apply(ledger.grant("dev-1", 30))
    assert device.query(x[50:80]).shape == (30, 10)
    assert ledger.reconcile(device.report()).count == 80


def test_metered_answers_are_the_models(small_mlp, digits):
    from vtrust.models.training import predict_proba

    _, device = provisioned(small_mlp)
    x = digits.test.x[:40]
    np.testing.assert_allclose(device.query(x), predict_proba(small_mlp, x), atol=1e-6)


def test_an_oracle_over_the_device_answers_up_to_the_budget_and_names_the_meter(small_mlp, digits):
    _, device = provisioned(small_mlp, budget=300)
    oracle = Oracle(device.target())
    with pytest.raises(QueryRefused) as spent:
        oracle.query(digits.test.x[:400], client_id="thief")  # two 256-row chunks
    assert spent.value.defense == "meter" and len(spent.value.answered) == 300
    assert oracle.client("thief").queries == 300 and oracle.client("thief").refused_by is None


def test_rollback_to_an_older_sealed_state_is_refused_with_a_platform_counter(small_mlp, digits):
    _, device = provisioned(small_mlp, budget=100)
    old = device.sealed
    device.query(digits.test.x[:100])
    with pytest.raises(m.RollbackDetected, match="old state"):
        device.restart(old)
    device.restart()  # the newest state reopens
    with pytest.raises(QueryRefused):
        device.query(digits.test.x[:1])  # and still knows the budget is spent


def test_rollback_without_a_platform_counter_is_caught_by_reconciliation(small_mlp, digits):
    ledger, device = provisioned(small_mlp, counter=False, budget=100)
    ledger.reconcile(device.report())  # report 1
    old = device.sealed
    device.query(digits.test.x[:100])
    ledger.reconcile(device.report())  # report 2: 100 answers
    device.restart(old)  # the budget is back inside ...
    device.query(digits.test.x[:100])  # ... so 100 more answers
    with pytest.raises(MeteringViolation) as caught:
        ledger.reconcile(device.report())  # a second report 2
    assert caught.value.kind == "rollback"


def test_a_replayed_report_is_caught_and_changes_nothing(small_mlp, digits):
    ledger, device = provisioned(small_mlp)
    device.query(digits.test.x[:10])
    report = device.report()
    ledger.reconcile(report)
    before = dataclasses.replace(ledger.account("dev-1"))
    with pytest.raises(MeteringViolation) as caught:
        ledger.reconcile(report)
    assert caught.value.kind == "replay" and ledger.account("dev-1") == before


def test_a_skipped_report_is_caught_and_the_chain_accepts_it_late(small_mlp, digits):
    ledger, device = provisioned(small_mlp)
    first = device.report()
    device.query(digits.test.x[:10])
    second = device.report()
    with pytest.raises(MeteringViolation) as caught:
        ledger.reconcile(second)
    assert caught.value.kind == "skip" and "report 1 was not delivered" in str(caught.value)
    assert ledger.reconcile_all([second, first]) == []  # in order, both fit the chain
    assert ledger.account("dev-1").count == 10


def test_forged_and_edited_reports_are_forgeries(small_mlp, digits):
    ledger, device = provisioned(small_mlp)
    device.query(digits.test.x[:10])
    report = device.report()
    edited = dataclasses.replace(report, count=1)  # the host under-reports
    with pytest.raises(MeteringViolation) as caught:
        ledger.reconcile(edited)
    assert caught.value.kind == "forgery"
    other = MeteredDevice(device._model, device="dev-1", owner_public=ledger.owner_public)
    with pytest.raises(MeteringViolation, match="forgery"):
        ledger.reconcile(other.report())  # another enclave's key


def test_grants_bind_to_the_enclave_state_and_the_owner_key(small_mlp, digits):
    ledger, device = provisioned(small_mlp, counter=False, budget=10)
    old = device.sealed
    ledger.reconcile(device.report())
    grant = ledger.grant("dev-1", 100)  # after report 1
    device.restart(old)  # before report 1: the grant is not for this state
    with pytest.raises(MeteringError, match="another report"):
        device.apply(grant)
    forger = UsageLedger.generate()
    forger.register("dev-1", device.meter_public)
    with pytest.raises(MeteringError, match="not signed by the owner"):
        device.apply(forger.grant("dev-1", 10**6))
    with pytest.raises(MeteringError, match="another report|not signed"):
        device.apply(dataclasses.replace(grant, limit=10**6))


def test_overuse_is_caught(small_mlp, digits):
    ledger, device = provisioned(small_mlp, budget=10)
    ledger.account("dev-1").granted = 5  # the owner's books say less than the enclave got
    device.query(digits.test.x[:10])
    with pytest.raises(MeteringViolation) as caught:
        ledger.reconcile(device.report())
    assert caught.value.kind == "overuse"


def test_tampered_or_foreign_sealed_state_is_refused(small_mlp):
    _, device = provisioned(small_mlp)
    blob = bytearray(device.sealed)
    blob[-5] ^= 1
    with pytest.raises(MeteringError, match="cannot reopen"):
        device.restart(bytes(blob))
    _, other = provisioned(small_mlp)
    with pytest.raises(MeteringError, match="cannot reopen"):
        device.restart(other.sealed)  # sealed by another device's enclave


def test_ledger_files_round_trip_and_bad_files_are_named(small_mlp, tmp_path):
    ledger, device = provisioned(small_mlp)
    ledger.reconcile(device.report())
    ledger.save(tmp_path / "ledger.json")
    ledger.save_key(tmp_path / "owner.json")
    assert (tmp_path / "owner.json").stat().st_mode & 0o077 == 0
    again = UsageLedger.load(tmp_path / "ledger.json", tmp_path / "owner.json")
    assert again.account("dev-1") == ledger.account("dev-1")
    again.reconcile(device.report())  # the chain continues after a reload
    UsageLedger.generate().save_key(tmp_path / "other.json")
    with pytest.raises(MeteringError, match="not the owner key"):
        UsageLedger.load(tmp_path / "ledger.json", tmp_path / "other.json")
    (tmp_path / "bad.json").write_text('{"format": "vtrust-usage-ledger", "devices": [{}]}')
    with pytest.raises(MeteringError, match="not a vtrust usage ledger"):
        UsageLedger.load(tmp_path / "bad.json", tmp_path / "owner.json")
    with pytest.raises(MeteringError, match="no such"):
        UsageLedger.load(tmp_path / "missing.json", tmp_path / "owner.json")


@pytest.mark.parametrize("field", ["seq", "count", "signature", "format", "version"])
def test_malformed_report_records_are_metering_errors(small_mlp, field):
    _, device = provisioned(small_mlp)
    doc = device.report().to_json()
    doc[field] = -1 if field in ("seq", "count", "version") else 7
    with pytest.raises(MeteringError):
        m.UsageReport.from_json(json.loads(json.dumps(doc)))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=200))  # fmt: skip
def test_an_honest_device_always_reconciles_and_never_exceeds_its_budget(batches, budget):
    """Law: whatever an honest host asks, the count reconciled equals the answers given,
    and never exceeds the budget granted."""
    from vtrust.models import build_model

    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    ledger, device = provisioned(model, budget=budget)
    answered = 0
    for n in batches:
        try:
            answered += len(device.query(np.zeros((n, 1, 8, 8), np.float32)))
        except QueryRefused as spent:
            answered += len(spent.answered)
        account = ledger.reconcile(device.report())
        assert account.count == answered <= budget
