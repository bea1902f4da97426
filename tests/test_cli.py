import json
import os
import subprocess
import sys
import time
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
    preset = "shift-refuse, misinformation, prada-poison, shift-global"  # defenses/default.toml
    assert f"recommended preset: {preset}" in (tmp_path / "report.md").read_text()
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


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["catalog", "list"], ["attack", "list", "--json"],
     ["defense", "list"], ["info", "MODEL"], ["info", "MODEL", "--json"]],
    ids=["version", "help", "catalog", "attacks", "defenses", "info", "info-json"],
)  # fmt: skip
def test_light_commands_import_neither_torch_nor_numba(argv, tmp_path, small_mlp):
    from vtrust.models import save_model

    model = tmp_path / "m.vtm"
    save_model(model, small_mlp, {"dataset": {"spec": "digits", "split_seed": 0}})
    argv = [str(model) if a == "MODEL" else a for a in argv]
    probe = (
        "import sys\n"
        "from vtrust.cli import run\n"
        f"assert run({argv!r}) == 0\n"
        "heavy = [m for m in ('torch', 'numba', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_the_light_architecture_names_are_the_zoo():
    from vtrust.cli.app import ARCH_NAMES
    from vtrust.models import ARCHITECTURES

    assert tuple(sorted(ARCHITECTURES)) == ARCH_NAMES


def test_an_internal_error_exits_3_with_one_line_and_json(monkeypatch, capsys, tmp_path):
    import vtrust.targets.sniff

    def broken(raw):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(vtrust.targets.sniff, "sniff", broken)
    (tmp_path / "m").write_bytes(b"x" * 16)
    assert run(["info", str(tmp_path / "m"), "--json"]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "error": "internal error: ZeroDivisionError: a bug (set VTRUST_DEBUG=1 for details)",
        "exit_code": 3,
    }
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.parametrize(
    "argv",
    [["attack", "run", "no-such-attack", "--target", "MODEL"],
     ["attack", "run", "jbda", "--target", "MODEL", "--defense", "no-such-defense"],
     ["gate", "watermark", "--model", "MODEL", "--key", "missing-key.json"],
     ["watermark", "verify", "--model", "MODEL", "--key", "missing-key.json"],
     ["info", "MODEL", "--layout", "NCWH"]],
    ids=["attack", "defense", "gate-key", "verify-key", "bad-option"],
)  # fmt: skip
def test_bad_input_exits_2_with_one_json_object(argv, capsys, tmp_path, small_mlp):
    from vtrust.models import save_model

    model = tmp_path / "m.vtm"
    save_model(model, small_mlp, {"dataset": {"spec": "digits", "split_seed": 0}})
    argv = [str(model) if a == "MODEL" else str(tmp_path / a) if a.endswith(".json") else a
            for a in argv]  # fmt: skip
    assert run(["-q", *argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["exit_code"] == 2
    assert captured.err.count("\n") == 1


def _commands(command, path):
    import click

    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, [*path, name])
    yield path, command


def test_every_command_and_option_has_help_and_names_point_to_their_lists():
    import click

    from vtrust.cli.app import cli as group

    for path, command in _commands(group, ["vtrust"]):
        assert command.help, path
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            assert param.help, (path, param.opts)
            if {"--attack", "--defense", "--circuit"} & set(param.opts):
                assert "list" in param.help, (path, param.opts)


def test_group_help_shows_whole_first_sentences(capsys):
    import click

    from vtrust.cli.app import cli as group

    for path, command in _commands(group, ["vtrust"]):
        if isinstance(command, click.Group):
            assert run([*path[1:], "--help"]) == 0
            listed = capsys.readouterr().out.split("Commands:", 1)[1]
            assert "..." not in listed, path


def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    """A typo in --out must not create folders or put a secret somewhere unexpected."""
    for argv in (["keygen", "--out", "typo/k.json"],
                 ["train", "--arch", "softmax", "--out", "typo/m.vtm"],
                 ["watermark", "embed", "--kind", "static", "--model", "m.vtm",
                  "--out", "w.vtm", "--key-out", "typo/key.json"]):  # fmt: skip
        argv = [str(tmp_path / a) if "/" in a or a.endswith(".vtm") else a for a in argv]
        started = time.perf_counter()
        assert run(["-q", *argv, "--json"]) == 2, argv
        assert time.perf_counter() - started < 5  # refused at parsing, not after training
        assert "does not exist" in json.loads(capsys.readouterr().out)["error"]
    assert not (tmp_path / "typo").exists()


def test_secrets_are_private_and_reports_get_the_users_default_mode(tmp_path):
    import os

    from vtrust.report import Report

    assert run(["-q", "keygen", "--out", str(tmp_path / "k.json")]) == 0
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    mask = os.umask(0o022)
    try:
        Report("t").write(tmp_path / "new" / "report-dir", {"x": 1})  # a report folder: made
    finally:
        os.umask(mask)
    written = tmp_path / "new" / "report-dir" / "report.json"
    assert written.stat().st_mode & 0o777 == 0o644
