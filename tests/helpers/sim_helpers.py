"""Shared by the transport, simulator and fault tests: a small signal, and a simulator and a reader that
are always stopped (threads joined, ports closed) however a test ends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np

from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.edge.wire.protocol import Frame
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import SerialTransport

LABELS = ("TA", "SOL", "GAS-MED", "GAS-LAT", "VL", "VM", "RF", "BF")


def noise_signal(*, n_channels: int = 8, seconds: float = 1.0, fs: float = 2000.0, rms_v: float = 1e-3,
                 seed: int = 0) -> AmpSignal:
    volts = np.random.default_rng(seed).normal(0.0, rms_v, (round(seconds * fs), n_channels))
    return AmpSignal(volts=volts, fs=fs, labels=LABELS[:n_channels], description="test noise")


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Collector:
    """``on_sent`` and ``on_frames`` targets that keep what went out and what came in."""

    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.got: list[Frame] = []
        self.read_ns: list[int] = []

    def on_sent(self, frame: Frame, t_ns: int) -> None:
        self.sent.append(frame)

    def on_frames(self, frames: list[Frame], t_read_ns: int) -> None:
        self.got.extend(frames)
        self.read_ns.extend([t_read_ns] * len(frames))


@contextlib.contextmanager
def streaming(sim: AmplifierSimulator, url: str | None = None, *, collector: Collector | None = None,
              **transport_options) -> Iterator[tuple[AmplifierSimulator, Reader]]:
    """Start ``sim`` and a callback reader on its address (or ``url``); stop both on exit."""
    sim.start()
    reader = None
    try:
        transport = SerialTransport(url or sim.address, **transport_options)
        reader = Reader(transport, on_frames=collector.on_frames if collector else None).start()
        yield sim, reader
    finally:
        sim.stop()
        if reader is not None:
            reader.stop()
