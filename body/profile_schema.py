"""The subject profile's JSON schema: the frozen dataclasses of :mod:`myoedge.body.model` read field by field.

Every field is checked against its type before any dataclass is built, so a wrong file never reaches the
arithmetic: each error is an ``InputError`` naming the field's path (``segment.mass``,
``muscles[2].moment_arm[1]``, ``mvc_volts.RF``), what was expected and what was found. Unknown fields
inside ``segment`` and the muscles are refused (a typo must not silently become a default); unknown
top-level fields are the caller's to keep (:class:`myoedge.body.profile.SubjectProfile` writes them back).
The types come from the dataclasses' own annotations, so the schema cannot drift from the model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping

from myoedge.ground.errors import InputError


def describe(value) -> str:
    """A short, safe rendering of a JSON value for an error message."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        return f"an object of {len(value)} fields"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"the string {shown}" if isinstance(value, str) else shown


def field_path(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` (JSON-escaped) for a key that is not a plain name."""
    return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"{path}[{json.dumps(key)}]"


def number(value, path: str) -> float:
    """A finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{path}: expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise InputError(f"{path}: expected a finite number, got {value!r}")
    return float(value)


def text(value, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: expected a non-empty string, got {describe(value)}")
    return value


def obj(value, path: str) -> Mapping:
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected an object, got {describe(value)}")
    return value


def _field_value(hint, value, path: str):
    if hint is float:
        return number(value, path)
    if hint is str:
        return text(value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"{path}: expected true or false, got {describe(value)}")
        return value
    if typing.get_origin(hint) is tuple:  # tuple[float, ...]
        if not isinstance(value, list) or not value:
            raise InputError(f"{path}: expected a non-empty list of numbers, got {describe(value)}")
        return tuple(number(v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return record(hint, value, path)
    raise TypeError(f"no schema rule for {hint!r} at {path}")  # a programming error, not an input error


def record(cls, value, path: str):
    """``cls(**value)`` after checking every field of ``value`` against ``cls``'s annotations; the
    dataclass's own checks (``__post_init__``) then run, their messages prefixed with ``path``."""
    given = obj(value, path)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"{field_path(path, unknown[0])}: unknown field (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name not in given:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{path}: missing field {name!r}")
            continue
        values[name] = _field_value(hints[name], given[name], f"{path}.{name}")
    try:
        return cls(**values)
    except InputError as e:
        message = str(e)
        raise InputError(message if message.startswith(f"{path}.") else f"{path}: {message}") from None


def items(value, path: str, *, parse) -> tuple:
    """A non-empty JSON list, each element parsed by ``parse(element, f"{path}[i]")``."""
    if not isinstance(value, list) or not value:
        raise InputError(f"{path}: expected a non-empty list, got {describe(value)}")
    return tuple(parse(v, f"{path}[{i}]") for i, v in enumerate(value))


def per_name(value, path: str, *, names: tuple[str, ...]) -> tuple[float, ...]:
    """An object with one finite number per name, in ``names``' order; a missing or an extra name is an
    error naming it (an extra entry must never be dropped without a word)."""
    given = obj(value, path)
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"{path} lacks muscles {missing} (expected one entry per muscle {list(names)})")
    extra = [k for k in given if k not in names]
    if extra:
        raise InputError(f"{field_path(path, extra[0])}: no muscle named {json.dumps(extra[0])} in muscles "
                         f"{list(names)}")
    return tuple(number(given[n], f"{path}.{n}") for n in names)
