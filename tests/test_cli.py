import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtrust import __version__
from vtrust.cli import run


def cli(capsys, *args):
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def vtrust_subprocess(*args, cwd=None):
    env = {**os.environ, "VTRUST_QUIET": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from vtrust.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and __version__ in out


def test_train_json_is_one_object_and_reproducible(tmp_path):
    shas = []
    for name in ("a", "b"):
        proc = vtrust_subprocess(
            "train",
            "--arch",
            "mlp",
            "--seed",
            "3",
            "--epochs",
            "5",
            "--out",
            str(tmp_path / name),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)  # exactly one JSON document
        assert {"test_accuracy", "model_sha256", "seed"} <= set(result) and result["seed"] == 3
        shas.append(result["model_sha256"])
    assert shas[0] == shas[1]
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_info_and_catalog(capsys, tmp_path):
    assert (
        cli(
            capsys,
            "-q",
            "train",
            "--arch",
            "softmax",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "m"),
        )[0]
        == 0
    )
    code, out, _ = cli(capsys, "info", str(tmp_path / "m"), "--json")
    meta = json.loads(out)
    assert code == 0 and meta["arch"]["name"] == "softmax" and meta["training"]["epochs"] == 2
    code, out, _ = cli(capsys, "info", str(tmp_path / "m"))
    assert code == 0 and "softmax" in out and "sha256" in out
    code, out, _ = cli(capsys, "catalog", "list", "--json")
    assert code == 0 and "round-2" in {e["name"] for e in json.loads(out)["defenses"]}
    code, out, _ = cli(capsys, "catalog", "list")
    assert code == 0 and "limit-1k" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--out", "x", "--dataset", "mnist"], "unknown dataset"),
        (["train", "--out", "x", "--dataset", "idx:/no/such"], "does not exist"),
        (["train", "--out", "x", "--arch", "vgg"], "'vgg' is not one of"),
        (["train"], "Missing option '--out'"),
        (["train", "--out", "x", "--seed", "abc"], "not a valid integer"),
        (["frobnicate"], "No such command"),
        (["info", "/no/such/file"], "cannot read model file"),
        (["catalog", "list", "--section", "weapons"], "'weapons' is not one of"),
    ],
)
def test_usage_and_input_errors_are_one_line(capsys, tmp_path, args, message):
    code, out, err = cli(
        capsys, *[a.replace("x", str(tmp_path / "x")) if a == "x" else a for a in args]
    )
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("vtrust: error:")
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "x").exists()


def test_corrupt_model_file_via_console_script(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    proc = vtrust_subprocess("info", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "not a vtrust model file" in proc.stderr


def test_demo_trains_default_models_to_target_accuracy(capsys, tmp_path):
    code, out, _ = cli(capsys, "-q", "demo", "--out", str(tmp_path), "--json")
    assert code == 0
    data = json.loads(out)
    targets = {"mlp": 0.96, "cnn": 0.97, "quad": 0.95, "softmax": 0.93}
    for arch, target in targets.items():
        assert data["models"][arch]["test_accuracy"] >= target, arch
        assert (tmp_path / data["models"][arch]["file"]).is_file()
    for name in ("report.md", "report.json", "accuracy.png", "training-loss.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text()) == data
    assert Path(tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_threads_option_sets_torch_and_blas(capsys, monkeypatch):
    import torch

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    try:
        assert run(["--threads", "1", "catalog", "list", "--section", "circuits"]) == 0
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("VTRUST_THREADS", "zero")
        assert run(["catalog", "list", "--json"]) == 2
        captured = capsys.readouterr()
        assert "positive integer" in captured.err
    finally:
        from vtrust import threads

        torch.set_num_threads(before)
        threads._limits.restore_original_limits()


def test_json_failures_are_one_json_object_on_stdout(tmp_path, capsys):
    assert run(["info", str(tmp_path / "missing.vtm"), "--json"]) == 2
    captured = capsys.readouterr()
    outcome = json.loads(captured.out)
    assert outcome["exit_code"] == 2 and "missing.vtm" in outcome["error"]
    assert captured.err.count("\n") == 1


def test_version_and_help_import_neither_torch_nor_numba():
    probe = (
        "import sys\n"
        "from vtrust.cli import run\n"
        "assert run(['--version']) == 0 and run(['--help']) == 0\n"
        "heavy = [m for m in ('torch', 'numba', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_light_architecture_names_are_the_zoo():
    from vtrust.cli.app import ARCH_NAMES
    from vtrust.models import ARCHITECTURES

    assert tuple(sorted(ARCHITECTURES)) == ARCH_NAMES
