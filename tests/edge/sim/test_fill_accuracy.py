"""The electrode-off measurement streams a recording through the loop's own pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, setup_parts, training_envelopes

from myoedge.body.recording import Recording, RecordingMeta
from myoedge.edge.dsp.envelope_report import emg_like
from myoedge.edge.loop.estimate import Flags
from myoedge.edge.model.channel_fill import ChannelFillMeta
from myoedge.edge.sim.fill_accuracy import main, replay, score_channel_off


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("acc"), channel_fill=ChannelFillMeta.of(training_envelopes()))


def recording(seconds: float = 4.0) -> Recording:
    volts = emg_like(fs_hz=FS, seconds=seconds, n_channels=len(MUSCLES), seed=3)
    t = np.arange(int(seconds * 100)) / 100.0
    return Recording(meta=RecordingMeta(joint="wrist", muscles=MUSCLES, subject="s01", trial="t1"), emg_fs=FS,
                     emg=volts, emg_t0=0.0, time=t, rate=100.0, theta=0.3 * np.sin(2 * np.pi * 0.5 * t))


def test_replay_flags_the_lifted_channel_and_fills_it_only_when_asked(parts):
    bundle, profile, _ = parts
    rec = recording()
    intact = replay(bundle, profile, rec)
    assert len(intact["theta"]) == 400 and not np.any(intact["flags"][20:] & int(Flags.ELECTRODE_OFF))
    np.testing.assert_allclose(intact["t"], np.arange(400) / 100.0)
    off = replay(bundle, profile, rec, flat=1, off_at_s=2.0)
    filled = replay(bundle, profile, rec, flat=1, off_at_s=2.0, fill=True)
    late = intact["t"] > 2.2
    assert np.all(off["flags"][late] & int(Flags.ELECTRODE_OFF))
    assert np.all(filled["flags"][late] & int(Flags.RECONSTRUCTED))
    assert not np.any(filled["flags"][late] & int(Flags.ELECTRODE_OFF))
    np.testing.assert_array_equal(off["theta"][intact["t"] < 2.0], intact["theta"][intact["t"] < 2.0])


def test_scores_cover_every_channel(parts):
    bundle, profile, _ = parts
    result = score_channel_off(bundle, profile, [recording(), recording()], off_fraction=0.5)
    assert result["recordings"] == ["s01/t1"] * 2 and set(result["channels"]) == set(MUSCLES)
    assert result["intact"]["valid"] == 1.0 and -1.0 <= result["intact"]["theta_cc"] <= 1.0
    for row in result["channels"].values():
        assert row["off"]["valid"] == 0.0 and row["filled"]["reconstructed"] == 1.0


def test_the_command_refuses_a_missing_bundle(tmp_path, capsys):
    missing = [str(tmp_path), "--bundle", str(tmp_path / "none"), "--profile", str(tmp_path / "p.json")]
    assert main(missing) == 2
    assert "error:" in capsys.readouterr().err
