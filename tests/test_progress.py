"""Progress in a log: with stderr not a terminal, long commands print a line at least
every 10 s (stage lines, then the heartbeat's "where it is" lines)."""

import subprocess
import sys
import threading
import time

from vtrust import progress


def _timed_lines(argv, cwd, env=None):
    proc = subprocess.Popen([sys.executable, "-c", "from vtrust.cli import main; main()", *argv],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    started = time.monotonic()
    stamps = []

    def read():
        for line in proc.stderr:
            stamps.append((time.monotonic() - started, line.rstrip()))

    reader = threading.Thread(target=read)
    reader.start()
    proc.wait(timeout=900)
    reader.join()
    return proc.returncode, time.monotonic() - started, stamps


def test_a_long_command_prints_a_line_at_least_every_10_s_in_a_log(tmp_path):
    code, total, stamps = _timed_lines(
        ["train", "--arch", "cnn", "--epochs", "100", "--out", str(tmp_path / "m.vtm")], tmp_path
    )
    assert code == 0, stamps
    times = [0.0] + [t for t, _ in stamps] + [total]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 10.0, stamps
    if total > 10:  # long enough to need the heartbeat
        assert any("elapsed" in line for _, line in stamps), stamps


def test_the_log_bar_reports_position_and_what_is_left():
    bar = progress.LogBar(range(10), "work", None)
    bar.started -= 20  # 20 s in, 4 of 10 done
    bar.n = 4
    assert bar.status() == "[work] 4/10, 20 s elapsed, ~30 s left"
    bar.close()
    assert list(progress.LogBar(range(3), "x", None)) == [0, 1, 2]


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
