"""Model bundles: the only form in which a trained model leaves training (format in docs/bundle.md).

A bundle is a folder holding ``model.onnx``, ``meta.json`` and ``test_vectors.npz``. Every consumer
(the edge runtime, the engine builder, calibration) reads it through :func:`load_bundle`, which checks
the whole contract — schema, ONNX file hash, shapes against muscles and window, test vectors — so a
mismatch is refused with a message naming the file and field instead of producing wrong forces.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import myoedge
from myoedge.edge.dsp.adc import Adc
from myoedge.edge.model.bundle_meta import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    INPUT_NAME,
    OUTPUT_UNITS,
    BundleMeta,
    StateMeta,
)
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_directory

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_VERSION", "INPUT_NAME", "OUTPUT_UNITS", "Bundle", "BundleMeta",
    "check_compatible", "load_bundle", "write_bundle",
]

META_FILE = "meta.json"


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded, validated bundle. ``test_outputs`` maps output name -> reference (K, *shape[1:])."""

    path: Path
    meta: BundleMeta
    onnx_path: Path
    window: int
    n_channels: int
    muscles: tuple[str, ...]
    input_rate_hz: float
    test_inputs: np.ndarray
    test_outputs: dict[str, np.ndarray]

    @property
    def tolerance(self) -> float:
        """Max abs deviation allowed between a predictor and the reference outputs."""
        return self.meta.test_vectors.tolerance

    @property
    def envelope_hash(self) -> str:
        return self.meta.envelope.hash

    @property
    def emg_rate_hz(self) -> float:
        return self.meta.emg_rate_hz

    @property
    def adc(self) -> Adc | None:
        """The ADC the training data was quantised with (None in bundles older than version 3)."""
        return self.meta.adc

    @property
    def state(self) -> StateMeta | None:
        """The ``state`` block of a stateful model (size, initial, warmup_steps), or None."""
        return self.meta.state

    @property
    def stateful(self) -> bool:
        return self.meta.state is not None

    @property
    def warmup_steps(self) -> int:
        """Model-rate steps after a state reset before estimates are trusted (0 for window models)."""
        return self.meta.state.warmup_steps if self.stateful else 0


def _check_vectors(inputs, outputs: dict, meta: BundleMeta,
                   where: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Test vectors must match the declared shapes; returns read-only copies (inputs float32)."""
    window, m = meta.input.window, len(meta.muscles)
    inputs = np.asarray(inputs)
    if inputs.dtype != np.float32 or inputs.ndim != 3 or inputs.shape[1:] != (window, m) or len(inputs) < 1:
        raise FormatError(where, f"'envelopes' must be float32 (K>=1, {window}, {m}), "
                                 f"got {inputs.dtype} {inputs.shape}")
    k = inputs.shape[0]
    result = {}
    declared = [(o.name, o.shape) for o in meta.outputs]
    if meta.state is not None:  # the state after each step of the sequence
        declared.append((meta.state.output, (1, meta.state.size)))
    for name, declared_shape in declared:
        shape = (k, *declared_shape[1:])
        if name not in outputs:
            raise FormatError(where, f"missing reference output '{name}'")
        arr = np.asarray(outputs[name])
        if arr.dtype.kind != "f" or arr.shape != shape:
            raise FormatError(where, f"'{name}' must be floating {shape}, got {arr.dtype} {arr.shape}")
        result[name] = arr.copy()
    extra = sorted(set(outputs) - set(result))
    if extra:
        raise FormatError(where, f"unexpected reference output(s) {extra}")
    for name, arr in [("envelopes", inputs), *result.items()]:
        if not np.all(np.isfinite(arr)):
            raise FormatError(where, f"'{name}' holds non-finite values")
    inputs = inputs.copy()
    for arr in (inputs, *result.values()):
        arr.setflags(write=False)
    return inputs, result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate the bundle at ``path``; FormatError/InputError name the file and field."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a bundle folder (expected a folder holding {META_FILE}, model.onnx "
                         f"and test_vectors.npz)")
    meta_path = path / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(meta_path, "missing; every bundle folder holds one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(meta_path, f"unreadable: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(meta_path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    meta = BundleMeta.from_dict(doc, meta_path)

    onnx_path = path / meta.onnx.file
    try:
        digest = _sha256(onnx_path.read_bytes())
    except FileNotFoundError:
        raise FormatError(onnx_path, "missing (named by meta.json field 'onnx.file')") from None
    if digest != meta.onnx.sha256:
        raise FormatError(onnx_path, f"sha256 {digest[:12]}… differs from meta.json field 'onnx.sha256' "
                                     f"{meta.onnx.sha256[:12]}… (the file changed after export)")

    tv_path = path / meta.test_vectors.file
    try:
        npz = np.load(tv_path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise FormatError(tv_path, "missing (named by meta.json field 'test_vectors.file')") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(tv_path, f"not a readable .npz archive: {exc}") from None
    if "envelopes" not in arrays:
        raise FormatError(tv_path, f"missing array 'envelopes'; found {sorted(arrays)}")
    inputs, outputs = _check_vectors(arrays.pop("envelopes"), arrays, meta, tv_path)
    return Bundle(path=path, meta=meta, onnx_path=onnx_path, window=meta.input.window,
                  n_channels=meta.input.shape[2], muscles=meta.muscles,
                  input_rate_hz=meta.input.rate_hz, test_inputs=inputs, test_outputs=outputs)


def write_bundle(path: str | os.PathLike, *, onnx_bytes: bytes, meta: BundleMeta | dict,
                 test_inputs: np.ndarray, test_outputs: dict[str, np.ndarray], overwrite: bool = False,
                 check: Callable[[Bundle], None] | None = None) -> Path:
    """Write a bundle folder atomically: all of it appears at ``path`` or nothing does.

    ``meta`` is a :class:`BundleMeta` (e.g. from :meth:`BundleMeta.build`) or its JSON form. Fills in
    ``format``, ``version``, ``created_utc``, ``myoedge_version``, ``onnx.sha256`` and the default file
    names, then validates exactly as :func:`load_bundle` does before anything is written. ``check``,
    if given, is called with the written bundle before it becomes visible; if it raises, nothing is.
    """
    path = Path(path)
    if not isinstance(onnx_bytes, (bytes, bytearray)) or not onnx_bytes:
        raise InputError(f"onnx_bytes must be the serialised ONNX model (non-empty bytes), "
                         f"got {type(onnx_bytes).__name__}")
    if isinstance(meta, BundleMeta):
        meta = meta.to_dict()
    if not isinstance(meta, dict):
        raise InputError(f"meta must be a BundleMeta or a dict, got {type(meta).__name__}")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass overwrite=True to replace it")
    meta = json.loads(json.dumps(meta))  # a deep copy, tuples as lists (as read back)
    meta.setdefault("format", BUNDLE_FORMAT)
    meta.setdefault("version", BUNDLE_VERSION)
    meta["created_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["myoedge_version"] = myoedge.__version__
    onnx_meta = meta.setdefault("onnx", {})
    if isinstance(onnx_meta, dict):
        onnx_meta.setdefault("file", "model.onnx")
        onnx_meta["sha256"] = _sha256(bytes(onnx_bytes))
    tv_meta = meta.setdefault("test_vectors", {})
    if isinstance(tv_meta, dict):
        tv_meta.setdefault("file", "test_vectors.npz")
    typed = BundleMeta.from_dict(meta, path / META_FILE)
    if not isinstance(test_outputs, dict):
        raise InputError(f"test_outputs must be a dict name -> array, got {type(test_outputs).__name__}")
    inputs, outputs = _check_vectors(test_inputs, test_outputs, typed, path / typed.test_vectors.file)
    files = (typed.onnx.file, typed.test_vectors.file)
    if META_FILE in files or files[0] == files[1]:
        raise InputError(f"onnx.file and test_vectors.file must differ from each other and from {META_FILE}")

    buf = io.BytesIO()
    np.savez(buf, envelopes=inputs, **outputs)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        (tmp / files[0]).write_bytes(bytes(onnx_bytes))
        (tmp / files[1]).write_bytes(buf.getvalue())
        (tmp / META_FILE).write_text(json.dumps(typed.to_dict(), indent=2, allow_nan=False) + "\n",
                                     encoding="utf-8")
        written = load_bundle(tmp)  # read back what we wrote before it becomes visible
        if check is not None:
            check(written)
    return path


def check_compatible(bundle: Bundle, *, muscles=None, envelope_hash: str | None = None,
                     emg_rate_hz: float | None = None) -> None:
    """Refuse to run ``bundle`` against a subject profile / amplifier that does not match it.

    ``muscles`` is the profile's channel order, ``envelope_hash`` the hash of the envelope the runtime
    will compute, ``emg_rate_hz`` the amplifier's sample rate. Each check is skipped when None.
    """
    where = f"bundle {bundle.path}"
    if muscles is not None:
        muscles = tuple(muscles)
        if muscles != bundle.muscles:
            same_set = sorted(muscles) == sorted(bundle.muscles)
            hint = " (same muscles, different channel order)" if same_set else ""
            raise InputError(f"{where} was trained on muscles {list(bundle.muscles)} but the subject profile "
                             f"lists {list(muscles)}{hint}")
    if envelope_hash is not None and envelope_hash != bundle.envelope_hash:
        raise InputError(f"{where} expects envelope hash {bundle.envelope_hash[:12]}… but the runtime's "
                         f"envelope has {str(envelope_hash)[:12]}… (different filter config or coefficients)")
    if emg_rate_hz is not None and float(emg_rate_hz) != bundle.emg_rate_hz:
        raise InputError(f"{where} expects EMG at {bundle.emg_rate_hz:g} Hz but the amplifier reports "
                         f"{float(emg_rate_hz):g} Hz")
