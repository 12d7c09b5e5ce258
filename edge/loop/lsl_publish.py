"""Estimates as a Lab Streaming Layer (LSL) outlet: ``myoedge run --publish lsl://NAME``.

One LSL sample per estimate, float64, in the channel order of :func:`estimate_channels`: joint angle,
torque, one force per muscle, the validity flags, then every other number the UDP datagram carries
(``myoedge.edge.loop.estimate.FIELDS``), so an LSL recording and the controller's datagrams can be
compared value for value. float64 holds every field of the datagram exactly: the float32 values
(angle, torques, forces, latency) are sent unrounded (a datagram's value is the float32 of the LSL one),
the 32-bit counters and the microsecond clock are integers far below 2^53, and the 64-bit
``bad_channels`` mask is split into two 32-bit halves.

The stream's XML description follows LSL's meta-data conventions (XDF): ``desc/channels/channel`` with
``label``, ``unit`` and ``type`` per channel, plus ``desc/flags/flag`` (name and bit of each validity flag,
and the mask of those that make an estimate invalid) and ``desc/acquisition`` (what made the stream).
The nominal rate is the model rate of the bundle; the ``source_id`` depends only on the stream name and
the muscles, so an inlet recovers by itself when ``myoedge run`` is restarted with the same settings.

``publish`` calls ``StreamOutlet.push_sample``, which copies the sample into liblsl's send queues and
returns: the network is served by liblsl's own threads, so a slow or vanished consumer never blocks the
loop (with no consumer the sample is dropped at once). ``close`` keeps the outlet ``linger_s`` (0.25 s)
longer while an inlet is connected, since liblsl drops what is still queued when an outlet goes. The LSL
time stamp of each sample is the push time (``pylsl.local_clock``); the device time is the
``timestamp_us`` channel.

pylsl is an optional dependency (``pip install myoedge[lsl]``), imported when an LSL stream is opened.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence

from myoedge.edge.loop.estimate import ESTIMATE_VERSION, INVALID, MAX_MUSCLES, Estimate, Flags
from myoedge.edge.loop.publish import Publisher
from myoedge.ground.errors import InputError

__all__ = ["ESTIMATE_STREAM_TYPE", "LINGER_S", "LslPublisher", "check_stream_name", "describe_channels",
           "estimate_channels", "estimate_sample", "import_pylsl"]

LOG = logging.getLogger("myoedge.edge")

ESTIMATE_STREAM_TYPE = "Estimate"
LINGER_S = 0.25  # an outlet outlives its close this long while inlets are connected (liblsl drops the queue)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def import_pylsl():
    """The ``pylsl`` module, or an ``InputError`` that says how to install it."""
    try:
        import pylsl
    except ImportError as exc:
        raise InputError(f"LSL streams need pylsl: pip install 'myoedge[lsl]' (or pip install pylsl) ({exc})"
                         ) from None
    except (OSError, RuntimeError) as exc:  # pylsl found, its liblsl not
        raise InputError(f"pylsl is installed but cannot load liblsl: {exc}") from None
    return pylsl


def check_stream_name(url: str, scheme: str = "lsl") -> str:
    """The stream name of ``lsl://NAME`` (letters, digits, ``_.-``; 1 to 64), or an ``InputError``."""
    prefix = f"{scheme}://"
    if not isinstance(url, str) or not url.lower().startswith(prefix):
        raise InputError(f"expected {prefix}NAME, got {url!r}")
    name = url[len(prefix):].split("?", 1)[0].rstrip("/")
    if not _NAME.match(name):
        raise InputError(f"{url!r}: an LSL stream name is 1 to 64 letters, digits, '_', '.' or '-', starting "
                         f"with a letter or digit, e.g. {prefix}myoedge-knee")
    return name


def estimate_channels(muscles: Sequence[str]) -> list[tuple[str, str, str]]:
    """The (label, unit, type) of each channel of the estimate stream, in sample order."""
    return [("theta_rad", "radians", "JointAngle"),
            ("torque_nm", "newton_meters", "Torque"),
            *[(f"force_{m}_n", "newtons", "Force") for m in muscles],
            ("flags", "none", "Flags"),
            ("torque_requested_nm", "newton_meters", "Torque"),
            ("latency_us", "microseconds", "Latency"),
            ("index", "none", "Counter"),
            ("seq", "none", "Counter"),
            ("timestamp_us", "microseconds", "DeviceTime"),
            ("bad_channels_lo", "none", "ChannelMask"),
            ("bad_channels_hi", "none", "ChannelMask")]


def estimate_sample(e: Estimate, out: list[float]) -> list[float]:
    """Fill ``out`` (one float per channel of :func:`estimate_channels`) with ``e``; returns ``out``."""
    m = len(out) - 10
    if len(e.forces_n) != m:
        raise InputError(f"this estimate stream is for {m} forces, the estimate has {len(e.forces_n)}")
    out[0], out[1] = e.theta_rad, e.torque_nm
    out[2:2 + m] = e.forces_n
    out[2 + m:] = (int(e.flags), e.torque_requested_nm, e.latency_us, e.index & 0xFFFFFFFF, e.seq,
                   e.timestamp_us, e.bad_channels & 0xFFFFFFFF, e.bad_channels >> 32)
    return out


def describe_channels(info, channels: Sequence[tuple[str, str, str]]) -> None:
    """Write ``desc/channels/channel`` (label, unit, type) into a ``pylsl.StreamInfo``."""
    node = info.desc().append_child("channels")
    for label, unit, kind in channels:
        ch = node.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", kind)


class LslPublisher(Publisher):
    """An LSL outlet named ``name`` streaming each estimate as one sample (module docstring)."""

    name = "lsl"

    def __init__(self, name: str, *, muscles: Sequence[str], rate_hz: float,
                 linger_s: float = LINGER_S) -> None:
        super().__init__()
        self._linger_s = float(linger_s)
        muscles = tuple(str(m) for m in muscles)
        if not 1 <= len(muscles) <= MAX_MUSCLES:
            raise InputError(f"an estimate stream carries 1 to {MAX_MUSCLES} forces, got {len(muscles)}")
        if not isinstance(rate_hz, (int, float)) or not rate_hz > 0:
            raise InputError(f"the estimate stream's nominal rate must be > 0 Hz, got {rate_hz!r}")
        self.stream_name = check_stream_name(f"lsl://{name}")
        pylsl = import_pylsl()
        self.channels = estimate_channels(muscles)
        digest = hashlib.sha256("\n".join((self.stream_name, *muscles)).encode()).hexdigest()[:12]
        self.source_id = f"myoedge-estimate-{self.stream_name}-{digest}"
        info = pylsl.StreamInfo(self.stream_name, ESTIMATE_STREAM_TYPE, len(self.channels), float(rate_hz),
                                pylsl.cf_double64, self.source_id)
        describe_channels(info, self.channels)
        flags = info.desc().append_child("flags")
        flags.append_child_value("invalid_mask", str(int(INVALID)))
        for flag in Flags:  # aliases are not iterated
            node = flags.append_child("flag")
            node.append_child_value("name", flag.name.lower())
            node.append_child_value("bit", str(int(flag)))
        acq = info.desc().append_child("acquisition")
        acq.append_child_value("manufacturer", "myoedge")
        acq.append_child_value("model", "myoedge run")
        acq.append_child_value("estimate_layout_version", str(ESTIMATE_VERSION))
        try:
            self._outlet = pylsl.StreamOutlet(info)
        except Exception as exc:  # liblsl could not open its sockets
            raise InputError(f"cannot open the LSL outlet {self.stream_name!r}: {exc}") from None
        self._sample = [0.0] * len(self.channels)
        self.address = f"lsl://{self.stream_name}"

    def publish(self, estimate: Estimate) -> None:
        try:
            self._outlet.push_sample(estimate_sample(estimate, self._sample))
        except Exception as exc:  # a wrong force count, or liblsl failing: count it, never stop the loop
            self.stats.dropped += 1
            text = f"{type(exc).__name__}: {exc}"
            if text != self.stats.last_error:
                LOG.warning("LSL outlet %s: %s (estimates are dropped while this lasts)", self.stream_name,
                            text)
            self.stats.last_error = text
            return
        self.stats.published += 1

    def close(self) -> None:
        """Keep the outlet ``linger_s`` longer while inlets are connected, then destroy it: liblsl drops
        the samples still queued for an inlet when its outlet is destroyed. Idempotent."""
        outlet, self._outlet = getattr(self, "_outlet", None), None
        if outlet is None:
            return
        try:
            if self._linger_s > 0 and outlet.have_consumers():
                time.sleep(self._linger_s)
        finally:
            del outlet  # liblsl destroys the outlet with its last reference: inlets see the stream end
