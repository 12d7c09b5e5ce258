"""A small progress reporter for long verbs (stderr, so ``--json`` stdout stays clean)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "simulate") as p: ... p.update(1)`` — a bar on a terminal, else a line
    every few seconds; silent with ``enabled=False``."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = max(int(total), 1), label, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._t0 = self._last = time.monotonic()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled and self._tty:
            self.stream.write("\n")
        return False

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.done >= self.total
        if not self._tty and not finished and now - self._last < 5.0:
            return
        self._last = now
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self._t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * int(24 * frac)
        line = f"{self.label} [{bar:<24}] {self.done}/{self.total} {elapsed:5.0f}s eta {eta:4.0f}s {note}"
        self.stream.write(("\r" + line) if self._tty else (line + "\n"))
        self.stream.flush()
