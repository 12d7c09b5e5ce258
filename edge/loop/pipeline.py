"""The processing path of the real-time loop, one frame at a time, in the thread that read it.

    frame counts --safety scan--> envelope (every frame) --> window ring at the model rate
        --> predictor (per model-rate sample) --> torque = sum_n r_n(theta) F_n --> flags, clamp
        --> Estimate --> publishers

Steady state without allocation where it is ours to avoid: the window ring, its ``W`` window views,
the safety state and the latency arrays are allocated once; the predictor writes into its own
preallocated outputs; the torque, with the profile's moment-arm polynomials, is a compiled scalar loop
(the equation of ``myoedge.body.dynamics.muscle_torque``, which a test holds it to, without that
function's array temporaries); the envelope filter writes into a preallocated ``out=`` (and its own
scratch). Still allocated per frame: the frame itself (the parser's); per estimate, the ``Estimate``
record, which publishers and callbacks may keep.

Resets (the model-state contract): after a device restart, lost frames (both seen by the parser as a
*break* of the stream), a reconnect (``reset("reconnect")``, from the runtime) or a silence longer than the
watchdog, the window ring is cleared, the envelope filter and the predictor's state (``reset_state``)
go back to their start, and estimates are flagged WARMING_UP until the window holds ``W`` samples
computed since the reset plus the bundle's ``state.warmup_steps`` model steps. Frames of one read that
came before a break are processed first, so a window never mixes data from both sides of an outage.

The ring holds the window twice over (``2W`` rows, each sample written at ``p`` and ``p + W``), so the
last ``W`` samples are always one contiguous slice, oldest first, and no copy is made to feed the model.

Set-up refuses what does not fit the bundle (:mod:`.setup_checks`; exit status 2 from ``myoedge run``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import numpy as np
from numba import njit

from myoedge.body.profile import SubjectProfile
from myoedge.edge.dsp.envelope import EnvelopeConfig, EnvelopeFilter
from myoedge.edge.loop.estimate import INVALID, Estimate, Flags
from myoedge.edge.loop.latency import LatencyRecorder
from myoedge.edge.loop.plausibility import PlausibilityChecks
from myoedge.edge.loop.publish import Publisher, publisher_stats
from myoedge.edge.loop.safety import FLAG_VALUES, PhysiologicalRange, SafetyConfig, SafetyMonitor
from myoedge.edge.loop.setup_checks import check_channel_fill, check_device, check_profile, envelope_config
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.channel_fill import ChannelFill
from myoedge.edge.model.predictor import Predictor
from myoedge.edge.wire.protocol import DeviceInfo, Frame, FrameParser, FrameRing
from myoedge.ground.errors import InputError

__all__ = ["Pipeline", "warm_up"]

_now = time.perf_counter_ns
LOG = logging.getLogger("myoedge.edge")
_OUT_OF_RANGE, _WARMING_UP = int(Flags.OUT_OF_RANGE), int(Flags.WARMING_UP)
_TORQUE_CLAMPED, _INVALID = int(Flags.TORQUE_CLAMPED), int(INVALID)
_ELECTRODE_OFF, _RECONSTRUCTED = int(Flags.ELECTRODE_OFF), int(Flags.RECONSTRUCTED)


@njit(cache=True)
def _torque(theta, forces, coeffs):
    """sum_n r_n(theta) F_n; r_n by Horner's rule on ``coeffs[n]`` (lowest power first)."""
    total = 0.0
    n_terms = coeffs.shape[1]
    for n in range(coeffs.shape[0]):
        r = coeffs[n, n_terms - 1]
        for k in range(n_terms - 2, -1, -1):
            r = r * theta + coeffs[n, k]
        total += r * forces[n]
    return total


def warm_up(config: EnvelopeConfig, *, n_channels: int) -> None:
    """Compile (or load from numba's cache) the per-frame kernels, so the first frame is not late by that.

    Runs a throwaway envelope filter and safety scan on a read-only frame, as the parser's frames are
    read-only and numba compiles those separately. Costs up to a second the first time on a machine.
    """
    zeros = np.zeros((1, n_channels), dtype=np.int32)
    zeros.setflags(write=False)
    EnvelopeFilter(config, n_channels=n_channels, volts_per_count=1.0, mvc_volts=1.0).process(
        zeros, out=np.empty((1, n_channels), dtype=np.float32))
    monitor = SafetyMonitor(SafetyConfig(), n_channels=n_channels, sample_bits=16, fs_hz=config.fs_hz,
                            hold=1, physiological_range=PhysiologicalRange((0.0, 1.0), ((0.0, 1.0),)))
    monitor.scan(zeros)
    monitor.out_of_range(0.0, np.zeros(1, dtype=np.float32))
    _torque(0.0, np.zeros(n_channels, dtype=np.float32), np.zeros((n_channels, 2)))


class Pipeline:
    """Turns frames into estimates. :meth:`on_frames` has the ``Reader``'s consumer signature.

    ``parser`` (the reader's) supplies the lost-frame count; ``latency`` receives the stage times.
    """

    def __init__(self, *, bundle: Bundle, predictor: Predictor, profile: SubjectProfile,
                 device_info: DeviceInfo, safety: SafetyConfig | None = None,
                 publishers: Sequence[Publisher] = (), latency: LatencyRecorder | None = None,
                 parser: FrameParser | None = None, prewarm: bool = True) -> None:
        config = envelope_config(bundle)
        check_profile(bundle, profile)
        check_device(bundle, device_info, config)
        w, c = bundle.window, bundle.n_channels
        if tuple(predictor.input_spec.shape) != (1, w, c):
            raise InputError(f"predictor {predictor.name} takes {list(predictor.input_spec.shape)}, the "
                             f"bundle declares [1, {w}, {c}]")
        self.bundle, self.predictor, self.profile, self.device_info = bundle, predictor, profile, device_info
        self.safety_config = safety or SafetyConfig()
        self.publishers = tuple(publishers)
        self.latency, self._parser = latency, parser
        self.window, self.n_channels = w, c
        self.envelope = EnvelopeFilter(config, n_channels=c, volts_per_count=device_info.scale_v,
                                       mvc_volts=profile.mvc)
        warm_up(config, n_channels=c)
        self._decimation = config.decimation  # envelope out rows: n // k + 1 suffice for an n-sample frame
        self._phase = 0  # input samples since the latest model-rate sample (the envelope's decimation phase)
        self._spf = device_info.samples_per_frame
        self._prewarm = bool(prewarm)
        self._scratch_forces = np.zeros(len(bundle.muscles), np.float32)
        self.prewarms = 0
        self._env_out = np.empty((device_info.samples_per_frame // config.decimation + 1, c), np.float32)
        self.safety = SafetyMonitor(self.safety_config, n_channels=c, sample_bits=device_info.sample_bits,
                                    fs_hz=config.fs_hz, hold=w,
                                    physiological_range=PhysiologicalRange.from_meta(bundle.meta))
        self.checks = PlausibilityChecks(self.safety_config, input_range=bundle.meta.input_range,
                                         n_channels=c, n_muscles=len(bundle.muscles),
                                         rate_hz=config.out_rate_hz, hold=w)
        self.checks.warm()
        self._fill = _channel_fill(bundle) if self.safety_config.fill_off_channels else None
        self._filled = 0  # channels filled in while their electrode was off, within the current hold
        self.filled_estimates = 0
        self._coeffs = np.ascontiguousarray(profile.model.coeffs, dtype=np.float64)  # (muscles, degree + 1)
        self._ring = np.zeros((2 * w, c), dtype=np.float32)
        self._views = tuple(self._ring[k + 1:k + 1 + w] for k in range(w))  # views[p]: window ending at p
        self._pos = 0
        self._lock = threading.Lock()  # publishing: the reader thread and the watchdog
        self._lost_seen = parser.stats.lost if parser is not None else 0
        self._breaks_seen = parser.stats.breaks if parser is not None else 0
        self._gap_ns = round(self.safety_config.watchdog_ms * 1e6)
        self._warm_after = w + bundle.warmup_steps  # model samples after a reset before estimates count
        self._reset_predictor = getattr(predictor, "reset_state", None)
        self._since_reset = 0  # model-rate samples since start or the latest reset
        self.resets = {"restart": 0, "lost": 0, "reconnect": 0, "gap": 0, "reset": 0}
        if self._reset_predictor is not None:  # the test-vector replay may have left it anywhere
            self._reset_predictor()
        self.frames = self.estimates = self.invalid_estimates = self.clamped_estimates = 0
        self.skipped_frames = 0  # frames whose channel count disagrees with the device info
        self._ring_skipped = 0  # frames the parser's fast path could not hold (another shape)
        self.model_samples = 0  # envelope samples at the model rate since start
        self.last_frame_ns = 0  # perf_counter_ns of the read that brought the latest frame
        self.last_estimate: Estimate | None = None
        self._next_index = 0

    def on_frames(self, frames: list[Frame], t_read_ns: int) -> None:
        """Process the frames one read completed (``t_read_ns``: when that read returned)."""
        parse = _now() - t_read_ns
        start = self._before(len(frames), t_read_ns)
        if start:
            for frame in frames[:start]:
                self.process(frame, t_read_ns=t_read_ns, parse_ns=parse)
            self.reset(self._parser.break_kind or "lost")
        for frame in frames[start:] if start else frames:
            self.process(frame, t_read_ns=t_read_ns, parse_ns=parse)
        self._warm_if_due()

    def on_ring(self, ring: FrameRing, n: int, t_read_ns: int) -> None:
        """Process the ``n`` frames one read decoded into ``ring`` (the parser's fast path, no objects)."""
        parse = _now() - t_read_ns
        self._ring_skipped = ring.skipped
        n = min(n, ring.capacity)
        first = ring.count - n
        start = self._before(n, t_read_ns, break_at=ring.break_at - first)
        views, seqs, stamps, capacity = ring.views, ring.seq, ring.timestamp_us, ring.capacity
        for i in range(first, ring.count):
            if i - first == start and start:
                self.reset(self._parser.break_kind or "lost")
            slot = i % capacity
            self._process(views[slot], int(seqs[slot]), int(stamps[slot]), t_read_ns, parse)
        self._warm_if_due()

    def _warm_if_due(self) -> None:
        """When the next frame will complete a model-rate sample, run the predictor once on scratch
        buffers now, in the idle time before that frame, and the estimate's own steps on scratch values:
        their code and data are then in the caches when the real step runs (``Predictor.warm``,
        :meth:`_warm_estimate`; measured in docs/results/latency.md)."""
        if self._prewarm and self._phase + self._spf >= self._decimation > self._spf:
            self.predictor.warm()
            self._warm_estimate()
            self.prewarms += 1

    def _warm_estimate(self) -> None:
        """The torque, the plausibility and range checks and an ``Estimate`` on scratch values; no state of
        the pipeline, its checks or its safety monitor changes."""
        forces = self._scratch_forces
        _torque(0.0, forces, self._coeffs)
        self.checks.warm()
        self.safety.out_of_range(0.0, forces)
        Estimate(index=0, seq=0, timestamp_us=0, theta_rad=0.0, forces_n=tuple(forces.tolist()),
                 torque_nm=0.0, torque_requested_nm=0.0, flags=FLAG_VALUES[0], bad_channels=0, latency_us=0.0)

    def _before(self, n: int, t_read_ns: int, break_at: int | None = None) -> int:
        """Bookkeeping before a read's ``n`` frames: a gap reset, lost frames; returns the index of the
        first frame after a new break of the stream (0: none), to reset before it."""
        if self.last_frame_ns and t_read_ns - self.last_frame_ns > self._gap_ns:
            self.reset("gap")
        self.last_frame_ns = t_read_ns
        parser = self._parser
        if parser is None:
            return 0
        stats = parser.stats
        if stats.lost != self._lost_seen:
            self.safety.note_lost(stats.lost - self._lost_seen)
            self._lost_seen = stats.lost
        if stats.breaks == self._breaks_seen:
            return 0
        self._breaks_seen = stats.breaks  # frames[start:] come after the latest break
        if break_at is None:
            break_at = parser.break_frame - (stats.good - n)
        start = min(max(break_at, 0), n)
        if start == 0:  # the break came before all of them: reset now
            self.reset(parser.break_kind or "lost")
        return start

    def reset(self, reason: str) -> None:
        """Forget the past (window ring, envelope filter, model state): what came before ``reason``
        (restart, lost, reconnect, gap) must not shape the estimates after it."""
        self._ring.fill(0.0)
        self._filled = 0
        self._pos = 0
        self._since_reset = 0
        self._phase = 0
        self.envelope.reset()
        self.checks.reset()
        if self._reset_predictor is not None:
            self._reset_predictor()
        self.resets[reason] = self.resets.get(reason, 0) + 1

    def process(self, frame: Frame, *, t_read_ns: int, parse_ns: int = 0) -> None:
        """One frame: envelope every time; inference, estimate and publishing per model-rate sample."""
        self._process(frame.samples, frame.seq, frame.timestamp_us, t_read_ns, parse_ns)

    def _process(self, samples: np.ndarray, seq: int, timestamp_us: int, t_read_ns: int,
                 parse_ns: int) -> None:
        t0 = _now()
        if samples.ndim != 2 or samples.shape[1] != self.n_channels:
            self.skipped_frames += 1
            return
        self.frames += 1
        self.safety.scan(samples)
        if samples.shape[0] // self._decimation + 1 > self._env_out.shape[0]:  # a longer frame: grow once
            self._env_out = np.empty((samples.shape[0] // self._decimation + 1, self.n_channels), np.float32)
        env = self.envelope.process(samples, out=self._env_out)
        self._phase = (self._phase + samples.shape[0]) % self._decimation
        t1 = _now()
        infer = publish = 0
        for row in env:  # usually 0 or 1 model-rate samples per frame
            t_in = _now()
            estimate = self._estimate(row, seq, timestamp_us, t_read_ns)
            t_out = _now()
            self.publish(estimate)
            infer += t_out - t_in
            publish += _now() - t_out
        done = _now()
        if self.latency is not None:
            self.latency.record(seq=seq, parse_ns=parse_ns, filter_ns=t1 - t0, infer_ns=infer,
                                publish_ns=publish, processing_ns=done - t_read_ns, done_ns=done,
                                inferred=len(env) > 0)

    def _estimate(self, row: np.ndarray, seq: int, timestamp_us: int, t_read_ns: int) -> Estimate:
        safety = self.safety
        if self._fill is None:
            flags, bad = safety.hold_bits()  # plain ints here: Flags arithmetic costs microseconds
        else:  # the channels behind a held ELECTRODE_OFF, read before hold_bits ages the hold
            held_off = safety.flat_held()
            flags, bad = safety.hold_bits()
            flags = self._fill_off(row, flags, held_off)
        p, w = self._pos, self.window
        ring = self._ring
        ring[p] = row
        ring[p + w] = row
        self._pos = (p + 1) % w
        self.model_samples += 1
        self._since_reset += 1
        out = self.predictor.predict(self._views[p])
        theta = float(out["theta"][0, 0])
        forces_arr = out["forces"][0]
        requested = _torque(theta, forces_arr, self._coeffs)
        flags |= self.checks.step(row, theta, forces_arr)  # out of distribution, flat output
        if safety.out_of_range(theta, forces_arr):
            flags |= _OUT_OF_RANGE
        if self._since_reset < self._warm_after:
            flags |= _WARMING_UP
        sent, clamped = safety.clamp(requested)
        if clamped:
            flags |= _TORQUE_CLAMPED
        return Estimate(index=self._next_index, seq=seq, timestamp_us=timestamp_us, theta_rad=theta,
                        forces_n=tuple(forces_arr.tolist()), torque_nm=sent, torque_requested_nm=requested,
                        flags=FLAG_VALUES[flags], bad_channels=bad, latency_us=(_now() - t_read_ns) / 1e3)

    def _fill_off(self, row: np.ndarray, flags: int, held_off: int) -> int:
        """Fill in the channels flat now from the others (in ``row``, before the ring sees it); when every
        channel behind the held ELECTRODE_OFF was filled while it was off, RECONSTRUCTED replaces it."""
        if not held_off:  # no electrode off within the window: nothing to fill, and the record starts over
            self._filled = 0
            return flags
        off_now = self.safety.flat_now()
        if off_now and self._fill.fill(row, off_now):
            if off_now & ~self._filled:  # a transition: logged once, never per estimate
                LOG.warning("electrode off on %s: filling in its envelope from the other channels (flag "
                            "RECONSTRUCTED)", [self.bundle.muscles[c] for c in range(self.n_channels)
                                               if off_now >> c & 1])
            self._filled |= off_now
        if held_off & ~self._filled == 0:
            self.filled_estimates += 1
            return (flags & ~_ELECTRODE_OFF) | _RECONSTRUCTED
        return flags

    def current_window(self) -> np.ndarray:
        """A copy of the window the model saw last: (W, C) normalised envelopes, oldest first."""
        return self._views[(self._pos - 1) % self.window].copy()

    def publish(self, estimate: Estimate) -> Estimate:
        """Number ``estimate`` and hand it to every publisher; returns what was published."""
        with self._lock:
            estimate = _numbered(estimate, self._next_index)
            self._next_index += 1
            for publisher in self.publishers:
                publisher.publish(estimate)
            self.estimates += 1
            flags = int(estimate.flags)
            if flags & _INVALID:
                self.invalid_estimates += 1
            if flags & _TORQUE_CLAMPED:
                self.clamped_estimates += 1
            self.last_estimate = estimate
        return estimate

    def stale_estimate(self) -> Estimate:
        """What the watchdog publishes when frames stopped: the last values, flagged STALE."""
        last = self.last_estimate
        if last is None:
            nan = float("nan")
            return Estimate(index=self._next_index, seq=0, timestamp_us=0, theta_rad=nan,
                            forces_n=(nan,) * len(self.bundle.muscles),
                            torque_nm=0.0, torque_requested_nm=nan, flags=Flags.STALE | Flags.WARMING_UP)
        return Estimate(index=self._next_index, seq=last.seq, timestamp_us=last.timestamp_us,
                        theta_rad=last.theta_rad,
                        forces_n=last.forces_n, torque_nm=last.torque_nm,
                        torque_requested_nm=last.torque_requested_nm, flags=last.flags | Flags.STALE,
                        bad_channels=last.bad_channels, latency_us=last.latency_us)

    def stats(self) -> dict:
        return {"frames": self.frames, "model_samples": self.model_samples, "estimates": self.estimates,
                "invalid_estimates": self.invalid_estimates, "clamped_estimates": self.clamped_estimates,
                "skipped_frames": self.skipped_frames + self._ring_skipped, "prewarms": self.prewarms,
                "filled_estimates": self.filled_estimates,
                "resets": dict(self.resets),
                "publishers": publisher_stats(self.publishers)}


def _channel_fill(bundle: Bundle) -> ChannelFill:
    """The bundle's channel fill, compiled and warmed; refused for a bundle without ``channel_fill``."""
    fill = ChannelFill(check_channel_fill(bundle))
    fill.warm()
    return fill


def _numbered(estimate: Estimate, index: int) -> Estimate:
    """``estimate`` with ``index`` (a copy only when another thread published in between)."""
    if estimate.index == index:
        return estimate
    return Estimate(index=index, seq=estimate.seq, timestamp_us=estimate.timestamp_us,
                    theta_rad=estimate.theta_rad, forces_n=estimate.forces_n, torque_nm=estimate.torque_nm,
                    torque_requested_nm=estimate.torque_requested_nm, flags=estimate.flags,
                    bad_channels=estimate.bad_channels, latency_us=estimate.latency_us)
