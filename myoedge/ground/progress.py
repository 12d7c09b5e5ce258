"""Progress of long verbs, drawn by tqdm on stderr (so ``--json`` stdout stays clean).

``Progress`` is the one interface the verbs use; tqdm does the drawing: a bar redrawn in place on a
terminal; elsewhere (a log file, a pipe, CI) one whole line every few seconds and one at the end, since a
bar redrawn with carriage returns turns a log into one unreadable line. ``enabled=False`` writes nothing.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["LOG_INTERVAL_S", "Progress"]

LOG_INTERVAL_S = 5.0  # seconds between lines when stderr is not a terminal


class _Lines:
    """A file for tqdm that turns each redraw (``"\\r" + bar``) into one line of its own."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class Progress:
    """``with Progress(total, "simulate") as p: ... p.update(1, note)`` — a bar on a terminal, else a line
    every few seconds; silent with ``enabled=False``. ``stream`` defaults to ``sys.stderr``."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = max(int(total), 1), label, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        if enabled:
            self._bar = tqdm(total=self.total, desc=label, file=self.stream if tty else _Lines(self.stream),
                             mininterval=0.1 if tty else LOG_INTERVAL_S, dynamic_ncols=tty, ascii=not tty,
                             leave=True, unit="step")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self._bar is None:
            return
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        """Draw the final state and end the line (idempotent)."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
