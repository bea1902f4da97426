import json

import numpy as np
import pytest

from vtrust.cli import run
from vtrust.data.natural import natural_image_pool


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "mlp.safetensors"
    assert run(["-q", "train", "--arch", "mlp", "--epochs", "5", "--out", str(path)]) == 0
    return path


def test_defense_list(capsys):
    assert run(["defense", "list", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["defenses"]}
    assert {"prada", "shift", "shift-global", "mad", "mad-argmax", "reverse-sigmoid"} <= set(
        entries
    )
    assert entries["mad-argmax"]["settings"]["keep_top1"] is True  # what its file sets
    assert run(["defense", "list"]) == 0
    assert "prada" in capsys.readouterr().out


def test_attack_run_reports_which_detector_flagged_and_when(capsys, mlp_file):
    code = run(
        [
            "-q", "attack", "run", "jbda", "--target", str(mlp_file),
            "--defense", "prada", "--defense", "shift", "--budget", "400", "--json", "--no-curve",
        ]
    )  # fmt: skip
    flags = json.loads(capsys.readouterr().out)["defenses"]
    assert code == 0
    assert flags["prada"]["flagged"] and 100 < flags["prada"]["at_query"] <= 300


def test_replay_keeps_detector_state_between_runs(capsys, mlp_file, tmp_path):
    queries = tmp_path / "q.npy"
    np.save(queries, natural_image_pool(3, (1, 8, 8), seed=0))
    state = str(tmp_path / "st")
    args = ["-q", "defense", "replay", "--target", str(mlp_file), "--defense", "shift",
            "--queries", str(queries), "--client", "c", "--state", state, "--json"]  # fmt: skip
    assert run(args) == 0
    first = json.loads(capsys.readouterr().out)["defenses"]["shift"]
    assert run(args) == 0
    second = json.loads(capsys.readouterr().out)["defenses"]["shift"]
    assert not first["flagged"]  # 3 atypical queries are not enough ...
    assert second["flagged"]  # ... 6 are, because the restart lost nothing


def test_replay_rejects_bad_query_files(capsys, mlp_file, tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    code = run(["defense", "replay", "--target", str(mlp_file), "--defense", "shift",
                "--queries", str(bad)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a .npy array" in err
    state = tmp_path / "state"
    state.mkdir()
    (state / "shift.npz").write_bytes(b"junk")
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 1, 8, 8), np.float32))
    code = run(["defense", "replay", "--target", str(mlp_file), "--defense", "shift",
                "--queries", str(good), "--state", str(state)])  # fmt: skip
    assert code == 2 and "detector state" in capsys.readouterr().err


def test_replay_of_a_missing_query_log_is_named(tmp_path, capsys):
    from vtrust.cli import run

    code = run(["defense", "replay", "--target", str(tmp_path / "m.vtm"), "--defense", "prada",
                "--queries", str(tmp_path / "log.npy")])  # fmt: skip
    assert code == 2 and "log.npy: no such file" in capsys.readouterr().err


def test_replay_through_the_default_preset_keeps_its_members_state(capsys, mlp_file, tmp_path):
    queries = tmp_path / "q.npy"
    np.save(queries, natural_image_pool(3, (1, 8, 8), seed=0))
    state = tmp_path / "st"
    args = ["-q", "defense", "replay", "--target", str(mlp_file), "--defense", "default",
            "--queries", str(queries), "--client", "c", "--state", str(state),
            "--json"]  # fmt: skip
    assert run(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert {p.name for p in state.iterdir()} == {"shift-refuse.npz", "prada-poison.npz",
                                                 "shift-global.npz"}  # fmt: skip
    assert run(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["refused_by"] is None and first["answered"] == 3
    assert second["refused_by"] == "default" and second["answered"] < 3
