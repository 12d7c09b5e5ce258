"""Deep-muscle reconstruction: activation dynamics, the torch physics against the body model, SynX, bounds
and the ``reconstruct`` verb."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from myoedge.body.activation import impulse_response, neural_activation, shape_activation  # noqa: E402
from myoedge.body.catalog import generic_model  # noqa: E402
from myoedge.body.muscle import MuscleSet  # noqa: E402
from myoedge.body.tendon import FIBER_DAMPING  # noqa: E402
from myoedge.cli import main  # noqa: E402
from myoedge.ground.errors import InputError  # noqa: E402
from myoedge.train.reconstruct import nmm, physics, synx  # noqa: E402
from myoedge.train.reconstruct.config import ENCODERS  # noqa: E402
from myoedge.train.reconstruct.data import SubjectData, Trial, check_hidden, load_dataset, split  # noqa: E402

MUSCLES = ("BIClong", "BICshort", "BRA", "TRIlong", "TRIlat", "TRImed")


def direct_recursion(e, c1, c2, shape):
    """u(t) = α e(t) − β1 u(t−1) − β2 u(t−2), a = (e^{Au} − 1)/(e^A − 1), written out step by step."""
    b1, b2 = c1 + c2, c1 * c2
    alpha = 1 + b1 + b2
    u = np.zeros_like(e)
    for t in range(len(e)):
        u1 = u[t - 1] if t >= 1 else 0.0
        u2 = u[t - 2] if t >= 2 else 0.0
        u[t] = alpha * e[t] - b1 * u1 - b2 * u2
    return u, (np.exp(shape * u) - 1) / (np.exp(shape) - 1)


def test_activation_matches_the_direct_recursion():
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 1, (300, 3))
    shape = np.array([-0.5, -1.5, -2.9])
    u_ref, a_ref = direct_recursion(e, -0.7, -0.4, shape)
    u = neural_activation(e, c1=-0.7, c2=-0.4)
    np.testing.assert_allclose(u, u_ref, atol=1e-12)
    np.testing.assert_allclose(shape_activation(u, shape), a_ref, atol=1e-12)
    delayed = neural_activation(e, c1=-0.7, c2=-0.4, delay=3)
    np.testing.assert_allclose(delayed[3:], u_ref[:-3], atol=1e-12)
    # the torch loss: a causal convolution with the truncated impulse response
    p = {"c1": torch.tensor([-0.7]), "c2": torch.tensor([-0.4]),
         "shape": torch.tensor(shape, dtype=torch.float32)}
    a_torch = physics.activation(torch.tensor(e[None], dtype=torch.float32), p)[0].numpy()
    np.testing.assert_allclose(a_torch, a_ref, atol=2e-5)
    h = impulse_response(-0.7, -0.4, 50)
    assert h.sum() == pytest.approx(1.0, abs=1e-6)  # unity static gain


def _trial(model, theta, *, load=0.0, measured_idx=(0, 1, 3, 4), hidden_idx=(2, 5), env=None, tau=None,
           name="t"):
    dt = 0.01
    th_dot = np.gradient(theta, dt)
    r = model.moment_arms(theta)
    n = len(theta)
    env = np.zeros((n, len(model.muscles))) if env is None else env
    return Trial(subject="S", name=name, task=name, load_kg=load, t=np.arange(n) * dt,
                 kinematics=np.column_stack([theta, th_dot, np.gradient(th_dot, dt)]),
                 measured=env[:, list(measured_idx)], truth=env[:, list(hidden_idx)],
                 torque=np.zeros(n) if tau is None else tau, moment_arms=r,
                 l_mt=MuscleSet(model).mt_length(theta), l_mt_dot=-r * th_dot[:, None])


def test_torque_from_known_excitations_equals_the_body_model():
    model = generic_model("elbow6")
    n = 400
    tt = np.arange(n) * 0.01
    theta = 1.2 + 0.6 * np.sin(2 * np.pi * 0.7 * tt)
    e = 0.5 + 0.4 * np.sin(2 * np.pi * np.outer(tt, [0.5, 0.8, 1.1, 0.3, 0.9, 1.4]))
    trial = _trial(model, theta)
    # the body model, in numpy: CEINMS activation, Hill forces (with fibre damping), Σ r F
    g = {k: v for k, (_, _, v) in physics.bounds(model).items()}
    a = shape_activation(neural_activation(e, c1=-0.6, c2=-0.6), g["shape"])
    ms = MuscleSet(model)
    _, v, cos_a = ms.fiber_state(theta, trial.kinematics[:, 1])
    f = ms.forces(a, theta, trial.kinematics[:, 1]) + ms.f0 * FIBER_DAMPING * v * cos_a
    expected = model.muscle_torque(theta, f)
    # the torch physics at generic parameters
    personal = physics.Personal(model)
    tensors = [torch.tensor(x[None], dtype=torch.float32)
               for x in (e, trial.l_mt, trial.l_mt_dot, trial.moment_arms)]
    tau, _ = physics.torque(*tensors, personal)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(tau[0].detach().numpy(), expected, atol=2e-3 * scale)
    # SynX's numpy path, the same model
    data = SubjectData(subject="S", muscles=MUSCLES, measured=(0, 1, 3, 4), hidden=(2, 5), model=model,
                       trials=(trial,))
    g["max_velocity"] = np.array([m.max_velocity for m in model.muscles])
    tau_np, _ = synx.muscle_torque(data, trial, e, g["strength"], g)
    np.testing.assert_allclose(tau_np, expected, atol=1e-9 * scale)


def test_the_joints_passive_moment_is_taken_off_the_muscles_torque_and_stays_in_its_bounds():
    model = generic_model("elbow6")
    tt = np.arange(300) * 0.01
    theta = 1.2 + 0.6 * np.sin(2 * np.pi * 0.7 * tt)
    trial = _trial(model, theta)
    e = torch.full((1, 300, 6), 0.3)
    tensors = [torch.tensor(x[None], dtype=torch.float32)
               for x in (trial.l_mt, trial.l_mt_dot, trial.moment_arms, trial.kinematics)]
    muscles_only, _ = physics.torque(e, *tensors[:3], physics.Personal(model))
    personal = physics.Personal(model, joint_passive=True)
    with torch.no_grad():
        for name, raw in (("stiffness", 0.0), ("offset", -1.0), ("damping", 2.0)):
            personal.raw[name].fill_(raw)
    tau, _ = physics.torque(e, *tensors[:3], personal, kinematics=tensors[3])
    p = {k: float(v[0].detach()) for k, v in personal.values().items() if k in physics.JOINT_PASSIVE}
    for k, (lo, hi, _) in physics.JOINT_PASSIVE.items():
        assert lo < p[k] < hi
    expected = muscles_only[0].detach().numpy() - (p["stiffness"] * theta + p["offset"]
                                          + p["damping"] * trial.kinematics[:, 1])
    np.testing.assert_allclose(tau[0].detach().numpy(), expected, rtol=1e-5, atol=1e-4)


def test_synx_recovers_a_hidden_channel_that_is_a_synergy_combination():
    model = generic_model("elbow6")
    rng = np.random.default_rng(3)
    n = 600
    tt = np.arange(n) * 0.01
    # bursts that are each zero part of the time, and a measured channel per synergy alone: the NMF of
    # the measured channels is then unique (up to scale), as synergy extrapolation presumes
    h = 0.5 * np.clip(np.column_stack([np.sin(2 * np.pi * 0.6 * tt), np.sin(2 * np.pi * 1.3 * tt + 1)]),
                      0, None)
    w_meas = rng.uniform(0.1, 1.0, (2, 4))
    w_meas[0, 0] = w_meas[1, 2] = 0.0
    w_hidden = np.array([[0.8, 0.0], [0.2, 0.9]])
    env = np.zeros((n, 6))
    env[:, [0, 1, 3, 4]] = h @ w_meas
    env[:, [2, 5]] = h @ w_hidden
    theta = 1.2 + 0.5 * np.sin(2 * np.pi * 0.4 * tt)
    data = SubjectData(subject="S", muscles=MUSCLES, measured=(0, 1, 3, 4), hidden=(2, 5), model=model,
                       trials=())
    g = {k: v for k, (_, _, v) in physics.bounds(model).items()}
    g["max_velocity"] = np.array([m.max_velocity for m in model.muscles])
    trials = []
    for i in range(2):
        t = _trial(model, theta if i == 0 else theta[::-1].copy(), env=env if i == 0 else env[::-1].copy(),
                   name=f"t{i}")
        tau, _ = synx.muscle_torque(data, t, np.vstack([env, env[::-1]])[i * n:(i + 1) * n], g["strength"], g)
        trials.append(Trial(**{**t.__dict__, "torque": tau}))
    # with generic strengths the weights are identifiable: the hidden channels come back exactly
    fitted = synx.fit(data, trials[:1], synx.SynxConfig(synergies=2, fit_strength=False))
    pred = synx.predict(fitted, trials[1])
    for j, m in enumerate(data.hidden):
        truth, recon = trials[1].truth[:, j], pred["excitation"][:, m]
        assert np.corrcoef(truth, recon)[0, 1] > 0.999
        assert np.sqrt(np.mean((truth - recon) ** 2)) < 0.01
    # strengths fit as well: a strength and a weight trade off, the shape still comes back
    fitted = synx.fit(data, trials[:1], synx.SynxConfig(synergies=2))
    pred = synx.predict(fitted, trials[1])
    for j, m in enumerate(data.hidden):
        assert np.corrcoef(trials[1].truth[:, j], pred["excitation"][:, m])[0, 1] > 0.99


def test_parameters_stay_inside_their_bounds_and_activations_in_unit_range():
    model = generic_model("elbow6")
    personal = physics.Personal(model)
    with torch.no_grad():
        for p in personal.raw.values():
            p.copy_(torch.linspace(-60, 60, p.numel()))
    rep = personal.report()
    for name, d in rep.items():
        v, lo, hi = map(np.asarray, (d["value"], d["lo"], d["hi"]))
        slack = 1e-6 * np.maximum(np.abs(lo), np.abs(hi))  # float32 rounding at a bound
        assert np.all(v >= lo - slack) and np.all(v <= hi + slack), name
    e = torch.rand(2, 200, 6) * 3 - 1  # even excitations outside [0, 1] give activations inside it
    with torch.no_grad():
        a = physics.activation(e.clamp(0, 1), personal.values())
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


@pytest.fixture(scope="module")
def elbow_data(tmp_path_factory):
    from myoedge.body.subjects import write_dataset

    out = tmp_path_factory.mktemp("elbow6")
    write_dataset(out, joints=("elbow6",), n_subjects=1, duration_s=4.0, family="hard", loads=(0.0, 2.0, 4.0))
    return out


def test_splits_and_hidden_channels(elbow_data):
    ds = load_dataset(elbow_data, hidden=["BRA", "TRImed"])
    (data,) = ds.values()
    assert data.hidden == (2, 5) and data.measured == (0, 1, 3, 4)
    train, test = split(data, "load")
    assert {t.load_kg for t in train} == {0.0, 4.0} and {t.load_kg for t in test} == {2.0}
    train, test = split(data, "trial")
    assert {t.task for t in test} == {"mix3"} and "mix3" not in {t.task for t in train}
    assert all(t.measured.shape[1] == 4 and t.truth.shape[1] == 2 for t in data.trials)


def test_without_a_profile_the_recorded_moment_arms_give_the_geometry(elbow_data, tmp_path):
    """A lab's recordings with a muscle analysis and no profile: r(θ) and l_MT(θ) from the recorded arms."""
    lab = shutil.copytree(elbow_data, tmp_path / "lab")
    for profile in lab.rglob("profile.json"):
        profile.unlink()
    (with_profile,) = load_dataset(elbow_data, hidden=["BRA", "TRImed"]).values()
    (data,) = load_dataset(lab, hidden=["BRA", "TRImed"]).values()
    theta = np.concatenate([t.kinematics[:, 0] for t in data.trials])
    seg = data.model.segment
    assert (seg.range_lo, seg.range_hi) == pytest.approx((theta.min(), theta.max()))
    for t, p in zip(data.trials, with_profile.trials):
        np.testing.assert_allclose(t.moment_arms, p.moment_arms, atol=1e-3)  # the subject's arms, as recorded
        np.testing.assert_allclose(t.l_mt_dot, -t.moment_arms * t.kinematics[:, 1:2])
    generic = generic_model("elbow6")
    assert [m.max_force for m in data.model.muscles] == [m.max_force for m in generic.muscles]


def test_the_trial_split_holds_out_the_last_trial_at_every_load_of_a_labs_numbered_trials():
    model = generic_model("elbow6")
    theta = np.full(50, 1.0)
    trials = tuple(_trial(model, theta, load=load, name=f"trial{i + 1}")
                   for i, load in enumerate([0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 2.0]))
    data = SubjectData(subject="S", muscles=MUSCLES, measured=(0, 1, 3, 4), hidden=(2, 5), model=model,
                       trials=trials)
    train, test = split(data, "trial")
    assert [t.name for t in test] == ["trial4", "trial5", "trial7"]
    assert [t.name for t in train] == ["trial1", "trial2", "trial3", "trial6"]
    alone = SubjectData(subject="S", muscles=MUSCLES, measured=(0, 1, 3, 4), hidden=(2, 5), model=model,
                        trials=trials[:3])
    with pytest.raises(InputError, match="two or more trials at one load"):
        split(alone, "trial")


def test_nmm_short_fit_keeps_excitations_and_activations_in_range(elbow_data):
    torch.set_num_threads(1)
    (data,) = load_dataset(elbow_data, hidden=["BRA", "TRImed"]).values()
    train, test = split(data, "trial")
    for encoder in ENCODERS:
        fitted = nmm.fit(data, train, nmm.NmmConfig(encoder=encoder, iterations=3, batch=2, window=150,
                                                     burn_in=50, hidden=8))
        out = nmm.predict(fitted, test[0])
        for key in ("excitation", "activation"):
            assert out[key].min() >= 0.0 and out[key].max() <= 1.0
        assert np.all(np.isfinite(out["torque"]))
        for name, d in fitted.model.personal.report().items():
            assert np.all(np.asarray(d["value"]) >= np.asarray(d["lo"])), name
            assert np.all(np.asarray(d["value"]) <= np.asarray(d["hi"])), name


def test_the_synergy_prior_averages_the_measured_muscles_of_the_hidden_ones_action(elbow_data):
    (data,) = load_dataset(elbow_data, hidden=["BRA", "TRImed"]).values()
    np.testing.assert_array_equal(nmm.action_mix(data), [[0.5, 0], [0.5, 0], [0, 0.5], [0, 0.5]])
    model = nmm.Nmm(data, nmm.NmmConfig(), norm=(np.zeros(8), np.ones(8)))
    np.testing.assert_allclose(model.synergy_mix().detach().numpy(), nmm.action_mix(data))
    learned = nmm.Nmm(data, nmm.NmmConfig(synergy_mix="learned"), norm=(np.zeros(8), np.ones(8)))
    np.testing.assert_allclose(learned.synergy_mix().detach().numpy(),
                               torch.nn.functional.softplus(learned.mix).detach().numpy())
    (flexors_hidden,) = load_dataset(elbow_data, hidden=["BIClong", "BICshort", "BRA"]).values()
    mix = nmm.action_mix(flexors_hidden)  # no measured flexor: the learned mix stands in
    assert np.isnan(mix).all()
    alone = nmm.Nmm(flexors_hidden, nmm.NmmConfig(), norm=(np.zeros(7), np.ones(7)))
    weights = alone.synergy_mix().detach()
    assert torch.isfinite(weights).all() and float(weights.min()) > 0
    with pytest.raises(InputError, match="synergy_mix"):
        nmm.NmmConfig(synergy_mix="fixed")
    for name, bad in (("w_torque", -1.0), ("w_emg", float("nan")), ("physics_lr_scale", True)):
        with pytest.raises(InputError, match=name):
            nmm.NmmConfig(**{name: bad})


def test_the_prior_alone_scores_a_hidden_channel_that_is_its_synergists_mean_perfectly(elbow_data, capsys):
    from myoedge.train.reconstruct import prior

    model = generic_model("elbow6")
    tt = np.arange(300) * 0.01
    env = 0.2 + 0.1 * np.sin(2 * np.pi * np.outer(tt, [0.5, 0.8, 1.1, 0.3, 0.9, 1.4]))
    env[:, 2] = env[:, :2].mean(1)  # BRA: the mean of the biceps heads
    env[:, 5] = 0.3 * env[:, 3] + 0.1  # TRImed: another shape than its synergists' mean
    trials = tuple(_trial(model, np.full(300, 1.0), env=env, name=n) for n in ("a", "b"))
    data = SubjectData(subject="S", muscles=MUSCLES, measured=(0, 1, 3, 4), hidden=(2, 5), model=model,
                       trials=trials)
    s = prior.score_prior(data, "trial")
    assert s["BRA"]["cc"] == pytest.approx(1.0) and s["BRA"]["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert s["TRImed"]["cc"] < 0.99 and s["TRImed"]["rmse"] > 0.01
    lonely = SubjectData(subject="S", muscles=MUSCLES, measured=(3, 4, 5), hidden=(0, 1, 2), model=model,
                         trials=trials)
    with pytest.raises(InputError, match="no measured muscle shares the action"):
        prior.score_prior(lonely, "trial")
    assert prior.main([str(elbow_data), "--hidden", "BRA", "TRImed", "--split", "load"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["method"] == "prior" and set(line["hidden"]) == {"BRA", "TRImed"}
    assert prior.main([str(elbow_data), "--hidden", "XYZ"]) == 2


def test_check_hidden_rejects_unknown_duplicate_and_all():
    assert check_hidden(MUSCLES, ["BRA"]) == ("BRA",)
    for bad in (["XYZ"], ["BRA", "BRA"], list(MUSCLES), []):
        with pytest.raises(InputError):
            check_hidden(MUSCLES, bad)


def test_cli_rejects_bad_hidden_lists_and_missing_load(elbow_data, tmp_path, capsys):
    base = ["reconstruct", str(elbow_data), "--out", str(tmp_path / "run")]
    assert main(base + ["--hidden", "XYZ"]) == 2
    assert "unknown hidden muscle" in capsys.readouterr().err
    assert main(base + ["--hidden", *MUSCLES]) == 2
    assert "every muscle is hidden" in capsys.readouterr().err
    copy = tmp_path / "noload"
    shutil.copytree(elbow_data, copy)
    meta_path = next(copy.rglob("recording.json"))
    meta = json.loads(meta_path.read_text())
    meta.pop("load_kg", None)
    meta_path.write_text(json.dumps(meta))
    assert main(["reconstruct", str(copy), "--out", str(tmp_path / "r2"), "--hidden", "BRA"]) == 2
    assert "load_kg" in capsys.readouterr().err
    assert main(base + ["--hidden", "BRA", "--w-torque", "-1"]) == 2
    assert "w_torque must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["synx", "nmm"])
def test_cli_writes_a_run_and_prints_the_json_line(elbow_data, tmp_path, capsys, method):
    out = tmp_path / "run"
    rc = main(["reconstruct", str(elbow_data), "--hidden", "BRA", "TRImed", "--out", str(out),
               "--method", method, "--split", "load", "--iterations", "3", "--json", "--quiet",
               "--no-figures"])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["method"] == method and set(line["hidden"]) == {"BRA", "TRImed"}
    assert set(line["hidden"]["BRA"]) == {"cc", "rmse"} and set(line["torque"]) == {"r2", "rmse"}
    for name in ("summary.json", "parameters.json", "report.md"):
        assert (out / name).exists()
    assert list((out / "envelopes").rglob("*.csv")) and list((out / "envelopes").rglob("*.sto"))


def test_compare_tables_runs_with_anova(tmp_path):
    from myoedge.train.reconstruct.compare import compare

    runs = []
    for method, shift in (("nmm", 0.1), ("synx", 0.0)):
        score = {"hidden": {"BRA": {"cc": 0.7 + shift, "rmse": 0.1 - shift / 2}},
                 "torque": {"r2": 0.9 + shift / 2, "rmse": 1.0}}
        subjects = {f"S{i}": {"hidden": {"BRA": {"cc": 0.7 + shift + 0.01 * i, "rmse": 0.1 - shift / 2}},
                              "torque": {"r2": 0.9 + shift / 2 + 0.001 * i, "rmse": 1.0}, "seconds": 10.0 + i,
                              "by_load": {"2": score}}
                    for i in range(4)}
        folder = tmp_path / method
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({
            "method": method, "split": "load", "hidden_muscles": ["BRA"], "subjects": subjects,
            "config": {"encoder": "gru"} if method == "nmm" else {}}))
        runs.append(folder)
    text = compare(runs)
    assert "split load" in text and "nmm" in text and "synx" in text
    assert "BRA cc" in text and "torque r2" in text and "nmm − synx" in text


@pytest.mark.slow
def test_nmm_beats_synx_on_torque_for_one_synthetic_subject(tmp_path):
    """A real (short) fit: 12 s trials at 0/2/4 kg, 400 steps; the torque tracks ID and the hidden
    flexor follows its measured envelope at its level. Measured when written: torque R² 0.885 (SynX
    0.20); BRA CC 0.79, RMSE 0.08 (with the learned synergy mix 0.58 and 0.17: the level was lost)."""
    from myoedge.body.subjects import write_dataset
    from myoedge.train.reconstruct.run import RunConfig, reconstruct

    torch.set_num_threads(1)
    write_dataset(tmp_path, joints=("elbow6",), n_subjects=1, duration_s=12.0, family="hard",
                  loads=(0.0, 2.0, 4.0))
    ds = load_dataset(tmp_path, hidden=["BRA", "TRImed"])
    scores = {}
    for method in ("nmm", "synx"):
        cfg = RunConfig(method=method, split="load", nmm=nmm.NmmConfig(iterations=400),
                        synx=synx.SynxConfig())
        scores[method] = reconstruct(ds, cfg)["summary"]
    assert scores["nmm"]["torque"]["r2"] > 0.85
    assert scores["nmm"]["torque"]["r2"] > scores["synx"]["torque"]["r2"]
    assert scores["nmm"]["hidden"]["BRA"]["cc"] > 0.7
    assert scores["nmm"]["hidden"]["BRA"]["rmse"] < 0.12
