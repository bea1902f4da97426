"""The README's short tour runs verbatim: its shell block, unedited, under ``set -e``
in an empty folder, with smoke-test budgets from the environment (``VTRUST_QUICK=1``)."""

import json
import os
import re
import sys
from pathlib import Path

from timed_stderr import longest_silence, timed_lines

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_block() -> str:
    section = README.read_text(encoding="utf-8").split("## A short tour", 1)[1]
    section = section.split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return block


def test_the_tour_runs_verbatim_and_makes_every_file_it_uses(tmp_path):
    block = tour_block()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "VTRUST_QUICK": "1", "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    env.pop("VTRUST_QUIET", None)
    code, total, stamps, stdout = timed_lines(["bash", "-euo", "pipefail", "-c", block],
                                              tmp_path, env, timeout=1200)  # fmt: skip
    stderr = "\n".join(line for _, line in stamps)
    assert code == 0, stderr[-3000:]
    assert stderr.count("VTRUST_QUICK is set") == block.count("\nvtrust ") + 1
    # every command, long ones included, speaks at least every 10 s in a log
    assert longest_silence(stamps, total) <= 10.0, stamps
    for made in ("cnn.safetensors", "jbda-report/report.md", "det-state/prada.npz",
                 "prune-report/report.json", "wm-key.json", "gate.xml", "quad-q.safetensors",
                 "proof.json", "demo-out/report.md"):  # fmt: skip
        assert (tmp_path / made).is_file(), made
    owned = [json.loads(line) for line in stdout.splitlines() if '"owned"' in line]
    assert owned and owned[0]["owned"]
    assert "accepted" in stdout and (tmp_path / "wm-key.json").stat().st_mode & 0o077 == 0
