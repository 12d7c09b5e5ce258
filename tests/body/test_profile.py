import json

import numpy as np
import pytest

from myoedge.body import SubjectProfile, generic_model
from myoedge.ground.errors import FormatError, InputError


def make_profile(joint="wrist"):
    model = generic_model(joint)
    return SubjectProfile(subject="s01", model=model, mvc_volts=tuple(0.2e-3 * (i + 1)
                                                                     for i in range(len(model.muscles))))


def test_round_trip(tmp_path):
    p = make_profile()
    path = p.save(tmp_path / "profile.json")
    q = SubjectProfile.load(path)
    assert q == p
    np.testing.assert_array_equal(q.mvc, p.mvc)
    assert q.moment_arm("FCR", 0.0) == pytest.approx(0.015)
    assert q.moment_arm("ECRB", np.zeros(3)).shape == (3,)


def test_save_keeps_previous_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "profile.json"
    make_profile().save(path)
    changed = make_profile().replace(mvc_volts=(1e-3,) * 5)
    changed.save(path)
    assert SubjectProfile.load(path).mvc_volts == (1e-3,) * 5
    assert SubjectProfile.load(tmp_path / "profile.json.prev") == make_profile()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["profile.json", "profile.json.prev"]


def test_unknown_version_is_refused(tmp_path):
    d = make_profile().to_dict()
    d["version"] = 99
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(FormatError, match="version 99 is not supported"):
        SubjectProfile.load(tmp_path / "p.json")


@pytest.mark.parametrize("field", ["subject", "segment", "muscles", "mvc_volts", "joint"])
def test_missing_field_is_named(tmp_path, field):
    d = make_profile().to_dict()
    del d[field]
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(FormatError, match=f"missing field '{field}'"):
        SubjectProfile.load(tmp_path / "p.json")


def test_missing_segment_parameter_and_muscle_mvc_are_named(tmp_path):
    d = make_profile().to_dict()
    del d["segment"]["inertia"]
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(FormatError, match="inertia"):
        SubjectProfile.load(tmp_path / "p.json")
    d = make_profile().to_dict()
    del d["mvc_volts"]["ECU"]
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(FormatError, match="ECU"):
        SubjectProfile.load(tmp_path / "p.json")


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "p.json").write_text('{\n "format": "myoedge-profile",\n oops\n}')
    with pytest.raises(FormatError, match="line 3"):
        SubjectProfile.load(tmp_path / "p.json")


def test_not_a_profile_and_missing_file(tmp_path):
    (tmp_path / "p.json").write_text("[1, 2]")
    with pytest.raises(FormatError, match="expected a JSON object"):
        SubjectProfile.load(tmp_path / "p.json")
    with pytest.raises(InputError, match="no such profile"):
        SubjectProfile.load(tmp_path / "absent.json")


def test_moment_arm_sign_flip_is_refused(tmp_path):
    d = make_profile().to_dict()
    d["muscles"][0]["moment_arm"] = [-0.01]  # FCR is a flexor
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(FormatError, match="FCR.*changes sign"):
        SubjectProfile.load(tmp_path / "p.json")


def test_bad_mvc_is_refused():
    with pytest.raises(InputError, match="MVC must be finite"):
        make_profile().replace(mvc_volts=(1e-3, 0.0, 1e-3, float("nan"), 1e-3))
    with pytest.raises(InputError, match="3 MVC values for 5 muscles"):
        make_profile().replace(mvc_volts=(1e-3,) * 3)
