"""The engine cache, build side: the key a bundle's engine gets on this GPU, where it lives, how it is stored.

What an engine key is, the sidecar ``<engine>.json`` that vouches for an engine, and the checks that
refuse a stale, foreign or tampered engine live in :mod:`myoedge.edge.model.engine_cache`, because the
edge runtime must run the same checks before it loads an engine and ``edge`` may not import ``deploy``
(design §2). They are re-exported here so ``myoedge.deploy.cache`` remains the one place the builder (and
its callers) import from.

Layout: one engine per folder, ``<folder>/model.engine`` (the name the edge runtime looks for), and the
folder defaults to the bundle's own. A re-export replaces the bundle folder as a whole, taking the old
engine with it, so an engine in the bundle folder cannot outlive its model. Writes are ordered so that a
crash never leaves a valid-looking pair: the old sidecar goes first, the engine is renamed into place,
and the sidecar that vouches for it is written last.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from pathlib import Path

import myoedge
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.engine_cache import (
    ENGINE_FILE,
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    CacheCheck,
    EngineKey,
    GpuTarget,
    StaleEngine,
    check_cached,
    read_sidecar,
    require_usable,
    sha256_file,
    sidecar_path,
)
from myoedge.ground.fileio import atomic_write_bytes, atomic_write_text

__all__ = [
    "ENGINE_FILE", "SIDECAR_FORMAT", "SIDECAR_VERSION", "CacheCheck", "EngineKey", "GpuTarget", "StaleEngine",
    "check_cached", "engine_key", "engine_path", "read_sidecar", "require_usable", "sha256_file",
    "sidecar_path", "store_engine",
]


def engine_key(bundle: Bundle, *, precision: str, target: GpuTarget) -> EngineKey:
    """The key of ``bundle``'s engine at ``precision`` on ``target``; the model hash comes from meta.json
    (``load_bundle`` has checked it against the ONNX file)."""
    return EngineKey(compute_capability=target.compute_capability, tensorrt_version=target.tensorrt_version,
                     onnx_sha256=bundle.meta.onnx.sha256, precision=precision)


def engine_path(bundle: Bundle, out_dir: str | os.PathLike | None = None) -> Path:
    """Where the engine of ``bundle`` lives: ``<out_dir or the bundle folder>/model.engine``."""
    return Path(out_dir if out_dir is not None else bundle.path) / ENGINE_FILE


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
        "engine_sha256": sha256_file(engine), "engine_bytes": engine.stat().st_size,
        "built_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "myoedge_version": myoedge.__version__, "build": dict(details or {}),
    }
    atomic_write_text(sidecar_path(engine), json.dumps(record, indent=2, allow_nan=False) + "\n")
    return engine
