"""An electrode that falls off: with ``fill_off_channels`` the loop fills its envelope in from the other
channels and flags RECONSTRUCTED instead of ELECTRODE_OFF; never silently, never beyond what it can fill."""

from __future__ import annotations

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, emg, setup_parts, stream, training_envelopes

from myoedge.edge.loop.estimate import Flags
from myoedge.edge.loop.pipeline import Pipeline
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.model.channel_fill import ChannelFillMeta
from myoedge.edge.wire.protocol import FrameParser
from myoedge.ground.errors import InputError

OFF = (1.0, 2.0)  # seconds during which the electrodes are off


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    fill = ChannelFillMeta.of(training_envelopes(seconds=8.0, seed=11))
    return setup_parts(tmp_path_factory.mktemp("fill"), channel_fill=fill)


def lifted(channels: tuple[int, ...], *, seconds: float = 3.0, seed: int = 5):
    """(the counts with ``channels`` flat during OFF, the counts as they would have been)."""
    true = emg(seconds, seed=seed)
    counts = true.copy()
    a, b = (round(t * FS) for t in OFF)
    for c in channels:
        counts[a:b, c] = 7
    return counts, true


def run(parts, counts, *, fill: bool):
    bundle, profile, info = parts
    got, windows = [], []

    def keep(estimate):
        got.append(estimate)
        windows.append(pipe.current_window())
    parser = FrameParser()
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    safety=SafetyConfig(fill_off_channels=fill), parser=parser,
                    publishers=[CallbackPublisher(keep)])
    wire = stream(counts, info)
    for start in range(0, len(wire), 97):
        frames = parser.feed(wire[start:start + 97])
        if frames:
            pipe.on_frames(frames, 0)
    return pipe, got, np.array([w[-1] for w in windows])


def test_a_lifted_electrode_is_filled_in_and_flagged_reconstructed(parts, caplog):
    counts, true = lifted((2,))
    pipe, got, rows = run(parts, counts, fill=True)
    flags = [int(e.flags) for e in got]
    filled = [i for i, f in enumerate(flags) if f & Flags.RECONSTRUCTED]
    assert filled and not any(f & Flags.ELECTRODE_OFF for f in flags)
    assert all(got[i].bad_channels == 1 << 2 and got[i].valid for i in filled)
    assert pipe.stats()["filled_estimates"] == len(filled)
    # flagged from detection (flat for 100 ms) until the window no longer holds a filled sample
    first, last = filled[0] / 100.0, filled[-1] / 100.0
    assert OFF[0] + 0.09 <= first <= OFF[0] + 0.13 and OFF[1] <= last <= OFF[1] + 0.1
    assert "electrode off on ['ECRL']" in caplog.text and caplog.text.count("electrode off on") == 1
    # the filled envelope follows what the electrode would have measured; the flat one does not
    truth = training_envelopes(counts=true)[:len(rows), 2]
    inside = slice(filled[0] + 2, int(OFF[1] * 100) - 2)
    _, _, unfilled = run(parts, counts, fill=False)
    err_filled = np.sqrt(np.mean((rows[inside, 2] - truth[inside]) ** 2))
    err_flat = np.sqrt(np.mean((unfilled[inside, 2] - truth[inside]) ** 2))
    assert err_filled < 0.5 * err_flat
    np.testing.assert_array_equal(rows[inside][:, [0, 1, 3, 4]], unfilled[inside][:, [0, 1, 3, 4]])


def test_without_the_option_a_lifted_electrode_stays_invalid(parts):
    counts, _ = lifted((2,))
    pipe, got, _ = run(parts, counts, fill=False)
    flags = [int(e.flags) for e in got]
    assert any(f & Flags.ELECTRODE_OFF for f in flags) and not any(f & Flags.RECONSTRUCTED for f in flags)
    assert pipe.stats()["filled_estimates"] == 0


def test_more_lifted_electrodes_than_can_be_filled_stay_invalid(parts):
    counts, _ = lifted((0, 2, 4))  # 3 of 5: more than (5 - 1) // 2
    _, got, _ = run(parts, counts, fill=True)
    flags = [int(e.flags) for e in got]
    assert any(f & Flags.ELECTRODE_OFF for f in flags) and not any(f & Flags.RECONSTRUCTED for f in flags)


def test_a_bundle_without_the_block_is_refused(tmp_path):
    bundle, profile, info = setup_parts(tmp_path)
    with pytest.raises(InputError, match="no channel_fill block.*--fill-off-channels"):
        Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                 safety=SafetyConfig(fill_off_channels=True))
    assert len(MUSCLES) == 5
