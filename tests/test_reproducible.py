"""What a study pins before numpy and torch load, and what its results record of it."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtrust.reproducible import portable_code_paths

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "NPY_ENABLE_CPU_FEATURES")


def record_after_pinning(argument: str = "", **env: str) -> dict:
    """numerics_record() of a fresh interpreter that called pin_numerics(argument)."""
    code = ("import json; from vtrust.reproducible import pin_numerics, numerics_record; "
            f"pin_numerics({argument}); print(json.dumps(numerics_record()))")  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**clean, **env}, check=True, timeout=120)  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.skipif(not portable_code_paths(), reason="needs an x86-64 CPU with AVX2")
def test_a_study_computes_on_code_paths_every_avx2_cpu_shares():
    record = record_after_pinning()
    assert record["portable"] is True
    assert record["threads"] == 1
    assert record["torch_cpu_capability"] == "AVX2"  # not AVX512 on a CPU that has it
    assert record["onednn"] is False
    assert record["code_paths"]["MKL_CBWR"] == "COMPATIBLE,STRICT"
    assert "AVX512" not in record["code_paths"]["NPY_ENABLE_CPU_FEATURES"]
    assert "any x86-64 CPU with AVX2" in record["bit_exact_when"]


def test_a_timing_study_keeps_the_cpus_own_paths_and_says_so():
    record = record_after_pinning("portable=False")
    assert record["portable"] is False
    assert record["code_paths"]["MKL_CBWR"] == "AUTO,STRICT"
    assert "same seed, CPU type" in record["bit_exact_when"]


def test_a_pin_the_user_overrode_is_kept_and_the_results_are_not_called_portable():
    record = record_after_pinning(MKL_CBWR="AUTO")
    assert record["code_paths"]["MKL_CBWR"] == "AUTO"
    assert record["portable"] is False


def load_reproduce():
    spec = importlib.util.spec_from_file_location(
        "reproduce", ROOT / "experiments" / "reproduce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_differing_fingerprints_are_one_line_and_not_failing_figures(capsys):
    reproduce = load_reproduce()
    committed = {"seeds": [0, 1], "numerics": {"cpu": "AMD EPYC", "portable": True},
                 "across_seeds": {"victims": {"mlp": {"per_seed": ["ab" * 32, "cd" * 32]}},
                                  "fidelity": {"mean": 0.9, "min": 0.89, "max": 0.91, "n": 2,
                                               "values": [0.89, 0.91]}}}  # fmt: skip
    rerun = {"seeds": [0, 1], "numerics": {"cpu": "Intel Xeon", "portable": True},
             "across_seeds": {"victims": {"mlp": {"per_seed": ["ef" * 32, "01" * 32]}},
                              "fidelity": {"mean": 0.95, "min": 0.94, "max": 0.96, "n": 2,
                                           "values": [0.94, 0.96]}}}  # fmt: skip
    found = reproduce.check_study("attacks", committed, rerun)
    assert found == ["attacks: fidelity: 0.95 outside the committed spread [0.89, 0.91]"]
    said = capsys.readouterr().err
    assert "not bit-exact with the committed run — 1 fingerprints differ (e.g. victims.mlp)" in said
    assert "committed on AMD EPYC (portable code paths), rerun on Intel Xeon" in said


def test_a_rerun_is_called_identical_only_when_every_figure_but_the_timings_is():
    reproduce = load_reproduce()
    committed = {"across_seeds": {"fidelity": 0.9, "seconds": 10.0, "rows": [{"n": 3}]}}
    assert reproduce.identical(committed, {"across_seeds": {"fidelity": 0.9, "seconds": 12.0,
                                                            "rows": [{"n": 3}]}})  # fmt: skip
    assert not reproduce.identical(committed, {"across_seeds": {"fidelity": 0.9000001,
                                                                "rows": [{"n": 3}]}})  # fmt: skip
