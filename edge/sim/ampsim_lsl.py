"""The amplifier simulator's third output: raw EMG as an LSL outlet (``myoedge amp-sim --lsl NAME``).

``LslLink`` is a :class:`~myoedge.edge.sim.ampsim_links.Link` like the pty and the TCP server, so pacing,
looping, ``--stop-after`` and fault injection are the simulator's own: the frames it writes are parsed
back (``FrameParser``, the reader's parser) and each intact data frame becomes one pushed chunk. A frame
that a fault dropped or corrupted is never pushed, which a reader sees as a jump in the time stamps.

The stream (LSL's meta-data conventions): type ``EMG``; one ``float32`` channel per label, in
**microvolts**: ``counts * volts_per_count * 1e6``, the amplifier's measurement after its ADC (float32
holds it to 2^-24 of its value, so a reader recovers the counts exactly while they stay below 2^22:
+-94 mV at the 24-bit default scale); ``desc/channels/channel`` with ``label``, ``unit`` (``microvolts``)
and ``type`` (``EMG``); ``desc/acquisition`` with ``precision`` (the ADC's bits) and ``volts_per_count``, so
``myoedge run --port lsl://NAME`` reads the counts with the ADC they came from; nominal rate = the
amplifier's sample rate; ``source_id`` ``myoedge-amp-sim-NAME``. Each chunk is stamped on ``local_clock``
with the device time of its samples (first frame's push time minus its device time, plus the device
time), so the time stamps are regular exactly where no frame was lost.

The stream starts when the first inlet connects (the simulator waits for a reader, as on a pty);
a disconnect fault destroys the outlet and makes it anew with the same ``source_id``, so an inlet
recovers by itself and sees the gap.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from myoedge.edge.dsp.adc import Adc
from myoedge.edge.loop.lsl_publish import LINGER_S, check_stream_name, describe_channels, import_pylsl
from myoedge.edge.sim.ampsim_links import Link
from myoedge.edge.wire.protocol import FrameParser
from myoedge.ground.errors import InputError

__all__ = ["EMG_UNIT", "LslLink"]

EMG_UNIT = "microvolts"
_PER_VOLT = 1e6


class LslLink(Link):
    """An LSL outlet named ``name`` for EMG of ``labels`` at ``fs`` Hz, counts scaled by ``adc``."""

    def __init__(self, name: str, *, labels, fs: float, adc: Adc) -> None:
        self.name = check_stream_name(f"lsl://{name}")
        self._pylsl = import_pylsl()
        self.labels, self.fs, self.adc = tuple(labels), float(fs), adc
        self.source_id = f"myoedge-amp-sim-{self.name}"
        self.address = f"lsl://{self.name}"
        self._scale_uv = float(adc.volts_per_count) * _PER_VOLT
        self._parser = FrameParser()
        self._offset: float | None = None  # local_clock - device time
        self._outlet = None
        self.restore()

    def _info(self):
        lsl = self._pylsl
        info = lsl.StreamInfo(self.name, "EMG", len(self.labels), self.fs, lsl.cf_float32, self.source_id)
        describe_channels(info, [(label, EMG_UNIT, "EMG") for label in self.labels])
        acq = info.desc().append_child("acquisition")
        acq.append_child_value("manufacturer", "myoedge")
        acq.append_child_value("model", "amp-sim")
        acq.append_child_value("precision", str(self.adc.bits))
        acq.append_child_value("volts_per_count", repr(float(self.adc.volts_per_count)))
        return info

    def restore(self) -> None:
        try:
            self._outlet = self._pylsl.StreamOutlet(self._info(), 0, 10)  # at most 10 s queued per inlet
        except Exception as exc:  # liblsl could not open its sockets
            raise InputError(f"cannot open the LSL outlet {self.name!r}: {exc}") from None
        self._parser = FrameParser()  # a new connection: no half frame carried over

    def poll_reader(self) -> bool:
        return self._outlet is not None and self._outlet.have_consumers()

    def write(self, data: bytes, stop: threading.Event) -> bool:
        if not self.poll_reader():
            return False
        for frame in self._parser.feed(data):
            n = frame.n_samples
            device_s = frame.timestamp_us * 1e-6 + (n - 1) / self.fs  # the chunk's last sample
            if self._offset is None:
                self._offset = self._pylsl.local_clock() - device_s
            chunk = np.asarray(frame.samples, dtype=np.float64) * self._scale_uv
            self._outlet.push_chunk(chunk.astype(np.float32), self._offset + device_s)
        return True

    def drop(self) -> None:
        """Vanish: after ``LINGER_S`` while inlets are connected (so they get what was pushed), the outlet is
        destroyed with its last reference and inlets lose the stream."""
        outlet, self._outlet = self._outlet, None
        if outlet is not None and outlet.have_consumers():
            time.sleep(LINGER_S)

    def close(self) -> None:
        self.drop()
