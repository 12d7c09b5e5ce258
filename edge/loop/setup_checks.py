"""What the runtime refuses at set-up, before the first frame (exit status 2 from ``myoedge run``).

A profile of other muscles, or another channel order or joint; an amplifier of another rate, channel
count or labels, or wider samples than the envelope was designed for, or another ADC (sample width,
volts per count) than the one the training data was quantised with; an envelope the runtime would
compute differently from the one the model was trained on (coefficient hash); filling in channels whose
electrode is off with a bundle that has no ``channel_fill`` block. Each refusal names both values.
"""

from __future__ import annotations

import logging

import numpy as np

from myoedge.body.profile import SubjectProfile
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope
from myoedge.edge.model.bundle import Bundle, check_compatible
from myoedge.edge.model.channel_fill import ChannelFillMeta
from myoedge.edge.wire.protocol import LABEL_BYTES, DeviceInfo
from myoedge.ground.errors import InputError

__all__ = ["check_adc", "check_channel_fill", "check_device", "check_profile", "envelope_config"]

LOG = logging.getLogger("myoedge.edge")


def envelope_config(bundle: Bundle) -> EnvelopeConfig:
    """The envelope the runtime computes for ``bundle``; refused when its hash is not the bundle's."""
    config = bundle.meta.envelope.config
    check_compatible(bundle, envelope_hash=design_envelope(config).coefficients_hash())
    return config


def check_profile(bundle: Bundle, profile: SubjectProfile) -> None:
    """The profile must describe the joint and muscles (in channel order) the bundle was trained on."""
    check_compatible(bundle, muscles=profile.muscles)
    if profile.joint != bundle.meta.joint:
        raise InputError(f"bundle {bundle.path} is a {bundle.meta.joint} model but the profile of "
                         f"{profile.subject} describes the {profile.joint}")


def check_device(bundle: Bundle, info: DeviceInfo, config: EnvelopeConfig) -> None:
    """The amplifier's device-info frame must match the bundle's rate, channels and channel order."""
    check_compatible(bundle, emg_rate_hz=info.sample_rate_hz)
    expected = tuple(m[:LABEL_BYTES] for m in bundle.muscles)
    if info.n_channels != len(expected):
        raise InputError(f"the amplifier ({info.device_name or 'unnamed'}) sends {info.n_channels} channels "
                         f"{list(info.labels)} but bundle {bundle.path} expects {len(expected)}: "
                         f"{list(expected)}")
    if info.labels != expected:
        same = sorted(info.labels) == sorted(expected)
        raise InputError(f"the amplifier's channel labels {list(info.labels)} differ from the bundle's "
                         f"muscles {list(expected)}" + (" (same channels, other order)" if same else ""))
    if info.sample_bits > config.input_bits:
        raise InputError(f"the amplifier sends {info.sample_bits}-bit samples but the bundle's envelope "
                         f"was designed for {config.input_bits}-bit input")
    check_adc(bundle, info)


def check_adc(bundle: Bundle, info: DeviceInfo) -> None:
    """The amplifier's sample width and per-channel scale must be the ADC the bundle was trained with
    (else its envelopes are not the training envelopes); a bundle older than version 3 records no ADC:
    accepted with a warning."""
    adc = bundle.adc
    if adc is None:
        LOG.warning("bundle %s (version %d) does not record the ADC it was trained with; the amplifier's "
                    "%d-bit samples at %s V per count are not checked against it", bundle.path,
                    bundle.meta.version, info.sample_bits, _scales(info.scale_v))
        return
    if info.sample_bits != adc.bits:
        raise InputError(f"the amplifier ({info.device_name or 'unnamed'}) sends {info.sample_bits}-bit "
                         f"samples but bundle {bundle.path} was trained on a {adc.bits}-bit ADC "
                         f"({adc.describe()})")
    expected = np.float32(adc.volts_per_count)
    wrong = [c for c in range(info.n_channels) if info.scale_v[c] != expected]
    if wrong:
        raise InputError(
            f"the amplifier's scale {_scales(info.scale_v[wrong])} V per count on channel(s) "
            f"{[info.labels[c] for c in wrong]} differs from the {float(expected):.7g} V per count of the "
            f"ADC bundle {bundle.path} was trained with; train with that scale (`myoedge train --adc-scale`) "
            f"or set the amplifier's gain to match")


def _scales(values) -> str:
    distinct = sorted({float(v) for v in values})
    return " / ".join(f"{v:.7g}" for v in distinct)


def check_channel_fill(bundle: Bundle) -> ChannelFillMeta:
    """The bundle's ``channel_fill`` block, which ``SafetyConfig(fill_off_channels=True)`` needs."""
    if bundle.meta.channel_fill is None:
        raise InputError(f"bundle {bundle.path} has no channel_fill block (a one-channel model, or exported "
                         f"by an older myoedge): it cannot fill in a channel whose electrode is off; "
                         f"re-export it, or run without --fill-off-channels")
    return bundle.meta.channel_fill
