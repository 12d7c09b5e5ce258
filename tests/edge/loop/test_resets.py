"""A device restart, lost frames or a gap longer than the watchdog: the pipeline forgets the past (window,
envelope filter, model state) and flags its estimates WARMING_UP until the window is full again."""

from __future__ import annotations

import pytest
from loop_parts import MUSCLES, WINDOW, emg, run_pipeline, setup_parts, stream

from myoedge.edge.loop.estimate import Flags
from myoedge.edge.loop.pipeline import Pipeline
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.wire.protocol import FrameParser


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("resets"))


def warming(estimates) -> list[bool]:
    return [bool(e.flags & Flags.WARMING_UP) for e in estimates]


def test_a_device_restart_resets_and_flags_the_next_window(parts):
    info = parts[2]
    before, after = stream(emg(0.6, seed=1), info), stream(emg(0.6, seed=2), info)  # seq starts again at 1
    pipe, got = run_pipeline(parts, before + after)
    assert pipe.resets["restart"] == 1 and len(got) == 120
    # start-up and restart: the first W - 1 estimates of each stream wait for a full window; none else
    assert warming(got) == ([True] * (WINDOW - 1) + [False] * (60 - WINDOW + 1)) * 2


def test_lost_frames_reset_the_window(parts):
    info = parts[2]
    pipe, got = run_pipeline(parts, stream(emg(0.6, seed=3), info, skip=(150, 151)))
    assert pipe.resets["lost"] == 1
    seqs = [e.seq for e in got]
    first_after = next(i for i, s in enumerate(seqs) if s > 151)
    flags = warming(got)
    assert not any(flags[WINDOW:first_after])  # settled before the loss
    assert all(flags[first_after:first_after + WINDOW - 1]) and not any(flags[first_after + WINDOW:])


def test_a_gap_longer_than_the_watchdog_resets(parts):
    bundle, profile, info = parts
    frames = FrameParser().feed(stream(emg(0.6, seed=4), info))
    got = []
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    publishers=[CallbackPublisher(got.append)])
    gap_ns = round(pipe.safety_config.watchdog_ms * 1e6) + 1
    half = len(frames) // 2
    t = 1
    for frame in frames[:half]:
        pipe.on_frames([frame], t)
        t += 1_000_000
    n_before = len(got)
    t += gap_ns
    for frame in frames[half:]:
        pipe.on_frames([frame], t)
        t += 1_000_000
    assert pipe.resets["gap"] == 1 and len(MUSCLES) == pipe.n_channels
    assert all(warming(got[n_before:n_before + WINDOW - 1])) and not any(warming(got[n_before + WINDOW:]))
