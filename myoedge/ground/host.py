"""What this host offers a job: the CPU cores this process may run on, and how many fits may share them."""

from __future__ import annotations

import multiprocessing
import os


def usable_cores() -> int:
    """The cores this process may be scheduled on (its affinity mask where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def side_by_side(tasks: int) -> int:
    """How many of ``tasks`` single-threaded jobs (fits bound by per-step dispatch) may run at once, here
    and in worker processes: up to the usable cores, and 1 in a process that is itself a worker (an
    evaluation's pool already spreads its fits over the cores)."""
    if multiprocessing.parent_process() is not None:
        return 1
    return max(1, min(int(tasks), usable_cores()))
