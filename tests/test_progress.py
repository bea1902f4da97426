"""Progress in a log: with stderr not a terminal, long commands print a line at least
every 10 s (stage lines, then the heartbeat's "where it is" lines)."""

import sys
import time

from timed_stderr import longest_silence, timed_lines

from vtrust import progress


def test_a_long_command_prints_a_line_at_least_every_10_s_in_a_log(tmp_path):
    argv = ["train", "--arch", "cnn", "--epochs", "100", "--out", str(tmp_path / "m.vtm")]
    code, total, stamps, _ = timed_lines([sys.executable, "-m", "vtrust", *argv], tmp_path)
    assert code == 0, stamps
    assert longest_silence(stamps, total) <= 10.0, stamps
    if total > 10:  # long enough to need the heartbeat
        assert any("elapsed" in line for _, line in stamps), stamps


def test_the_log_bar_reports_position_and_what_is_left():
    bar = progress.LogBar(range(10), "work", None)
    bar.started -= 20  # 20 s in, 4 of 10 done
    bar.n = 4
    assert bar.status() == "[work] 4/10, 20 s elapsed, ~30 s left"
    bar.close()
    assert list(progress.LogBar(range(3), "x", None)) == [0, 1, 2]


def test_a_bar_iterates_any_sequence_even_an_array():
    import numpy as np

    assert [int(v) for v in progress.bar(np.array([3, 1, 2]), desc="x")] == [3, 1, 2]
    assert list(progress.bar(np.array([]), desc="x")) == []


def test_the_heartbeat_is_silent_outside_a_command(monkeypatch, capsys):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(progress, "_in_log", lambda: True)
    monkeypatch.setattr(progress, "_enabled", True)  # the suite's conftest silences it
    progress.stage("[test] a stage that ended")
    time.sleep(1.0)  # no command running: nothing more
    assert capsys.readouterr().err.count("\n") == 1
    with progress.running():
        progress.stage("[test] inside a command")
        time.sleep(1.0)
    assert "still running" in capsys.readouterr().err


def test_a_malformed_heartbeat_setting_is_bad_input_not_a_traceback(tmp_path):
    for raw in ("abc", "0", "-1", "inf", "nan"):
        assert progress._heartbeat_setting(raw)[1] is not None, raw
    assert progress._heartbeat_setting("2.5") == (2.5, None)
    import os
    import subprocess

    env = {**os.environ, "VTRUST_HEARTBEAT": "abc"}
    done = subprocess.run([sys.executable, "-m", "vtrust", "--version", "--json"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "VTRUST_HEARTBEAT" in done.stderr
