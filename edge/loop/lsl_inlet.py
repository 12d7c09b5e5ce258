"""An LSL EMG stream as the amplifier: ``myoedge run --port lsl://NAME``.

``open_transport("lsl://NAME?...")`` (``myoedge.edge.wire.transport``) makes an :class:`LslInletTransport`.
It resolves the stream by name, reads its description, and turns the samples it pulls into the same
bytes an amplifier sends: a device-info frame first and about once a second, then data frames of ``spf``
samples with consecutive sequence numbers. So the reader, the parser, the frame ring, the envelope and
every check of ``myoedge run`` (rate, labels, ADC scale against the bundle) run unchanged.

Volts to counts. LSL streams carry values in physical units; the envelope runs on integer ADC counts.
Each value becomes ``counts = rint(value * unit / volts_per_count)``, clipped to the sample width
(``myoedge.edge.dsp.adc.quantise``), where ``unit`` is the channel's ``desc/channels/channel/unit``
(microvolts when a channel names none, the XDF convention for ExG) and the ADC is, first found: the URL's
``bits=``/``scale=``; the stream's ``desc/acquisition`` (``precision`` and ``volts_per_count``, as
``myoedge amp-sim --lsl`` writes them); the default ADC of 24 bits (``default_adc(24)``, what training
assumes). The device-info frame announces that scale, so a bundle trained with another ADC is refused.

Losses. LSL delivers over TCP, but samples are lost when an inlet falls more than its buffer behind, or
while a connection is re-established. Losses show as a jump in the samples' time stamps: a jump of more
than ``gap_ms`` (default: 5 ms or two frame periods, whichever is longer) drops the partial frame and
skips the sequence numbers of the frames the missing samples would have filled, so the parser counts
them and the pipeline resets as after lost serial frames. A stream whose time stamps jitter by more than
``gap_ms`` needs a larger one. The frames' device time is the count of samples received and lost.

URL parameters: ``timeout`` (seconds to find the stream, default 5), ``spf`` (samples per frame, default
about 1 ms of samples), ``bits`` and ``scale`` (the ADC), ``gap_ms``, ``buffer_s`` (the inlet's buffer,
default 2 s). A stream that cannot be found within ``timeout`` is an ``InputError`` naming the streams seen.
"""

from __future__ import annotations

import logging
import math
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np

from myoedge.edge.dsp.adc import choose_adc, quantise
from myoedge.edge.loop.lsl_publish import check_stream_name, import_pylsl
from myoedge.edge.wire.protocol import (
    LABEL_BYTES,
    MAX_CHANNELS,
    MAX_SAMPLES_PER_FRAME,
    SEQ_MODULUS,
    DeviceInfo,
    Frame,
    encode_device_info,
    encode_frame,
    frame_size,
)
from myoedge.edge.wire.transport import Transport, TransportStats
from myoedge.ground.errors import InputError

__all__ = ["LSL_URL_PARAMETERS", "VOLT_UNITS", "LslInletTransport", "lsl_transport"]

LOG = logging.getLogger("myoedge.edge")

# unit names (lower case) -> volts per unit; LSL/XDF spell units out ("microvolts")
VOLT_UNITS = {"volts": 1.0, "v": 1.0, "millivolts": 1e-3, "mv": 1e-3, "microvolts": 1e-6, "uv": 1e-6,
              "\u00b5v": 1e-6, "\u03bcv": 1e-6, "nanovolts": 1e-9, "nv": 1e-9}
# name -> (type, meaning); a missing one takes the default described in the module docstring
LSL_URL_PARAMETERS = {"timeout": (float, "seconds to find the stream (default 5)"),
                      "spf": (int, "samples per frame (default: about 1 ms of samples)"),
                      "bits": (int, "ADC sample width, 16 or 24"), "scale": (float, "ADC volts per count"),
                      "gap_ms": (float, "a time-stamp jump longer than this counts the samples as lost"),
                      "buffer_s": (float, "seconds of samples the inlet buffers (default 2)")}


def _parameters(url: str) -> dict:
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    unknown = sorted(set(query) - set(LSL_URL_PARAMETERS))
    if unknown:
        raise InputError(f"port {url!r}: unknown LSL parameter(s) {unknown}; known: "
                         f"{', '.join(LSL_URL_PARAMETERS)}")
    values = {}
    for name, given in query.items():
        kind = LSL_URL_PARAMETERS[name][0]
        try:
            values[name] = kind(given[-1])
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise InputError(f"port {url!r}: {name}={given[-1]!r} is not {what}") from None
    ranges = (("timeout", 0.01, 600.0), ("gap_ms", 0.01, 60_000.0), ("buffer_s", 0.1, 600.0),
              ("spf", 1, MAX_SAMPLES_PER_FRAME))  # all refused before the stream is looked for
    for name, low, high in ranges:
        if name in values and not low <= values[name] <= high:
            raise InputError(f"port {url!r}: {name} must be within {low:g} to {high:g}, got {values[name]:g}")
    return values


def lsl_transport(url: str, **options) -> LslInletTransport:
    """The transport of ``lsl://NAME?timeout=5&spf=2&...`` (parameters: :data:`LSL_URL_PARAMETERS`);
    ``options`` override them by name."""
    name = check_stream_name(url)
    values = {**_parameters(url), **options}
    adc = None
    if {"bits", "scale"} & set(values):
        adc = choose_adc(bits=values.pop("bits", 24), volts_per_count=values.pop("scale", None))
    import_pylsl()  # a missing pylsl is refused now, before anything is opened
    return LslInletTransport(name, url=url, adc=adc, **values)


class LslInletTransport(Transport):
    """Frames made from an LSL stream's samples (module docstring). ``adc=None``: from the stream."""

    def __init__(self, name: str, *, url: str | None = None, adc=None, timeout: float = 5.0,
                 spf: int | None = None, gap_ms: float | None = None, buffer_s: float = 2.0,
                 read_timeout_s: float = 0.05) -> None:
        self._name, self._url = name, url or f"lsl://{name}"
        self._adc, self._timeout, self._spf_asked = adc, float(timeout), spf
        self._gap_ms, self._buffer_s, self._read_timeout = gap_ms, float(buffer_s), float(read_timeout_s)
        self._pylsl = import_pylsl()
        self._inlet = None
        self._aborted = False
        self.info: DeviceInfo | None = None
        self.stats = TransportStats()
        self.samples_received = self.samples_lost = self.gaps = self.clipped_samples = self.non_finite = 0

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        return self._inlet is not None

    def connect(self) -> None:
        if self._inlet is not None:
            return
        self._aborted = False
        lsl = self._pylsl
        others = lsl.ContinuousResolver()  # what else is out there, for the message, at no extra wait
        found = lsl.resolve_byprop("name", self._name, 1, self._timeout)
        if not found:
            seen = sorted({f"{s.name()} ({s.type()})" for s in others.results()})
            raise InputError(f"no LSL stream named {self._name!r} found within {self._timeout:g} s (streams "
                             f"seen: {', '.join(seen) or 'none'}); is `myoedge amp-sim --lsl {self._name}` "
                             "or the amplifier's LSL app running?")
        if len(found) > 1:
            hosts = ", ".join(s.hostname() for s in found)
            raise InputError(f"{len(found)} LSL streams are named {self._name!r} (on {hosts}); give each a "
                             "unique name")
        self._configure(found[0])

    def _configure(self, short) -> None:
        lsl, name = self._pylsl, self._name
        if short.channel_format() == lsl.cf_string:
            raise InputError(f"LSL stream {name!r} carries strings, not EMG samples")
        if not 1 <= short.channel_count() <= MAX_CHANNELS:
            raise InputError(f"LSL stream {name!r} has {short.channel_count()} channels (1 to {MAX_CHANNELS} "
                             "are supported)")
        fs = short.nominal_srate()
        if not fs > 0:
            raise InputError(f"LSL stream {name!r} has no nominal rate (irregular samples): an EMG stream "
                             "needs its sample rate")
        if short.type().upper() != "EMG":
            LOG.warning("LSL stream %r is of type %r, not EMG; reading it as EMG", name, short.type())
        inlet = lsl.StreamInlet(short, max_buflen=max(1, math.ceil(self._buffer_s)), recover=True)
        try:
            full = inlet.info(self._timeout)
            inlet.open_stream(self._timeout)
        except Exception as exc:  # pylsl's TimeoutError or LostError: the stream went away meanwhile
            raise InputError(f"LSL stream {name!r} was found but did not answer within {self._timeout:g} s "
                             f"({exc})") from None
        try:
            self._describe(full, fs)
        except BaseException:
            inlet.close_stream()
            raise
        self._inlet = inlet

    def _describe(self, full, fs: float) -> None:
        name = self._name
        labels, units, adc = _read_description(full, name)
        if self._adc is not None:
            adc = self._adc
        elif adc is None:
            adc = choose_adc(bits=24)
        spf = self._spf_asked if self._spf_asked is not None else \
            max(1, min(MAX_SAMPLES_PER_FRAME, round(fs / 1000)))
        if not 1 <= spf <= MAX_SAMPLES_PER_FRAME:
            raise InputError(f"port {self._url!r}: spf must be within 1 to {MAX_SAMPLES_PER_FRAME}, got "
                             f"{spf}")
        self.info = DeviceInfo(sample_rate_hz=fs, scale_v=[adc.volts_per_count] * len(labels), labels=labels,
                               sample_bits=adc.bits, samples_per_frame=spf, device_name=f"LSL {name}"[:32])
        self._adc_used, self._volts = adc, np.asarray(units, dtype=np.float64)
        self._fs, self._spf = fs, spf
        period_s = spf / fs
        self._gap_s = (self._gap_ms / 1e3) if self._gap_ms is not None else max(5e-3, 2 * period_s)
        self._frame_bytes = frame_size(n_channels=len(labels), n_samples=spf, sample_bits=adc.bits)
        self._info_bytes = len(encode_device_info(self.info))
        self._info_every = max(1, round(1.0 / period_s))
        self._pending = np.zeros((spf, len(labels)), dtype=np.int32)
        self._n_pending = 0
        self._seq = self._frames = self._sample_index = 0
        self._last_t: float | None = None
        LOG.info("LSL stream %r: %d channels %s at %g Hz, %s, %d samples per frame", name, len(labels),
                 list(labels), fs, adc.describe(), spf)

    def read(self, max_bytes: int = 4096) -> bytes:
        inlet = self._inlet
        if inlet is None:
            if self._aborted:
                return b""
            raise RuntimeError(f"{self._url}: call connect() before read()")
        frames = max(1, (max_bytes - self._info_bytes) // self._frame_bytes)
        budget = max(1, frames * self._spf - self._n_pending)  # samples that keep the bytes within max_bytes
        values, stamps = [], []
        try:
            # sample by sample: liblsl's pull_chunk can block past its timeout while a lost stream is being
            # recovered; pull_sample keeps its timeout (and hands over what was buffered before the loss)
            sample, stamp = inlet.pull_sample(timeout=self._read_timeout)
            while sample is not None:
                values.append(sample)
                stamps.append(stamp)
                if len(stamps) >= budget or self._aborted:
                    break
                sample, stamp = inlet.pull_sample(timeout=0.0)
        except Exception as exc:  # LostError: the stream ended and cannot be recovered
            self.stats.read_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            LOG.warning("LSL stream %r lost (%s)", self._name, exc)
            time.sleep(self._read_timeout)
        if not stamps:
            return b""
        out = self._frames_from(np.asarray(values, dtype=np.float64), np.asarray(stamps, dtype=np.float64))
        if out:
            self.stats.reads += 1
            self.stats.bytes_read += len(out)
        return out

    def _counts(self, values: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(values)
        if bad.any():
            if self.non_finite == 0:
                LOG.warning("LSL stream %r sent non-finite values; they are read as 0 (counted)", self._name)
            self.non_finite += int(bad.sum())
            values = np.where(bad, 0.0, values)
        counts, clipped = quantise(values * self._volts, volts_per_count=self._adc_used.volts_per_count,
                                   bits=self._adc_used.bits)
        self.clipped_samples += clipped
        return counts

    def _frames_from(self, values: np.ndarray, stamps: np.ndarray) -> bytes:
        counts, parts, spf, fs = self._counts(values), [], self._spf, self._fs
        self.samples_received += len(stamps)
        for row, t in zip(counts, stamps):
            if self._last_t is not None and abs(t - self._last_t) > self._gap_s:
                self._lost(t - self._last_t)
            self._last_t = t
            if self._frames % self._info_every == 0 and self._n_pending == 0:
                stamp = round(self._sample_index * 1e6 / fs)
                parts.append(encode_device_info(self.info, seq=self._seq, timestamp_us=stamp))
                self._seq = (self._seq + 1) % SEQ_MODULUS
            self._pending[self._n_pending] = row
            self._n_pending += 1
            self._sample_index += 1
            if self._n_pending == spf:
                stamp = round((self._sample_index - spf) * 1e6 / fs)
                parts.append(encode_frame(Frame(seq=self._seq, timestamp_us=stamp, samples=self._pending,
                                                sample_bits=self.info.sample_bits)))
                self._seq, self._frames, self._n_pending = (self._seq + 1) % SEQ_MODULUS, self._frames + 1, 0
        return b"".join(parts)

    def _lost(self, jump_s: float) -> None:
        """A time-stamp jump: the partial frame and the samples the jump spans are lost (a backward jump,
        a restarted source, counts as one lost frame)."""
        missing = max(0, round(jump_s * self._fs) - 1)
        frames = max(1, math.ceil((self._n_pending + missing) / self._spf))
        self.gaps += 1
        self.samples_lost += missing + self._n_pending
        LOG.warning("LSL stream %r: time stamps jumped by %.1f ms: %d samples lost (%d frames)", self._name,
                    1e3 * jump_s, missing + self._n_pending, frames)
        self._sample_index += missing  # the device time of the next frame counts them
        self._seq = (self._seq + frames) % SEQ_MODULUS
        self._frames += frames
        self._n_pending = 0

    def abort(self) -> None:
        self._aborted = True

    def close(self) -> None:
        self._aborted = True
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception as exc:  # closing a stream that already went away
                LOG.debug("LSL stream %r: close failed: %s", self._name, exc)


def _read_description(info, name: str) -> tuple[tuple[str, ...], list[float], object]:
    """Labels (at most 8 characters), volts per unit of each channel, and the ADC the stream declares."""
    n = info.channel_count()
    labels, units = [], []
    channel = info.desc().child("channels").child("channel")
    for c in range(n):
        label = channel.child_value("label").strip() if not channel.empty() else ""
        unit = channel.child_value("unit").strip() if not channel.empty() else ""
        labels.append(label[:LABEL_BYTES] or f"M{c}")
        factor = VOLT_UNITS.get((unit or "microvolts").lower())
        if factor is None:
            raise InputError(f"LSL stream {name!r}, channel {labels[-1]!r}: unit {unit!r} is not a voltage "
                             f"(known: {', '.join(sorted(VOLT_UNITS))})")
        units.append(factor)
        if not channel.empty():
            channel = channel.next_sibling("channel")
    if any(not all(" " <= ch <= "~" for ch in label) for label in labels):
        raise InputError(f"LSL stream {name!r}: channel labels must be printable ASCII, got {labels}")
    if len(set(labels)) != n:
        raise InputError(f"LSL stream {name!r}: channel labels must be unique in their first {LABEL_BYTES} "
                         f"characters, got {labels}")
    acq = info.desc().child("acquisition")
    adc = None
    if not acq.empty() and acq.child_value("volts_per_count"):
        try:
            adc = choose_adc(bits=int(acq.child_value("precision") or 24),
                             volts_per_count=float(acq.child_value("volts_per_count")))
        except (ValueError, InputError) as exc:
            raise InputError(f"LSL stream {name!r}: its acquisition/precision and volts_per_count do not "
                             f"describe an ADC ({exc})") from None
    return tuple(labels), units, adc
