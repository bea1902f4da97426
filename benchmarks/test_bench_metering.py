"""Metering costs (goal: a counter update ≤ 1 ms).

* Counter update: what the enclave does for every answered batch before an answer
  leaves — count it, move the platform counter, serialise and seal (AES-256-GCM) the
  meter state — timed as one ecall on a model-free enclave: ``extra_info['ms']``.
* A signed usage report (Ed25519 inside, one ecall) and its reconciliation by the
  owner (signature check and chain): ``extra_info['report_ms']``, ``reconcile_ms``.
* A metered answer of a digits MLP batch of 256 against the same MLP unmetered, in
  one run: ``extra_info['ratio_to_unmetered']``.
"""

import time

import numpy as np
import torch

from vtrust.enclave import metering as m
from vtrust.enclave.metered_device import MeteredDevice
from vtrust.enclave.runtime import Enclave, one_thread
from vtrust.enclave.usage_ledger import UsageLedger
from vtrust.models import build_model
from vtrust.timing import interleaved, median_seconds


def count_and_seal(inside, n):
    """One counter update as ``meter_answer`` does it, without the model."""
    core = inside.state["meter"]
    core.charge(n)
    return inside.seal(core.stamp())


def test_counter_update(benchmark):
    ledger = UsageLedger.generate()
    enclave = Enclave(None, role="meter", entry_points=(*m.ENTRY_POINTS, count_and_seal))
    counter = m.PlatformCounter()
    enclave.ecall(m.meter_provision, "dev", ledger.owner_public, counter)
    benchmark(enclave.ecall, count_and_seal, 256)
    ms = 1000 * median_seconds(lambda: enclave.ecall(count_and_seal, 256), repeats=50)
    if benchmark.stats:
        benchmark.extra_info["ms"] = ms
    assert counter.value >= 2


def test_report_and_reconcile(benchmark):
    ledger = UsageLedger.generate()
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    device = MeteredDevice(model, device="dev", owner_public=ledger.owner_public,
                           counter=m.PlatformCounter())  # fmt: skip
    ledger.register("dev", device.meter_public)
    benchmark(device.report)  # reports the owner never sees: a fresh chain below
    ledger = UsageLedger.generate()
    device = MeteredDevice(model, device="dev", owner_public=ledger.owner_public)
    ledger.register("dev", device.meter_public)
    reports = [device.report() for _ in range(21)]
    reconcile = []
    for report in reports:
        started = time.perf_counter()
        ledger.reconcile(report)
        reconcile.append(time.perf_counter() - started)
    if benchmark.stats:
        benchmark.extra_info.update(
            report_ms=1000 * median_seconds(device.report, repeats=21),
            reconcile_ms=1000 * float(np.median(reconcile)),
        )
    assert ledger.account("dev").seq == 21


def test_metered_answer_against_unmetered(benchmark):
    model = build_model("mlp", (1, 8, 8), 10, seed=0).eval()
    ledger = UsageLedger.generate()
    device = MeteredDevice(model, device="dev", owner_public=ledger.owner_public,
                           counter=m.PlatformCounter())  # fmt: skip
    ledger.register("dev", device.meter_public)
    device.apply(ledger.grant("dev", 10**9))
    x = np.random.default_rng(0).random((256, 1, 8, 8), dtype=np.float32)

    def unmetered():
        with torch.no_grad(), one_thread():  # the enclave's single core, for a fair ratio
            return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()

    benchmark(device.query, x)
    timing = interleaved(unmetered, lambda: device.query(x), rounds=20)
    if benchmark.stats:
        benchmark.extra_info.update(unmetered_ms=1000 * timing["a_s"],
                                    metered_ms=1000 * timing["b_s"],
                                    ratio_to_unmetered=timing["ratio"])  # fmt: skip
    assert len(device.query(x)) == 256
