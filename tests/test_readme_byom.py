"""The README's "Audit your own model" section runs verbatim: its first Python block
exports a model and data, its shell block audits them, its second Python block uses the
API on the same files."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vtrust.cli import run

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks() -> dict[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Audit your own model", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(lang, []).append(body)
    return blocks


def test_audit_your_own_model_runs_verbatim(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    blocks = section_blocks()
    (export, api), (shell,) = blocks["python"], blocks["bash"]
    done = subprocess.run(
        [sys.executable, "-c", export], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (command,) = [line for line in shell.splitlines() if line.strip()]
    argv = shlex.split(command)
    assert argv[0] == "vtrust"
    monkeypatch.chdir(tmp_path)
    assert run(["-q", *argv[1:]]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "audit-report" / "report.json").read_text())
    assert report["target"]["format"] == "onnx" and report["accuracy"] > 0.9
    assert report["extraction"] and report["proof"]["verified"]  # as an int8 network
    assert (tmp_path / "audit-report" / "fidelity.png").stat().st_size > 1000
    namespace: dict = {}
    exec(compile(api, "README.md", "exec"), namespace)  # the Python API block, verbatim
    assert namespace["answers"].shape == (8, 10) and namespace["result"]["proof"]["verified"]
