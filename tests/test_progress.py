"""Progress (tqdm): whole lines on a stream that is not a terminal, a bar redrawn in place on one, nothing
when disabled; and a verb run with ``--json`` prints exactly one JSON line on stdout (its last), its
progress on stderr only."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

from myoedge.ground.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_and_the_final_count():
    log = io.StringIO()
    with Progress(40, "simulate", stream=log) as progress:
        for i in range(40):
            progress.update(1, f"s{i:02d}")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 1 <= len(lines) <= 3  # first and last line (+1 if 5 s passed)
    assert lines[-1].startswith("simulate: 100%") and "40/40" in lines[-1] and "s39" in lines[-1]
    assert progress.done == 40


def test_a_terminal_gets_a_bar_redrawn_in_place():
    term = Terminal()
    with Progress(3, "train", stream=term) as progress:
        for _ in range(3):
            time.sleep(0.12)  # past tqdm's 0.1 s between redraws
            progress.update(1, "loss 0.1")
    text = term.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n") and text.count("\n") == 1
    assert "train:  33%" in text and "3/3" in text and "loss 0.1" in text


def test_nothing_is_written_before_the_first_step():
    for stream in (io.StringIO(), Terminal()):
        with Progress(3, "simulate", stream=stream):
            pass  # e.g. the verb refused its output before any work
        assert stream.getvalue() == ""


def test_disabled_progress_writes_nothing_and_still_counts():
    log = io.StringIO()
    with Progress(5, "evaluate", enabled=False, stream=log) as progress:
        progress.update(2)
        progress.update(3, "done")
    assert log.getvalue() == "" and progress.done == 5


def test_a_verb_with_json_prints_one_json_line_on_stdout_and_progress_on_stderr(tmp_path):
    out = subprocess.run([sys.executable, "-m", "myoedge", "simulate", "--joint", "knee", "--subjects", "2",
                          "--duration", "1", "--out", str(tmp_path / "data"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert isinstance(json.loads(lines[-1]), dict)  # the JSON object is the last line, and the only one
    assert not [line for line in lines[:-1] if line.lstrip().startswith(("{", "["))]
    assert "simulate: 100%" in out.stderr and "2/2" in out.stderr and "\r" not in out.stderr
    assert "%|" not in out.stdout
