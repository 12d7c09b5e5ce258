"""Firmware companion files: the envelope filter for CMSIS-DSP and test vectors, beside ``myoedge_frame.h``.

``myoedge export-firmware`` writes three C headers into a folder of the firmware tree:

* ``myoedge_frame.h`` (:mod:`.firmware_frame`): frame layout, sync word, CRC-32 table and function;
* ``myoedge_envelope.h``: the Q31 coefficients and post-shifts of the band-pass + notch cascade
  (``arm_biquad_cascade_df1_q31``) and of the envelope low-pass (``arm_biquad_cas_df1_32x64_q31``) in
  CMSIS-DSP's layout, the input and rectifier shifts and the decimation — from a bundle's envelope (the
  filter the model was trained behind) or from an envelope config;
* ``myoedge_test_vectors.h``: example frames encoded by the host's encoder (bytes plus the fields they
  carry), and ADC counts with the Q31 output the host's envelope code computes for them after the band
  stage and after the whole chain.

The test vectors come from the very code the host runs (:class:`myoedge.edge.dsp.envelope.EnvelopeFilter`,
the protocol encoders), so a firmware unit test that reproduces them bit for bit proves that the device
and host compute the same numbers. Output is deterministic for a given source, length and seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from myoedge.deploy.c_source import c_array, c_comment, c_header, c_int, c_string
from myoedge.deploy.firmware_frame import FRAME_HEADER_FILE, frame_header_text
from myoedge.edge.dsp.biquad_q31 import BiquadCascadeQ31
from myoedge.edge.dsp.envelope import EnvelopeConfig, EnvelopeDesign, EnvelopeFilter, design_envelope
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.wire.protocol import DeviceInfo, Frame, FrameType, encode_device_info, encode_frame
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_write_text

__all__ = ["ENVELOPE_HEADER_FILE", "FIRMWARE_FILES", "VECTORS_HEADER_FILE", "design_from_bundle",
           "design_from_config_file", "envelope_header_text", "envelope_vectors", "example_frames",
           "export_firmware", "vectors_header_text"]

ENVELOPE_HEADER_FILE = "myoedge_envelope.h"
VECTORS_HEADER_FILE = "myoedge_test_vectors.h"
FIRMWARE_FILES = (FRAME_HEADER_FILE, ENVELOPE_HEADER_FILE, VECTORS_HEADER_FILE)


def design_from_bundle(bundle: Bundle) -> EnvelopeDesign:
    """The envelope a bundle was trained behind; refused if this myoedge would realise it differently."""
    config = bundle.meta.envelope.config
    design = design_envelope(config)
    if design.coefficients_hash() != bundle.envelope_hash:
        raise InputError(f"bundle {bundle.path}: its envelope coefficients (hash "
                         f"{bundle.envelope_hash[:12]}…) differ from what this myoedge designs from the same "
                         f"config ({design.coefficients_hash()[:12]}…); export the firmware with the myoedge "
                         f"version that trained it ({bundle.meta.myoedge_version})")
    return design


def design_from_config_file(path: str | os.PathLike) -> EnvelopeDesign:
    """The envelope of a JSON file holding ``EnvelopeConfig`` fields (``fs_hz``, ``out_rate_hz``, ...)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such envelope config file") from None
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict):
        raise FormatError(path, f"expected a JSON object of envelope config fields, "
                                f"got {type(data).__name__}")
    try:
        return design_envelope(EnvelopeConfig.from_dict(data))
    except InputError as exc:
        raise FormatError(path, str(exc)) from None


def envelope_header_text(design: EnvelopeDesign, *, source: str) -> str:
    """The complete ``myoedge_envelope.h`` for ``design``; ``source`` names where it came from."""
    cfg, c = design.config, design.coefficients()
    n_band, n_low = len(design.band_coeffs) // 5, len(design.lowpass_coeffs) // 5
    notch = "none" if cfg.notch_hz is None else f"{cfg.notch_hz:g} Hz notch (Q {cfg.notch_q:g})"
    doc = c_comment(f"""
        Per channel, at {cfg.fs_hz:g} Hz: ADC counts ({cfg.input_bits}-bit) << MYOEDGE_ENV_INPUT_SHIFT -> Q31
        -> band-pass {cfg.band_hz[0]:g}-{cfg.band_hz[1]:g} Hz (order {cfg.bandpass_order}) + {notch},
        arm_biquad_cascade_df1_q31 -> |x| (INT32_MIN becomes INT32_MAX) >> MYOEDGE_ENV_RECTIFIER_SHIFT ->
        {cfg.lowpass_hz:g} Hz low-pass (order {cfg.lowpass_order}), arm_biquad_cas_df1_32x64_q31 -> keep
        sample i when i % MYOEDGE_ENV_DECIMATION == MYOEDGE_ENV_DECIMATION - 1
        ({cfg.out_rate_hz:g} Hz to the host).

        Coefficients: per stage b0, b1, b2, a1, a2 in Q31, feedback signs as CMSIS-DSP uses them, all
        scaled by 2^-postShift. One filter instance and one state array per channel:

          arm_biquad_casd_df1_inst_q31 band; q31_t band_state[4 * MYOEDGE_ENV_BAND_NUM_STAGES];
          arm_biquad_cascade_df1_init_q31(&band, MYOEDGE_ENV_BAND_NUM_STAGES,
              (q31_t *)myoedge_env_band_coeffs, band_state, MYOEDGE_ENV_BAND_POST_SHIFT);
          arm_biquad_cas_df1_32x64_ins_q31 low; q63_t low_state[4 * MYOEDGE_ENV_LOWPASS_NUM_STAGES];
          arm_biquad_cas_df1_32x64_init_q31(&low, MYOEDGE_ENV_LOWPASS_NUM_STAGES,
              (q31_t *)myoedge_env_lowpass_coeffs, low_state, MYOEDGE_ENV_LOWPASS_POST_SHIFT);

        MYOEDGE_ENVELOPE_HASH identifies these numbers; a model bundle records the hash of the envelope it was
        trained behind.""")
    body = doc + "\n" + "".join([
        f"#define MYOEDGE_ENVELOPE_HASH {c_string(design.coefficients_hash())}\n",
        f"#define MYOEDGE_ENV_SAMPLE_RATE_HZ {cfg.fs_hz!r}\n",
        f"#define MYOEDGE_ENV_OUTPUT_RATE_HZ {cfg.out_rate_hz!r}\n",
        f"#define MYOEDGE_ENV_INPUT_BITS {cfg.input_bits}\n",
        f"#define MYOEDGE_ENV_INPUT_SHIFT {c['input_shift']}\n",
        f"#define MYOEDGE_ENV_BAND_NUM_STAGES {n_band}\n",
        f"#define MYOEDGE_ENV_BAND_POST_SHIFT {c['band']['post_shift']}\n",
        f"#define MYOEDGE_ENV_RECTIFIER_SHIFT {c['lowpass_input_shift']}\n",
        f"#define MYOEDGE_ENV_LOWPASS_NUM_STAGES {n_low}\n",
        f"#define MYOEDGE_ENV_LOWPASS_POST_SHIFT {c['lowpass']['post_shift']}\n",
        f"#define MYOEDGE_ENV_DECIMATION {c['decimation']}\n\n",
        "/* arm_biquad_cascade_df1_q31 */\n",
        c_array("int32_t", "myoedge_env_band_coeffs", c["band"]["coeffs"], per_line=5,
                size="5 * MYOEDGE_ENV_BAND_NUM_STAGES"),
        "\n/* arm_biquad_cas_df1_32x64_q31 */\n",
        c_array("int32_t", "myoedge_env_lowpass_coeffs", c["lowpass"]["coeffs"], per_line=5,
                size="5 * MYOEDGE_ENV_LOWPASS_NUM_STAGES"),
    ])
    return c_header(ENVELOPE_HEADER_FILE, summary="the EMG envelope filter for CMSIS-DSP (Q31)",
                    sources=f"myoedge.edge.dsp.envelope, {source}", body=body, includes=("<stdint.h>",))


def envelope_vectors(design: EnvelopeDesign, *, n_samples: int, seed: int) -> dict[str, np.ndarray]:
    """One channel of ADC counts and the host's Q31 results: after the band stage and after the chain.

    The input has EMG-like noise bursts of growing amplitude, full-scale alternation (the band stage's
    worst case), full-scale steps of both signs and a quiet tail, all within the ADC word width.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or not 64 <= n_samples <= 100_000:
        raise InputError(f"n_samples must be an int in 64..100000, got {n_samples!r}")
    bits = design.config.input_bits
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rng = np.random.default_rng(seed)
    n_burst, n_edge = n_samples // 2, n_samples // 8
    swell = 0.5 + 0.5 * np.sin(np.linspace(0.0, 6.0 * np.pi, n_burst)) ** 2
    ramp = np.linspace(0.02, 0.45, n_burst) * swell
    parts = [rng.normal(0.0, 1.0, n_burst) * ramp * high,
             np.where(np.arange(n_edge) % 2 == 0, high, low),
             np.full(n_edge, high), np.full(n_edge, low)]
    tail = n_samples - sum(len(p) for p in parts)
    parts.append(rng.normal(0.0, 0.01 * high, tail) * (np.arange(tail) < tail // 2))
    counts = np.clip(np.rint(np.concatenate(parts)), low, high).astype(np.int32).reshape(-1, 1)

    q31 = (counts.astype(np.int64) << design.input_shift).astype(np.int32)
    band = BiquadCascadeQ31(design.band_coeffs, design.band_post_shift, 1).process(q31)
    chain = EnvelopeFilter(design.config, n_channels=1, volts_per_count=1.0, mvc_volts=1.0)
    return {"counts": counts[:, 0], "band": band[:, 0], "envelope": chain.process_raw(counts)[:, 0]}


def example_frames(*, seed: int) -> list[dict]:
    """Frames encoded by the host's encoders, with the fields a firmware encoder must have put in them."""
    rng = np.random.default_rng(seed)
    out = []
    for seq, ts, shape, bits in ((1, 1000, (2, 4), 16), (0xFFFFFFFF, (1 << 40) + 12345, (3, 3), 24)):
        limit = 1 << (bits - 1)
        samples = rng.integers(-limit, limit, shape, dtype=np.int64).astype(np.int32)
        samples[0, 0], samples[-1, -1] = -limit, limit - 1  # the extremes of the sample width
        wire = encode_frame(Frame(seq=seq, timestamp_us=ts, samples=samples, sample_bits=bits))
        out.append({"bytes": wire, "frame_type": int(FrameType.DATA), "seq": seq, "timestamp_us": ts,
                    "n_samples": shape[0], "n_channels": shape[1], "sample_bits": bits, "samples": samples})
    info = DeviceInfo(sample_rate_hz=2000.0, scale_v=[2.5e-7, 2.5e-7, 5e-7], labels=("FCR", "ECRL", "ECU"),
                      sample_bits=24, samples_per_frame=4, device_name="myoedge-amp fw 1.0")
    out.append({"bytes": encode_device_info(info, seq=2, timestamp_us=500),
                "frame_type": int(FrameType.DEVICE_INFO), "seq": 2, "timestamp_us": 500, "n_samples": 4,
                "n_channels": 3, "sample_bits": 24, "samples": None})
    return out


def vectors_header_text(design: EnvelopeDesign, *, n_samples: int, seed: int) -> str:
    """The complete ``myoedge_test_vectors.h``."""
    frames = example_frames(seed=seed)
    parts = [c_comment("""
        Frames: each entry gives the wire bytes the host's encoder produced and the fields they carry; a
        firmware encoder given the same fields (and samples, sample-major) must produce the same bytes, and
        myoedge_crc32 over all but the last MYOEDGE_CRC_SIZE bytes must equal the CRC stored there."""),
        "typedef struct myoedge_tv_frame {\n    const uint8_t *bytes;\n    uint32_t length;\n"
        "    uint8_t frame_type, n_channels, n_samples, sample_bits;\n    uint32_t seq;\n"
        "    uint64_t timestamp_us;\n"
        "    const int32_t *samples; /* n_samples x n_channels; NULL for device info */\n"
        "} myoedge_tv_frame_t;\n\n",
        f"static const char myoedge_tv_crc_input[] = {c_string('123456789')}; "
        "/* CRC: MYOEDGE_CRC32_CHECK */\n\n"]
    entries = []
    for i, f in enumerate(frames):
        parts.append(c_array("uint8_t", f"myoedge_tv_frame_{i}_bytes", f["bytes"], per_line=12))
        samples = "NULL"
        if f["samples"] is not None:
            samples = f"myoedge_tv_frame_{i}_samples"
            parts.append(c_array("int32_t", samples, f["samples"].ravel(), per_line=6))
        entries.append(f"    {{myoedge_tv_frame_{i}_bytes, {len(f['bytes'])}u, {f['frame_type']}u, "
                       f"{f['n_channels']}u, {f['n_samples']}u, {f['sample_bits']}u, "
                       f"{c_int(f['seq'], 'uint32_t')}, "
                       f"{c_int(f['timestamp_us'], 'uint64_t')}, {samples}}},")
    parts.append(f"\n#define MYOEDGE_TV_N_FRAMES {len(frames)}\n"
                 f"static const myoedge_tv_frame_t myoedge_tv_frames[MYOEDGE_TV_N_FRAMES] = {{\n"
                 + "\n".join(entries) + "\n};\n\n")

    vectors = envelope_vectors(design, n_samples=n_samples, seed=seed)
    parts.append(c_comment(f"""
        Envelope, one channel from rest (zero state): myoedge_tv_env_counts are ADC counts;
        myoedge_tv_env_band is the band stage's output for counts << MYOEDGE_ENV_INPUT_SHIFT;
        myoedge_tv_env_output is the low-pass output after the rectifier, at the input rate (decimate
        afterwards). MYOEDGE_TV_ENVELOPE_HASH must equal MYOEDGE_ENVELOPE_HASH. Seed {seed}."""))
    parts.append(f"#define MYOEDGE_TV_ENVELOPE_HASH {c_string(design.coefficients_hash())}\n"
                 f"#define MYOEDGE_TV_ENV_LENGTH {n_samples}\n")
    for name in ("counts", "band", "envelope"):
        c_name = "myoedge_tv_env_output" if name == "envelope" else f"myoedge_tv_env_{name}"
        parts.append(c_array("int32_t", c_name, vectors[name], per_line=6, size="MYOEDGE_TV_ENV_LENGTH"))
    return c_header(VECTORS_HEADER_FILE,
                    summary="test vectors for the frame encoder, CRC and envelope filter",
                    sources="the host's protocol encoders and envelope filter", body="".join(parts),
                    includes=(f'"{FRAME_HEADER_FILE}"', f'"{ENVELOPE_HEADER_FILE}"'))


def export_firmware(out_dir: str | os.PathLike, *, design: EnvelopeDesign, source: str, n_samples: int = 600,
                    seed: int = 0, keep_previous: bool = False) -> dict:
    """Write the three headers (:data:`FIRMWARE_FILES`) into ``out_dir``, each atomically, after all three
    are generated (``keep_previous``: a replaced header is kept as ``<name>.prev``); what was written."""
    out_dir = Path(out_dir)
    texts = {FRAME_HEADER_FILE: frame_header_text(),
             ENVELOPE_HEADER_FILE: envelope_header_text(design, source=source),
             VECTORS_HEADER_FILE: vectors_header_text(design, n_samples=n_samples, seed=seed)}
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text, keep_previous=keep_previous)
    return {"out": str(out_dir), "files": sorted(texts), "envelope_hash": design.coefficients_hash(),
            "source": source, "test_vector_samples": n_samples, "seed": seed}
