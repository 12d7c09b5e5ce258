"""Progress of long verbs, drawn by tqdm on stderr (so ``--json`` stdout stays clean).

``Progress`` is the one interface the verbs use; tqdm keeps the count, the rate and the time left and
formats them. On a terminal tqdm redraws its bar in place from the first step on. Elsewhere (a log file, a
pipe, CI) a bar redrawn with carriage returns would turn the log into one unreadable line, so the same
tqdm line is written whole, at most every ``LOG_INTERVAL_S`` seconds and once at the end. Nothing is
written before the first step (a verb that refuses its input shows only its one-line reason), and nothing
at all with ``enabled=False``.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["LOG_INTERVAL_S", "Progress"]

LOG_INTERVAL_S = 5.0  # seconds between lines when the stream is not a terminal


class _Nowhere:
    """tqdm's file where ``Progress`` writes the lines itself."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class Progress:
    """``with Progress(total, "simulate") as p: ... p.update(1, note)`` — a bar on a terminal, else a line
    every few seconds and at the end; silent with ``enabled=False``. ``stream`` defaults to stderr."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = max(int(total), 1), label, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = time.monotonic()
        self._bar = None
        if enabled:  # delay > 0: no bar before the first step, and none left behind if there was no step
            self._bar = tqdm(total=self.total, desc=label, file=self.stream if self._tty else _Nowhere(),
                             delay=1e-3, mininterval=0.1, dynamic_ncols=self._tty, ascii=not self._tty,
                             leave=True, unit="step")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        bar = self._bar
        if bar is None:
            return
        if note:
            bar.set_postfix_str(note, refresh=False)
        bar.update(n)
        if self._tty:
            return
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= LOG_INTERVAL_S:
            self._last = now
            self.stream.write(str(bar) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal (idempotent)."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
