"""The link's own latency floor: the end-to-end latency a loop that did no work at all would see.

``myoedge bench`` measures a frame's end-to-end latency from the moment it was due (its last sample
existed) to the moment the loop finished with it. Part of that is the link: the sender's pacing, the
pty's or the socket's delivery, the reader's wake-up from ``select``. This measures that part alone:
a writer process paces 16-byte messages at the frame period exactly as the bench's simulator paces
frames (sleeps to each due time at a timer slack of 1 ns), each carrying its due time and its write
time on ``CLOCK_MONOTONIC``; a reader thread blocks in ``select`` and reads, as the loop's reader does,
and stamps each read. Nothing is parsed or computed. What a loop adds to these figures is its own.

    python -m myoedge.edge.sim.link_floor [--seconds 20] [--transport pty|tcp] [--period-us 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import socket
import struct
import sys
import time
import tty

import numpy as np

from myoedge.edge.loop.latency import percentiles_us
from myoedge.edge.sim.bench import host_info
from myoedge.edge.sim.bench_sim import tight_timer_slack
from myoedge.ground.errors import InputError

__all__ = ["measure_link_floor"]

_MESSAGE = struct.Struct("<qq")  # due time, write time (ns, CLOCK_MONOTONIC)
WARMUP_S = 0.5
TRANSPORTS = ("pty", "tcp")


def _write(target, n: int, period_ns: int, start_ns: int) -> None:
    """The writer process: ``n`` messages, message k due at ``start_ns + (k + 1) * period_ns``."""
    tight_timer_slack()
    if isinstance(target, int):
        write = lambda data: os.write(target, data)  # noqa: E731 - the pty's master side
    else:
        sock = socket.create_connection(target)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        write = sock.sendall
    for k in range(n):
        due = start_ns + (k + 1) * period_ns
        while (left := due - time.monotonic_ns()) > 0:
            time.sleep(left / 1e9)
        write(_MESSAGE.pack(due, time.monotonic_ns()))


def measure_link_floor(*, seconds: float = 20.0, transport: str = "pty", period_us: float = 1000.0) -> dict:
    """Run the writer and the reader for ``seconds``; latency percentiles (µs) from due and from write,
    the first ``WARMUP_S`` left out as in the bench."""
    if transport not in TRANSPORTS:
        raise InputError(f"transport must be one of {list(TRANSPORTS)}, got {transport!r}")
    if not 0.5 < seconds <= 3600 or not 100.0 <= period_us <= 1e6:
        raise InputError(f"need 0.5 < seconds <= 3600 and 100 <= period_us <= 1e6, got {seconds}, "
                         f"{period_us}")
    period_ns = round(period_us * 1000)
    n = int(seconds * 1e9 // period_ns)
    start_ns = time.monotonic_ns() + 200_000_000  # the writer starts in a fresh process
    ctx = multiprocessing.get_context("fork")
    listener = None
    if transport == "pty":
        master, reader_fd = os.openpty()
        tty.setraw(reader_fd)
        target = master
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        target = listener.getsockname()
    writer = ctx.Process(target=_write, args=(target, n, period_ns, start_ns), daemon=True)
    writer.start()
    if listener is not None:
        listener.settimeout(10.0)
        conn, _ = listener.accept()
        conn.setblocking(False)
        reader_fd = conn.fileno()
    stamps = np.zeros((n, 3), dtype=np.int64)  # due, written, read
    got, pending = 0, b""
    deadline = time.monotonic() + seconds + 2.0
    try:
        while got < n and time.monotonic() < deadline:
            if not select.select([reader_fd], [], [], 0.1)[0]:
                continue
            data = os.read(reader_fd, 4096)
            now = time.monotonic_ns()
            if not data:
                break
            pending += data
            whole = len(pending) // _MESSAGE.size * _MESSAGE.size
            for due, written in _MESSAGE.iter_unpack(pending[:whole]):
                if got < n:
                    stamps[got] = (due, written, now)
                    got += 1
            pending = pending[whole:]
    finally:
        writer.join(timeout=5.0)
        for fd in ((master, reader_fd) if transport == "pty" else ()):
            os.close(fd)
        if listener is not None:
            conn.close()
            listener.close()
    kept = stamps[:got][stamps[:got, 0] >= start_ns + round(WARMUP_S * 1e9)]
    if len(kept) == 0:
        raise InputError(f"no message arrived over the {transport} within {seconds} s")
    return {"transport": transport, "seconds": seconds, "period_us": period_us, "messages": int(got),
            "expected": n, "from_due_us": percentiles_us(kept[:, 2] - kept[:, 0]),
            "from_write_us": percentiles_us(kept[:, 2] - kept[:, 1]), "host": host_info()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m myoedge.edge.sim.link_floor",
                                description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--transport", choices=TRANSPORTS, default="pty")
    p.add_argument("--period-us", type=float, default=1000.0, help="the frame period (default 1000)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = p.parse_args(argv)
    try:
        result = measure_link_floor(seconds=args.seconds, transport=args.transport, period_us=args.period_us)
    except InputError as exc:
        print(f"link_floor: {exc}", file=sys.stderr)
        return 2
    for key in ("from_due_us", "from_write_us"):
        s = result[key]
        print(f"{result['transport']} {key[:-3].replace('_', ' ')}: n {s['n']}, p50 {s['p50']} µs, "
              f"p99 {s['p99']} µs, p99.9 {s['p99.9']} µs, max {s['max']} µs")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
