"""Run every study in turn (``make reproduce``), record how long each took, and
regenerate the README's results section from their outputs.

    python experiments/reproduce.py [--only study,study] [--extra ARGS]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUDIES = ["attacks", "watermark", "defenses", "matrix", "proofs", "scrambling", "enclave", "byom"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STUDIES))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    record_path = args.results / "reproduce" / "results.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"seconds": {}}
    for study in args.only.split(","):
        print(f"[reproduce] {study} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / f"{study}.py")], check=True)
        record["seconds"][study] = time.perf_counter() - started
        print(f"[reproduce] {study}: {record['seconds'][study] / 60:.1f} min", file=sys.stderr)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    subprocess.run([sys.executable, str(HERE / "readme_results.py"),
                    "--results", str(args.results)], check=True)  # fmt: skip


if __name__ == "__main__":
    main()
