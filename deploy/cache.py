"""The engine cache: which engine may be loaded for a bundle, a precision and this GPU (pure logic).

A TensorRT engine is a compiled plan for one GPU architecture and one exact TensorRT version, made from
one ONNX graph at one precision. Loading any other engine fails at best and at worst runs the wrong
weights, so every engine is stored with a *sidecar* ``<engine>.json`` holding its :class:`EngineKey`
(compute capability, TensorRT version, the bundle's ONNX sha256, precision) and the engine file's own
sha256. An engine is used only when the sidecar's key equals the key wanted here and the file's hash
matches; anything else (no sidecar, another GPU or TensorRT, a re-exported model, a truncated or swapped
file) is rebuilt, never loaded.

Layout: one engine per folder, ``<folder>/model.engine`` (the name the edge runtime looks for), and the
folder defaults to the bundle's own. A re-export replaces the bundle folder as a whole, taking the old
engine with it, so an engine in the bundle folder cannot outlive its model. Writes are ordered so that a
crash never leaves a valid-looking pair: the old sidecar goes first, the engine is renamed into place,
and the sidecar that vouches for it is written last.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

import myoedge
from myoedge.deploy.precision import check_precision
from myoedge.edge.backends import ENGINE_FILE
from myoedge.edge.bundle import Bundle
from myoedge.errors import FormatError, InputError
from myoedge.fileio import atomic_write_bytes, atomic_write_text

__all__ = [
    "ENGINE_FILE", "SIDECAR_FORMAT", "CacheCheck", "EngineKey", "GpuTarget", "StaleEngine", "check_cached",
    "engine_key", "engine_path", "read_sidecar", "require_usable", "sidecar_path", "store_engine",
]

SIDECAR_FORMAT = "myoedge-engine"
SIDECAR_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CC = re.compile(r"[1-9][0-9]*\.[0-9]+")


class StaleEngine(InputError):
    """An engine without a valid sidecar, or keyed for another GPU, TensorRT, model or precision."""


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


def engine_key(bundle: Bundle, *, precision: str, target: GpuTarget) -> EngineKey:
    """The key of ``bundle``'s engine at ``precision`` on ``target``; the model hash comes from meta.json
    (``load_bundle`` has checked it against the ONNX file)."""
    return EngineKey(compute_capability=target.compute_capability, tensorrt_version=target.tensorrt_version,
                     onnx_sha256=bundle.meta["onnx"]["sha256"], precision=precision)


def engine_path(bundle: Bundle, out_dir: str | os.PathLike | None = None) -> Path:
    """Where the engine of ``bundle`` lives: ``<out_dir or the bundle folder>/model.engine``."""
    return Path(out_dir if out_dir is not None else bundle.path) / ENGINE_FILE


def sidecar_path(engine: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Whether the engine at ``path`` may be loaded for the wanted key, and if not, why."""

    path: Path
    usable: bool
    reason: str


def check_cached(engine: str | os.PathLike, key: EngineKey) -> CacheCheck:
    """Decide whether ``engine`` matches ``key``; never raises for a missing, foreign or broken engine."""
    engine = Path(engine)
    if not engine.is_file():
        return CacheCheck(engine, False, f"no engine at {engine}")
    try:
        sidecar = read_sidecar(engine)
    except FileNotFoundError:
        return CacheCheck(engine, False, f"{engine} has no sidecar {sidecar_path(engine).name}: its "
                                         f"origin is unknown")
    except (FormatError, OSError, UnicodeDecodeError) as exc:
        return CacheCheck(engine, False, f"unusable sidecar: {exc}")
    differences = sidecar["key"].differences(key)
    if differences:
        return CacheCheck(engine, False, f"{engine} was built for another configuration: "
                                         + "; ".join(differences))
    digest = _sha256_file(engine)
    if digest != sidecar["engine_sha256"]:
        return CacheCheck(engine, False, f"{engine} changed after it was built (sha256 {digest[:12]}… but "
                                         f"the sidecar records {sidecar['engine_sha256'][:12]}…)")
    return CacheCheck(engine, True, f"{engine} matches ({key.precision}, sm {key.compute_capability}, "
                                    f"TensorRT {key.tensorrt_version})")


def require_usable(engine: str | os.PathLike, key: EngineKey) -> Path:
    """``engine`` when :func:`check_cached` accepts it; otherwise raise StaleEngine with the reason."""
    check = check_cached(engine, key)
    if not check.usable:
        raise StaleEngine(f"{check.reason}; rebuild it with `myoedge build-engine`")
    return check.path


def store_engine(engine: str | os.PathLike, blob: bytes | str | os.PathLike, *, key: EngineKey,
                 details: dict | None = None) -> Path:
    """Put an engine (its bytes, or a finished file in the same folder to rename) at ``engine`` and vouch
    for it with a sidecar; ``details`` (build time, deviations, plan...) are recorded beside the key."""
    engine = Path(engine)
    engine.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        sidecar_path(engine).unlink()  # from here until the new sidecar exists, nothing vouches for the file
    if isinstance(blob, (bytes, bytearray, memoryview)):
        atomic_write_bytes(engine, bytes(blob))
    else:
        os.replace(blob, engine)
    record = {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "key": key.to_dict(),
        "engine_sha256": _sha256_file(engine), "engine_bytes": engine.stat().st_size,
        "built_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "myoedge_version": myoedge.__version__, "build": dict(details or {}),
    }
    atomic_write_text(sidecar_path(engine), json.dumps(record, indent=2, allow_nan=False) + "\n")
    return engine
