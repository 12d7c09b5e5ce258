"""Network shapes, the presets' layer counts, causality of the edge model and time-shared dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from myoedge.ground.errors import InputError
from myoedge.train.models import FeatureConv, ModelConfig, SharedDropout, build_model, n_parameters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one torch thread is faster, and far faster when other work shares the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("preset, convs, linears", [("pi-cnn", 1, 3), ("cnn", 3, 4)])
def test_paper_networks(preset, convs, linears):
    cfg = ModelConfig.for_preset(preset, n_channels=5, n_muscles=5)
    model = build_model(cfg).eval()
    assert _count(model, nn.Conv1d) == convs and _count(model, nn.Linear) == linears  # FC blocks + head
    convs_found = [c for c in model.modules() if isinstance(c, nn.Conv1d)]
    assert all(c.out_channels == 128 and c.kernel_size == (3,) for c in convs_found)
    blocks = convs + linears - 1
    assert _count(model, SharedDropout) == blocks and _count(model, nn.BatchNorm1d) == blocks
    out = model(torch.rand(40, 5), torch.linspace(0, 1, 40))
    assert out.shape == (40, 6)
    theta, forces = model.to_physical(out)
    assert theta.shape == (40,) and forces.shape == (40, 5)
    assert cfg.window == 1 and cfg.uses_time


@pytest.mark.parametrize("c_in, length, kernel, bias", [(1, 3, 3, True), (128, 6, 3, True), (4, 5, 5, False)])
def test_feature_conv_is_the_convolution(c_in, length, kernel, bias):
    torch.manual_seed(0)
    fast = FeatureConv(c_in, 16, kernel, padding=kernel // 2, bias=bias)
    plain = nn.Conv1d(c_in, 16, kernel, padding=kernel // 2, bias=bias)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(50, c_in, length, requires_grad=True)
    y_fast, y_plain = fast(x), plain(x)
    assert y_fast.shape == y_plain.shape == (50, 16, length)
    assert torch.allclose(y_fast, y_plain, atol=1e-5)
    g = torch.randn_like(y_plain)
    (gx_fast,) = torch.autograd.grad(y_fast, x, g)
    (gx_plain,) = torch.autograd.grad(y_plain, x, g)
    assert torch.allclose(gx_fast, gx_plain, atol=1e-5)


def test_edge_model_is_small_causal_and_sees_exactly_its_window():
    torch.manual_seed(0)
    cfg = ModelConfig.for_preset("edge-window", n_channels=2, n_muscles=2)
    model = build_model(cfg).eval()
    w = cfg.window
    assert w == 1 + 2 * sum(cfg.dilations) + cfg.smooth - 1 and cfg.smooth > 1 and not cfg.uses_time
    assert 2_000 <= n_parameters(model) <= 60_000
    x = torch.rand(3, w + 20, 2)
    out = model(x)
    assert out.shape == (3, 21, 3)
    last = out[:, -1]
    y = x.clone()
    y[:, : x.shape[1] - w] += 5.0  # older than the last output's window
    torch.testing.assert_close(model(y)[:, -1], last, rtol=0, atol=0)
    y = x.clone()
    y[:, x.shape[1] - w] += 5.0  # the oldest frame of that window
    assert not torch.equal(model(y)[:, -1], last)
    y = x.clone()
    y[:, -1] += 5.0  # the future of every output but the last
    torch.testing.assert_close(model(y)[:, :-1], out[:, :-1], rtol=0, atol=0)


def test_edge_smoother_is_a_causal_hann_average_of_theta_only():
    torch.manual_seed(0)
    cfg = ModelConfig.for_preset("edge-window", n_channels=2, n_muscles=2, dilations=(1, 2), smooth=5)
    smoothed = build_model(cfg).eval()
    raw = build_model(ModelConfig.for_preset("edge-window", n_channels=2, n_muscles=2, dilations=(1, 2),
                                             smooth=1))
    raw.load_state_dict(smoothed.state_dict())  # the filter is fixed: no parameters, not in the state dict
    raw.eval()
    x = torch.rand(2, 40, 2)
    a, b = smoothed(x), raw(x)
    assert a.shape == (2, 40 - cfg.window + 1, 3) and b.shape[1] == a.shape[1] + 4
    torch.testing.assert_close(a[..., 1:], b[:, 4:, 1:])  # forces: untouched, aligned on the last step
    taps = torch.tensor([0.25, 0.75, 1.0, 0.75, 0.25])  # Hann of 7 points without its zero ends
    expected = sum(taps[j] * b[:, j:j + a.shape[1], 0] for j in range(5)) / taps.sum()
    torch.testing.assert_close(a[..., 0], expected)
    all_cfg = ModelConfig.for_preset("edge-window", n_channels=2, n_muscles=2, dilations=(1, 2), smooth=5,
                                     smooth_all=True)
    both = build_model(all_cfg).eval()
    both.load_state_dict(smoothed.state_dict())
    torch.testing.assert_close(both(x)[..., 0], a[..., 0])
    assert not torch.allclose(both(x)[..., 1:], a[..., 1:])


def test_shared_dropout_keeps_one_mask_along_time():
    torch.manual_seed(0)
    per_step = SharedDropout(0.5, time_dim=0).train()
    y = per_step(torch.ones(50, 16))
    assert torch.equal(y, y[:1].expand(50, -1)) and 0 < (y == 0).sum() < 50 * 16
    chunks = SharedDropout(0.5, time_dim=2).train()
    z = chunks(torch.ones(4, 16, 30))
    assert torch.equal(z, z[..., :1].expand(-1, -1, 30)) and not torch.equal(z[0], z[1])
    assert torch.equal(per_step.eval()(torch.ones(3, 4)), torch.ones(3, 4))


def test_shared_dropout_draws_one_mask_per_sequence_of_a_batch():
    torch.manual_seed(0)
    drop = SharedDropout(0.5, time_dim=0).train()
    y = drop(torch.ones(30, 64), [10, 5, 15])
    parts = y[:10], y[10:15], y[15:]
    assert all(torch.equal(p, p[:1].expand(len(p), -1)) for p in parts)  # smooth within a sequence
    assert not torch.equal(parts[0][0], parts[1][0]) and not torch.equal(parts[1][0], parts[2][0])
    with pytest.raises(InputError, match="must split the 30 rows"):
        drop(torch.ones(30, 64), [10, 10])
    with pytest.raises(InputError, match="time_dim 2"):
        SharedDropout(0.5, time_dim=2).train()(torch.ones(2, 4, 6), [2])
    assert torch.equal(drop.eval()(torch.ones(30, 4), [10, 20]), torch.ones(30, 4))


def test_per_step_network_drops_units_per_cycle_of_a_batch():
    cfg = ModelConfig.for_preset("pi-cnn", n_channels=2, n_muscles=2, filters=16, hidden=16, dropout=0.5)
    model = build_model(cfg).train()
    env, t = torch.ones(200, 2), torch.full((200,), 0.5)  # two identical cycles of 100 steps
    torch.manual_seed(1)
    one = model(env, t)  # one sequence: the same mask (and the same input) for every step
    assert torch.allclose(one, one[:1].expand(200, -1), atol=1e-5)
    torch.manual_seed(1)
    two = model(env, t, [100, 100])
    assert torch.allclose(two[:100], two[:1].expand(100, -1), atol=1e-5)
    assert not torch.allclose(two[0], two[100], atol=1e-3)  # each cycle its own mask


def test_config_round_trip_and_validation():
    cfg = ModelConfig.for_preset("edge-window", n_channels=3, n_muscles=4, dilations=(1, 2), filters=8,
                                 smooth=3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and cfg.window == 9
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("smooth", "smooth_all")}
    assert ModelConfig.from_dict(old).smooth == 1  # run folders from before the smoother load unsmoothed
    with pytest.raises(InputError, match="preset must be one of"):
        ModelConfig.for_preset("lstm", n_channels=1, n_muscles=1)
    with pytest.raises(InputError, match="dropout"):
        ModelConfig.for_preset("pi-cnn", n_channels=1, n_muscles=1, dropout=1.5)
    with pytest.raises(InputError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "layers": 3})
