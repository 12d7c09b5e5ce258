"""Which TensorRT engine may be loaded: the engine key, its sidecar, and the checks (pure logic).

A TensorRT engine is a compiled plan for one GPU architecture and one exact TensorRT version, made from
one ONNX graph at one precision. Loading any other engine fails at best and at worst runs the wrong
weights, so every engine is stored with a *sidecar* ``<engine>.json`` holding its :class:`EngineKey`
(compute capability, TensorRT version, the bundle's ONNX sha256, precision) and the engine file's own
sha256. An engine is used only when the sidecar's key equals the key wanted here and the file's hash
matches; anything else (no sidecar, another GPU or TensorRT, a re-exported model, a truncated or swapped
file) is refused, never loaded.

Both sides need this: ``myoedge.deploy`` decides whether to reuse or rebuild an engine, and the edge
runtime's :class:`~myoedge.edge.model.tensorrt.TensorRTPredictor` refuses a stale engine before it
deserialises it. The edge layer may not import ``deploy`` (design §2), so the one definition lives here
and ``myoedge.deploy.cache`` re-exports it beside the build-side parts (key from a bundle, storing).
Nothing here imports TensorRT: the runtime passes in its version and the device's compute capability.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import sha256_file

__all__ = [
    "ENGINE_FILE", "PRECISIONS", "SIDECAR_FORMAT", "SIDECAR_VERSION", "CacheCheck", "EngineKey", "GpuTarget",
    "StaleEngine", "check_cached", "check_for_runtime", "check_precision", "read_sidecar", "require_usable",
    "sha256_file", "sidecar_path",
]

ENGINE_FILE = "model.engine"  # where an engine built for this machine is looked for, inside the bundle
SIDECAR_FORMAT = "myoedge-engine"
SIDECAR_VERSION = 1
#: Engine precisions. Here (not in ``deploy.precision``, which re-exports them) because a sidecar's key
#: is validated on the edge too; how each precision is built stays in ``deploy``.
PRECISIONS = ("fp32", "fp16")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CC = re.compile(r"[1-9][0-9]*\.[0-9]+")
_REBUILD = "rebuild it with `myoedge build-engine`"


class StaleEngine(InputError):
    """An engine without a valid sidecar, or keyed for another GPU, TensorRT, model or precision."""


def check_precision(precision: object) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`; otherwise raise InputError."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return str(precision)


@dataclass(frozen=True, kw_only=True)
class GpuTarget:
    """The machine an engine is built for: what the cache key needs from it, plus its name for the record."""

    compute_capability: str  # "8.7" on Jetson Orin
    tensorrt_version: str  # trt.__version__, e.g. "10.3.0.30": engines are tied to the exact version
    device_name: str = ""


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    """Everything that must be equal for an engine to be reused."""

    compute_capability: str
    tensorrt_version: str
    onnx_sha256: str
    precision: str

    def __post_init__(self) -> None:
        if not isinstance(self.compute_capability, str) or not _CC.fullmatch(self.compute_capability):
            raise InputError(f"compute_capability must look like '8.7', got {self.compute_capability!r}")
        if not isinstance(self.tensorrt_version, str) or not self.tensorrt_version.strip():
            raise InputError(f"tensorrt_version must be a non-empty string, got {self.tensorrt_version!r}")
        if not isinstance(self.onnx_sha256, str) or not _SHA256.fullmatch(self.onnx_sha256):
            raise InputError(f"onnx_sha256 must be a sha256 hex digest, got {self.onnx_sha256!r}")
        check_precision(self.precision)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: object) -> EngineKey:
        names = [f.name for f in fields(cls)]
        if not isinstance(d, dict) or sorted(d) != sorted(names):
            found = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InputError(f"an engine key needs exactly the fields {names}, got {found}")
        return cls(**d)

    def differences(self, wanted: EngineKey) -> list[str]:
        """``field: this vs wanted`` for every field that differs (empty when the keys are equal)."""
        return [f"{f.name} {getattr(self, f.name)!r} (wanted {getattr(wanted, f.name)!r})"
                for f in fields(self) if getattr(self, f.name) != getattr(wanted, f.name)]


def sidecar_path(engine: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: str | os.PathLike) -> dict:
    """The validated sidecar of ``engine``; FormatError names what is wrong, FileNotFoundError if absent."""
    path = sidecar_path(engine)
    text = path.read_text(encoding="utf-8")  # FileNotFoundError passes through: "never built here"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise FormatError(path, f"field 'format': expected '{SIDECAR_FORMAT}'")
    if data.get("version") != SIDECAR_VERSION:
        raise FormatError(path, f"field 'version': expected {SIDECAR_VERSION}, got {data.get('version')!r}")
    try:
        data["key"] = EngineKey.from_dict(data.get("key"))
    except InputError as exc:
        raise FormatError(path, f"field 'key': {exc}") from None
    if not isinstance(data.get("engine_sha256"), str) or not _SHA256.fullmatch(data["engine_sha256"]):
        raise FormatError(path, f"field 'engine_sha256': expected a sha256 hex digest, "
                                f"got {data.get('engine_sha256')!r}")
    return data


@dataclass(frozen=True)
class CacheCheck:
    """Whether the engine at ``path`` may be loaded for the wanted key, and if not, why.

    ``key`` is the key the sidecar records (None when there is no readable sidecar).
    """

    path: Path
    usable: bool
    reason: str
    key: EngineKey | None = None


def _check(engine: Path, wanted: Callable[[EngineKey], EngineKey]) -> CacheCheck:
    """The one comparison behind both entry points; ``wanted`` maps the recorded key to the wanted one
    (the runtime takes the precision from the sidecar, the builder asks for a precision)."""
    if not engine.is_file():
        return CacheCheck(engine, False, f"no engine at {engine}")
    try:
        sidecar = read_sidecar(engine)
    except FileNotFoundError:
        return CacheCheck(engine, False, f"{engine} has no sidecar {sidecar_path(engine).name}: its "
                                         f"origin is unknown")
    except (FormatError, OSError, UnicodeDecodeError) as exc:
        return CacheCheck(engine, False, f"unusable sidecar: {exc}")
    recorded = sidecar["key"]
    key = wanted(recorded)
    differences = recorded.differences(key)
    if differences:
        return CacheCheck(engine, False, f"{engine} was built for another configuration: "
                                         + "; ".join(differences), recorded)
    digest = sha256_file(engine)
    if digest != sidecar["engine_sha256"]:
        return CacheCheck(engine, False, f"{engine} changed after it was built (sha256 {digest[:12]}… but "
                                         f"the sidecar records {sidecar['engine_sha256'][:12]}…)", recorded)
    return CacheCheck(engine, True, f"{engine} matches ({key.precision}, sm {key.compute_capability}, "
                                    f"TensorRT {key.tensorrt_version})", recorded)


def check_cached(engine: str | os.PathLike, key: EngineKey) -> CacheCheck:
    """Decide whether ``engine`` matches ``key``; never raises for a missing, foreign or broken engine."""
    return _check(Path(engine), lambda recorded: key)


def require_usable(engine: str | os.PathLike, key: EngineKey) -> Path:
    """``engine`` when :func:`check_cached` accepts it; otherwise raise StaleEngine with the reason."""
    check = check_cached(engine, key)
    if not check.usable:
        raise StaleEngine(f"{check.reason}; {_REBUILD}")
    return check.path


def check_for_runtime(engine: str | os.PathLike, *, onnx_sha256: str, tensorrt_version: str,
                      compute_capability: str) -> EngineKey:
    """The key of ``engine`` if it may run here, for the bundle whose ONNX hash is ``onnx_sha256``, on
    the installed TensorRT (``trt.__version__``) and a GPU of ``compute_capability`` ("8.7").

    The runtime does not choose a precision: it runs whichever the sidecar records (returned in the key).
    Everything else must match, and the file's hash too; otherwise StaleEngine says why.
    """
    check = _check(Path(engine), lambda recorded: EngineKey(
        compute_capability=str(compute_capability), tensorrt_version=str(tensorrt_version),
        onnx_sha256=onnx_sha256, precision=recorded.precision))
    if not check.usable:
        raise StaleEngine(f"{check.reason}; {_REBUILD}")
    return check.key
