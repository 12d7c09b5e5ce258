"""Measure the fixed-point envelope against its float reference, and its speed.

Run ``python -m myoedge.edge.dsp.envelope_report``; it prints the tables that docs/envelope.md quotes.

The test signal is surface-EMG-like: Gaussian noise band-limited to 20-450 Hz, amplitude-modulated by
slow contractions (0.5 Hz, 10-100 % of peak) to a few hundred microvolts RMS, plus 20 uV of 50 Hz
mains hum. Two SNRs are reported for each rate and ADC:

* *filter*: the fixed-point chain vs float64 on the same ADC counts (coefficient quantisation and
  rounding inside the filters only);
* *end-to-end*: the fixed-point chain on ADC counts vs float64 on the unquantised volts (adds the
  ADC's own quantisation, the number that matters for training on float recordings).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import signal

from myoedge.edge.dsp.adc import DEFAULT_ADC
from myoedge.edge.dsp.biquad_q31 import cascade_l1_gains, cmsis_q31_to_sos
from myoedge.edge.dsp.envelope import (
    BiquadCascadeQ31,
    EnvelopeConfig,
    EnvelopeFilter,
    _rectify_shift,
    design_envelope,
    envelope_from_volts,
    float_reference_envelope,
    volts_to_counts,
)

#: (label, input_bits, volts per count): the default 24-bit and 16-bit ADCs (myoedge.edge.dsp.adc).
ADCS = tuple((f"{bits}-bit, {1e9 * DEFAULT_ADC[bits].volts_per_count:.4g} nV/count", bits,
              DEFAULT_ADC[bits].volts_per_count) for bits in (24, 16))  # the ADCs myoedge assumes
RATES_HZ = (1000.0, 2000.0)
OUT_RATE_HZ = 100.0
#: Peak-contraction RMS of the test signal: a strong and a weak (10x smaller) muscle.
LEVELS_VOLTS = (300e-6, 30e-6)


def emg_like(*, fs_hz: float, seconds: float, n_channels: int, rms_volts: float = 300e-6,
             hum_volts: float = 20e-6, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated band-limited noise in volts, shape (n, n_channels)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs_hz))
    t = np.arange(n) / fs_hz
    high = min(450.0, 0.45 * fs_hz)
    carrier = signal.sosfilt(signal.butter(4, (20.0, high), btype="bandpass", fs=fs_hz, output="sos"),
                             rng.standard_normal((n, n_channels)), axis=0)
    carrier /= carrier.std(axis=0)
    phase = rng.uniform(0, 2 * np.pi, n_channels)
    modulation = 0.55 + 0.45 * np.sin(2 * np.pi * 0.5 * t[:, None] + phase)
    hum = hum_volts * np.sqrt(2) * np.sin(2 * np.pi * 50.0 * t)[:, None]
    return rms_volts * modulation * carrier + hum


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    err = np.asarray(test, dtype=np.float64) - reference
    return float(10 * np.log10(np.sum(reference**2) / np.sum(err**2)))


def accuracy_rows(*, seconds: float) -> list[tuple]:
    rows = []
    for fs, rms in ((fs, rms) for fs in RATES_HZ for rms in LEVELS_VOLTS):
        volts = emg_like(fs_hz=fs, seconds=seconds, n_channels=4, rms_volts=rms)
        for label, bits, vpc in ADCS:
            cfg = EnvelopeConfig(fs_hz=fs, out_rate_hz=OUT_RATE_HZ, input_bits=bits)
            fixed = envelope_from_volts(volts, fs_hz=fs, config=cfg, volts_per_count=vpc)
            counts = volts_to_counts(volts, volts_per_count=vpc, input_bits=bits)
            ref_counts = float_reference_envelope(counts.astype(np.float64) * vpc, config=cfg)
            ref_volts = float_reference_envelope(volts, config=cfg)
            rows.append((fs, rms, label, snr_db(ref_counts, fixed), snr_db(ref_volts, fixed)))
    return rows


def q31_lowpass_rows(*, seconds: float) -> list[tuple]:
    """The rejected alternative: the low-pass in plain Q31 (32-bit state), 24-bit ADC, 300 uV."""
    rows = []
    for fs in RATES_HZ:
        cfg = EnvelopeConfig(fs_hz=fs, out_rate_hz=OUT_RATE_HZ, input_bits=24)
        d = design_envelope(cfg)
        counts = volts_to_counts(emg_like(fs_hz=fs, seconds=seconds, n_channels=4),
                                 volts_per_count=DEFAULT_ADC[24].volts_per_count, input_bits=24)
        reference = float_reference_envelope(counts.astype(np.float64), config=cfg)
        buf = counts << d.input_shift
        BiquadCascadeQ31(d.band_coeffs, d.band_post_shift, 4).process(buf, out=buf)
        _rectify_shift(buf, d.lowpass_shift)
        BiquadCascadeQ31(d.lowpass_coeffs, d.lowpass_post_shift, 4).process(buf, out=buf)
        k = cfg.decimation
        rows.append((fs, snr_db(reference, buf[k - 1 :: k] * d.counts_per_lsb)))
    return rows


def design_rows() -> list[tuple]:
    rows = []
    for fs in RATES_HZ:
        for _, bits, _ in ADCS:
            d = design_envelope(EnvelopeConfig(fs_hz=fs, out_rate_hz=OUT_RATE_HZ, input_bits=bits))
            l1_band = cascade_l1_gains(cmsis_q31_to_sos(d.band_coeffs, d.band_post_shift)).max()
            l1_lp = cascade_l1_gains(cmsis_q31_to_sos(d.lowpass_coeffs, d.lowpass_post_shift)).max()
            rows.append((fs, bits, d.band_post_shift, l1_band, d.input_shift, d.lowpass_post_shift, l1_lp,
                         d.lowpass_shift, d.coefficients_hash()[:16]))
    return rows


def throughput_rows(*, seconds: float, n_channels: int = 8, fs: float = 2000.0) -> list[tuple]:
    cfg = EnvelopeConfig(fs_hz=fs, out_rate_hz=OUT_RATE_HZ, input_bits=24)
    counts = volts_to_counts(emg_like(fs_hz=fs, seconds=seconds, n_channels=n_channels),
                             volts_per_count=DEFAULT_ADC[24].volts_per_count, input_bits=24)
    filt = EnvelopeFilter(cfg, n_channels=n_channels, volts_per_count=DEFAULT_ADC[24].volts_per_count,
                          mvc_volts=2e-4)
    filt.process(counts[:64])  # compile / load the numba kernels outside the timing
    rows = []
    for chunk in (len(counts), 40, 10):
        blocks = [np.ascontiguousarray(counts[i : i + chunk]) for i in range(0, len(counts), chunk)]
        best = np.inf
        for _ in range(3):
            filt.reset()
            start = time.perf_counter()
            for block in blocks:
                filt.process(block)
            best = min(best, time.perf_counter() - start)
        rows.append((chunk, seconds / best, best / len(blocks) * 1e6))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="test signal length (default 20 s)")
    parser.add_argument("--throughput-seconds", type=float, default=60.0, help="data timed (default 60 s)")
    args = parser.parse_args(argv)

    print(f"Design (out rate {OUT_RATE_HZ:g} Hz, default band/notch/low-pass)\n")
    print("| fs Hz | ADC bits | band postShift | band max L1 gain | input shift | low-pass postShift "
          "| low-pass max L1 gain | low-pass input shift | hash (first 16) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fs, bits, bps, l1b, ish, lps, l1l, lsh, h in design_rows():
        print(f"| {fs:g} | {bits} | {bps} | {l1b:.3f} | {ish} | {lps} | {l1l:.3f} | {lsh} | `{h}` |")

    print(f"\nSNR of the fixed-point envelope vs float64 ({args.seconds:g} s, 4 channels)\n")
    print("| fs Hz | peak RMS uV | ADC | filter SNR dB | end-to-end SNR dB |")
    print("|---|---|---|---|---|")
    for fs, rms, label, snr_filter, snr_e2e in accuracy_rows(seconds=args.seconds):
        print(f"| {fs:g} | {rms * 1e6:g} | {label} | {snr_filter:.1f} | {snr_e2e:.1f} |")

    print("\nRejected: the 6 Hz low-pass in plain Q31 (24-bit ADC, 300 uV), filter SNR\n")
    print("| fs Hz | filter SNR dB |")
    print("|---|---|")
    for fs, snr in q31_lowpass_rows(seconds=args.seconds):
        print(f"| {fs:g} | {snr:.1f} |")

    print(f"\nThroughput, 8 channels at 2 kHz, {args.throughput_seconds:g} s of data, one core (best of 3)\n")
    print("| samples per call | x real time | us per call |")
    print("|---|---|---|")
    for chunk, factor, per_call in throughput_rows(seconds=args.throughput_seconds):
        print(f"| {chunk} | {factor:,.0f} | {per_call:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
