"""The pieces of the monitor's browser tests: Debian's Chromium driven by Playwright, CLI processes that are
always stopped, and the files an amp-sim + ``myoedge run`` pair needs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, setup_parts

from myoedge.body.recording import Recording, RecordingMeta, save_recording
from myoedge.edge.dsp.envelope_report import emg_like

SCREENSHOTS_ENV = "MYOEDGE_SCREENSHOTS"  # a folder to keep the screenshots in (docs/img for the README)


def chromium_path() -> str:
    """Debian's Chromium, which `make test` installs (apt-get install chromium); a clear failure if absent."""
    for name in (os.environ.get("MYOEDGE_CHROMIUM"), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    pytest.fail("the monitor's browser test needs Chromium, which `make test` installs with apt-get "
                "(`apt-get install -y chromium`, as root or through sudo); install it, or set "
                "MYOEDGE_CHROMIUM to a Chromium binary")


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """``python -m myoedge ARGS`` with its output read by threads; ``line(prefix)`` waits for a line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "myoedge", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._new = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream, sink) -> None:
        for line in stream:
            with self._new:
                sink.append(line.rstrip("\n"))
                self._new.notify_all()

    def line(self, prefix: str, timeout_s: float = 30.0) -> str:
        with self._new:
            ok = self._new.wait_for(lambda: any(x.startswith(prefix) for x in self.out) or
                                    self.proc.poll() is not None, timeout_s)
            hits = [x for x in self.out if x.startswith(prefix)]
        assert ok and hits, f"no line {prefix!r} from {self.proc.args}: {self.out} {self.err[-5:]}"
        return hits[0]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def processes():
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        started.append(Proc(*args))
        return started[-1]

    try:
        yield start
    finally:
        for p in reversed(started):
            p.stop()


def run_files(root: Path) -> tuple[Path, Path, Path]:
    """(bundle, profile, recording): the small wrist test bundle, its profile, and 4 s of EMG with its
    muscles as channel labels for ``myoedge amp-sim --recording`` (it loops)."""
    bundle, profile, _ = setup_parts(root)
    profile_path = profile.save(root / "s01.json")
    emg = emg_like(fs_hz=FS, seconds=4.0, n_channels=len(MUSCLES), seed=3)
    rec = Recording(meta=RecordingMeta(joint="wrist", muscles=MUSCLES, subject="s01", trial="monitor"),
                    emg_fs=FS, emg=emg, emg_t0=0.0, time=np.arange(400) / 100.0, rate=100.0,
                    theta=np.zeros(400))
    return bundle.path, profile_path, save_recording(rec, root / "rec")
