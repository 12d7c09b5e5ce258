"""The observer's Hill-type force stage: the plain softplus force at initialisation, force-length and
force-velocity shapes and a passive force that follow the integrated kinematics, bounded growth, and an
observer whose forces depend on its state's velocity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from myoedge.ground.errors import InputError
from myoedge.train.force_stage import FEATURES, MAX_EXPONENT, PASSIVE_BIAS, KinematicForceStage, staged_forces
from myoedge.train.models import ModelConfig, build_model


def _forces(stage, drive, angle, velocity, scale):
    weights, bias = stage.weights()
    return staged_forces(torch.nn.functional.softplus(drive), angle, velocity, weights, bias, scale)


def test_at_initialisation_the_stage_is_the_plain_force_plus_a_small_passive_floor():
    stage, scale = KinematicForceStage(3), torch.tensor([10.0, 20.0, 5.0])
    drive, angle, velocity = torch.randn(4, 3), torch.randn(4), torch.randn(4)
    expect = scale * (torch.nn.functional.softplus(drive) + math.log1p(math.exp(PASSIVE_BIAS)))
    torch.testing.assert_close(_forces(stage, drive, angle, velocity, scale), expect)


def test_shortening_lowers_the_active_force_and_stretch_raises_the_passive_one():
    stage, scale = KinematicForceStage(1), torch.ones(1)
    with torch.no_grad():
        stage.active[0, 2] = -0.5  # force-velocity: shortening (positive velocity here) pulls less
        stage.passive[0, 1] = 2.0  # passive force grows with the angle
    drive = torch.full((5, 1), 1.0)
    velocity = torch.linspace(-2.0, 2.0, 5)
    active = _forces(stage, drive, torch.zeros(5), velocity, scale)[:, 0]
    assert torch.all(active[1:] < active[:-1])
    resting = _forces(stage, torch.full((5, 1), -30.0), torch.linspace(-2.0, 2.0, 5), torch.zeros(5), scale)
    assert torch.all(resting[1:, 0] > resting[:-1, 0]) and resting[0, 0] < 0.01


def test_the_force_velocity_curve_can_be_asymmetric_as_hills_is():
    """A steep loss shortening, a saturating gain lengthening: the s² term gives what s alone cannot."""
    stage, scale = KinematicForceStage(1), torch.ones(1)
    with torch.no_grad():
        stage.active[0, 2], stage.active[0, 3] = -0.5, -0.5  # log f = −0.5 s − 0.5 s², s = tanh(ω̃)
    velocity = torch.tensor([-1.0, 0.0, 1.0])  # lengthening, still, shortening (this muscle's sign)
    with torch.no_grad():
        f = _forces(stage, torch.full((3, 1), 1.0), torch.zeros(3), velocity, scale)[:, 0]
    gain, loss = float(f[0] / f[1]), float(f[1] / f[2])
    assert gain > 1.0 and loss > 1.0
    assert math.log(loss) > 3.0 * math.log(gain)  # shortening loses far more than lengthening gains


def test_a_stage_saved_before_the_squared_velocity_loads_with_zero_weight_on_it():
    old = {"active": torch.full((2, 3), 0.5), "passive": torch.full((2, 4), -1.0), "emg_gain": torch.zeros(2)}
    stage = KinematicForceStage(2)
    stage.load_state_dict(old)
    assert stage.active.shape == (2, FEATURES) and stage.passive.shape == (2, 1 + FEATURES)
    assert torch.all(stage.active[:, :3] == 0.5) and torch.all(stage.active[:, 3:] == 0)
    assert torch.all(stage.passive[:, :4] == -1.0) and torch.all(stage.passive[:, 4:] == 0)


def test_the_active_shape_is_bounded():
    stage, scale = KinematicForceStage(1), torch.ones(1)
    with torch.no_grad():
        stage.active.fill_(100.0)
    with torch.no_grad():
        f = _forces(stage, torch.zeros(1, 1), torch.tensor([3.0]), torch.tensor([0.0]), scale)
    assert float(f) <= math.log(2.0) * math.exp(MAX_EXPONENT) + 1.0


def test_the_observer_forces_follow_its_velocity_state_and_other_kinds_refuse_the_stage():
    torch.manual_seed(0)
    net = build_model(ModelConfig.for_preset("edge-observer", n_channels=2, n_muscles=2, hidden=4,
                                             force_stage=True)).eval()
    with torch.no_grad():
        net.force_stage.active[:, 2] = torch.tensor([-1.0, 1.0])
        x = torch.rand(1, 1, 2)
        still, moving = net.initial_state(), net.initial_state().clone()
        moving[0, 1] = 5.0
        f_still, f_moving = net.step(x, still)[1], net.step(x, moving)[1]
    assert f_moving[0, 0] < f_still[0, 0] and f_moving[0, 1] > f_still[0, 1]
    with pytest.raises(InputError, match="force_stage"):
        ModelConfig.for_preset("edge-rnn", n_channels=2, n_muscles=2, force_stage=True)
    with pytest.raises(InputError, match="force_stage"):
        ModelConfig.for_preset("edge-observer", n_channels=2, n_muscles=2, force_stage=1)


def test_the_drive_grows_with_the_muscles_own_envelope_past_the_training_levels():
    stage, scale = KinematicForceStage(2), torch.tensor([100.0, 50.0])
    stage.set_emg_gain([3.0, 2.0])
    torch.testing.assert_close(torch.nn.functional.softplus(stage.emg_gain), torch.tensor([3.0, 2.0]))
    envelopes = torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    with torch.no_grad():
        drive = stage.drive(torch.zeros(3, 2), envelopes)
        f = _forces(stage, drive, torch.zeros(3), torch.zeros(3), scale)
    torch.testing.assert_close(drive, envelopes * torch.tensor([3.0, 2.0]))
    ratio = (f[2] - f[1]) / (f[1] - f[0])  # equal steps in a linear force: twice the rise for twice the step
    assert torch.all((ratio > 1.8) & (ratio < 2.2))


def test_the_fit_starts_the_envelope_gains_at_the_training_datas_force_per_envelope():
    from myoedge.body.subjects import make_subject, simulate_session, true_profile
    from myoedge.train.data import load_sequences

    subject = make_subject("wrist", 1)
    seqs = load_sequences(simulate_session(subject, duration_s=4.0, trial_paces=("slow",)),
                          profiles={subject.name: true_profile(subject)})
    net = build_model(ModelConfig.for_preset("edge-observer", n_channels=5, n_muscles=5, hidden=4))
    with torch.no_grad():
        net.force_std.copy_(torch.as_tensor(seqs[0].forces.std(0), dtype=torch.float32))
    net.identify(seqs)
    env, force = seqs[0].envelopes, seqs[0].forces
    expect = (env * force).sum(0) / (env * env).sum(0) / force.std(0)
    got = torch.nn.functional.softplus(net.force_stage.emg_gain).detach().numpy()
    assert np.allclose(got, np.clip(expect, 1e-3, 50.0), rtol=1e-4)
