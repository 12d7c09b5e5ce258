"""The profile schema (issue 15, cases 4, 6 and 7): every error names the field's path, unknown fields are
kept or refused and never dropped, implausible MVC values are refused with the unit mistake named, and no
JSON file, however mangled, gives anything but an InputError (the file never changes)."""

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoedge.body import SubjectProfile
from myoedge.body.catalog import generic_model
from myoedge.body.profile import MVC_RANGE_VOLTS, mvc_problem
from myoedge.ground.errors import FormatError, InputError


def profile_dict() -> dict:
    model = generic_model("wrist")
    mvc = tuple(0.2e-3 * (i + 1) for i in range(len(model.muscles)))
    return SubjectProfile(subject="s01", model=model, mvc_volts=mvc).to_dict()


def load(tmp_path, d, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(d))
    return SubjectProfile.load(path)


def mutate(d, keys, value):
    d = copy.deepcopy(d)
    target = d
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value
    return d


@pytest.mark.parametrize("keys, value, path, expected", [
    (("muscles", 2, "moment_arm"), "x", "muscles[2].moment_arm", "list of numbers"),
    (("muscles", 2, "moment_arm"), None, "muscles[2].moment_arm", "got null"),
    (("muscles", 1, "moment_arm"), [0.01, "a"], "muscles[1].moment_arm[1]", "expected a number"),
    (("segment", "mass"), "heavy", "segment.mass", "expected a number, got the string 'heavy'"),
    (("segment",), [1, 2], "segment", "expected an object, got a list"),
    (("muscles", 0), 5, "muscles[0]", "expected an object, got 5"),
    (("muscles",), {}, "muscles", "non-empty list"),
    (("muscles", 3, "deep"), "no", "muscles[3].deep", "true or false"),
    (("muscles", 4, "max_force"), True, "muscles[4].max_force", "got true"),
    (("mvc_volts", "FCU"), "1e-3", "mvc_volts.FCU", "expected a number"),
    (("mvc_volts",), [1e-3], "mvc_volts", "expected an object"),
    (("subject",), 7, "subject", "non-empty string"),
    (("provenance",), "x", "provenance", "expected an object"),
    (("segment", "colour"), "red", "segment.colour", "unknown field"),
    (("muscles", 0, "colour"), "red", "muscles[0].colour", "unknown field"),
    (("mvc_volts", "XYZ"), 1e-3, "mvc_volts.XYZ", 'no muscle named "XYZ"'),
    (("segment", "mass"), -1.0, "segment.mass", "> 0"),
    (("muscles", 1, "pennation"), 2.0, "muscles[1]", "pennation"),
])
def test_every_error_names_the_field_path_and_what_was_expected(tmp_path, keys, value, path, expected):
    d = mutate(profile_dict(), keys, value)
    with pytest.raises(FormatError) as info:
        load(tmp_path, d)
    message = str(info.value)
    assert f"{path}:" in message or f"{path} " in message, message
    assert expected in message and str(tmp_path / "p.json") in message
    assert "NoneType" not in message and "object is not" not in message and "\n" not in message


def test_unknown_top_level_fields_are_kept_on_rewrite(tmp_path):
    d = profile_dict()
    d["clinic"] = {"site": "B", "notes": ["left leg"]}
    profile = load(tmp_path, d)
    assert profile.extra == {"clinic": {"site": "B", "notes": ["left leg"]}}
    profile.replace(mvc_volts=(1e-3,) * 5).save(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["clinic"] == d["clinic"]
    with pytest.raises(InputError, match="are profile fields"):
        profile.replace(extra={"subject": "x"})


@pytest.mark.parametrize("volts, mistake", [(0.5, "millivolts written as volts"),
                                            (400.0, "microvolts written as volts"),
                                            (3e-7, "divided by 1000 once too often"),
                                            (1e300, None), (1e-20, None)])
def test_implausible_mvc_is_refused_naming_the_unit_mistake(tmp_path, volts, mistake):
    d = mutate(profile_dict(), ("mvc_volts", "ECRL"), volts)
    with pytest.raises(FormatError, match="mvc_volts.ECRL: .*outside the physiological range") as info:
        load(tmp_path, d)
    if mistake:
        assert mistake in str(info.value)
    with pytest.raises(InputError, match="mvc_volts.FCR"):
        SubjectProfile(subject="s", model=generic_model("wrist"), mvc_volts=(volts,) * 5)


def test_mvc_range_bounds():
    lo, hi = MVC_RANGE_VOLTS
    assert mvc_problem(lo) is None and mvc_problem(hi) is None and mvc_problem(1e-3) is None
    assert mvc_problem(lo * 0.99) and mvc_problem(hi * 1.01)


def test_run_and_calibrate_refuse_a_mistyped_profile_with_exit_2(tmp_path, capsys):
    from loop_parts import setup_parts

    from myoedge.cli import main

    bundle, _, _ = setup_parts(tmp_path)
    (tmp_path / "data").mkdir()
    cases = [(("muscles", 2, "moment_arm"), "x", "muscles[2].moment_arm"),
             (("segment", "mass"), "heavy", "segment.mass"),
             (("mvc_volts", "FCR"), 0.3, "millivolts written as volts")]
    for keys, value, words in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(mutate(profile_dict(), keys, value)))
        before = path.read_bytes()
        for argv in (["run", "--port", "loop://", "--bundle", str(bundle.path), "--profile", str(path)],
                     ["calibrate", "moment-arms", "--data", str(tmp_path / "data"), "--profile", str(path),
                      "--out", str(path)]):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err
        assert path.read_bytes() == before


# ------------------------------------------------------------------------------------------------ fuzz

json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=5)
                           | st.floats(allow_nan=True, allow_infinity=True),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                                       inner, max_size=3),
                           max_leaves=6)


def paths_of(d, prefix=()):
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from paths_of(v, (*prefix, i))


BASE = profile_dict()
ALL_PATHS = [p for p in paths_of(BASE) if p]


@st.composite
def mangled(draw):
    d = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        keys = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = d
            for k in keys[:-1]:
                parent = parent[k]
            action = draw(st.sampled_from(["swap", "remove", "extra"]))
            if action == "swap":
                parent[keys[-1]] = draw(json_values)
            elif action == "remove":
                del parent[keys[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
            elif isinstance(parent, list):
                parent.append(draw(json_values))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or retyped this path
    return d


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=mangled())
def test_fuzzed_profiles_give_an_input_error_or_a_valid_profile_and_never_change_the_file(tmp_path, d):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(d))  # NaN and Infinity as Python's json writes them
    before = path.read_bytes()
    try:
        profile = SubjectProfile.load(path)
    except InputError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:
        assert all(math.isfinite(v) and MVC_RANGE_VOLTS[0] <= v <= MVC_RANGE_VOLTS[1] for v in profile.mvc)
        text = json.dumps(profile.to_dict())
        assert json.dumps(SubjectProfile.from_dict(json.loads(text)).to_dict()) == text  # nothing dropped
        assert set(d) <= set(json.loads(text))
    assert path.read_bytes() == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200) | st.just(b"[" * 100000) | st.just(b'{"a":' * 50000))
def test_any_bytes_as_a_profile_give_an_input_error(tmp_path, data):
    path = tmp_path / "bytes.json"
    path.write_bytes(data)
    with pytest.raises(InputError):
        SubjectProfile.load(path)
    assert path.read_bytes() == data
