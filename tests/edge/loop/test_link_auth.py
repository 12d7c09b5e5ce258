"""The optional HMAC on the controller link: a tag any changed byte or another key fails, the key file's
rules, and datagrams unchanged without a key."""

from __future__ import annotations

import contextlib
import os

import pytest
from loop_parts import setup_parts

from myoedge.cli import main
from myoedge.edge.loop.estimate import Estimate, Flags, decode_estimate, encode_estimate
from myoedge.edge.loop.link_auth import TAG_BYTES, DatagramSigner, load_udp_key, verify_datagram
from myoedge.edge.loop.publish import UdpPublisher
from myoedge.ground.errors import InputError

KEY = bytes(range(32))
SIM_PORT = "sim://?labels=FCR,FCU,ECRL,ECRB,ECU&fs=1000"


def estimate(i: int) -> Estimate:
    return Estimate(index=i, seq=10 + i, timestamp_us=1000 * i, theta_rad=0.125 * i, forces_n=(1.0, 2.0, 3.5),
                    torque_nm=0.5, torque_requested_nm=0.75, flags=Flags.TORQUE_CLAMPED, bad_channels=2)


def send(receiver, key, n=5):
    with UdpPublisher(receiver.getsockname(), n_muscles=3, key=key) as pub:
        for i in range(n):
            pub.publish(estimate(i))
        return [receiver.recv(4096) for _ in range(n)]


def test_signed_datagrams_verify_and_decode(receiver):
    got = send(receiver, KEY)
    for i, data in enumerate(got):
        assert len(data) == len(encode_estimate(estimate(i))) + TAG_BYTES
        assert decode_estimate(verify_datagram(data, KEY)) == estimate(i)


def test_without_a_key_datagrams_are_unchanged(receiver):
    assert send(receiver, None) == [encode_estimate(estimate(i)) for i in range(5)]


def test_any_tampered_byte_is_rejected(receiver):
    data = send(receiver, KEY, n=1)[0]
    for position in range(len(data)):  # every byte: the estimate's and the tag's
        forged = bytearray(data)
        forged[position] ^= 0x01
        with pytest.raises(InputError, match="authentication failed"):
            verify_datagram(forged, KEY)


def test_a_wrong_key_a_missing_tag_or_an_unsigned_datagram_are_rejected(receiver):
    data = send(receiver, KEY, n=1)[0]
    with pytest.raises(InputError, match="authentication failed"):
        verify_datagram(data, bytes(reversed(KEY)))
    with pytest.raises(InputError, match="authentication failed"):
        verify_datagram(data[:-1], KEY)
    with pytest.raises(InputError, match="authentication failed"):
        verify_datagram(encode_estimate(estimate(0)), KEY)  # what a sender without the key sends
    with pytest.raises(InputError, match="more than 16 bytes"):
        verify_datagram(data[:TAG_BYTES], KEY)


def test_the_tag_is_truncated_hmac_sha256():
    import hashlib
    import hmac

    body = encode_estimate(estimate(3))
    assert DatagramSigner(KEY).tag(body) == hmac.new(KEY, body, hashlib.sha256).digest()[:16]


def key_file(tmp_path, data: bytes, mode: int = 0o600):
    path = tmp_path / "link.key"
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_key_file_rules(tmp_path):
    assert load_udp_key(key_file(tmp_path, KEY)) == KEY  # exactly the file's bytes
    with pytest.raises(InputError, match="at least 16"):
        load_udp_key(key_file(tmp_path, b"short key\n"))
    with pytest.raises(InputError, match="readable by every user.*chmod 600"):
        load_udp_key(key_file(tmp_path, KEY, 0o644))
    with pytest.raises(InputError, match="at most 4096"):
        load_udp_key(key_file(tmp_path, b"k" * 5000))
    with pytest.raises(InputError, match="not a regular file"):
        load_udp_key(tmp_path)
    with pytest.raises(InputError, match="cannot read"):
        load_udp_key(tmp_path / "missing.key")


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    bundle, profile, _ = setup_parts(tmp_path_factory.mktemp("rt"))
    return bundle.path, profile.save(tmp_path_factory.mktemp("profile") / "p.json")


def run(run_files, *extra):
    bundle, profile = run_files
    return main(["run", "--port", SIM_PORT, "--bundle", str(bundle), "--profile", str(profile), *extra])


@pytest.mark.parametrize("data, mode, words", [
    (b"0123456789", 0o600, "at least 16"), (KEY, 0o604, "readable by every user"),
])
def test_run_refuses_a_bad_key_file_in_one_line(run_files, tmp_path, capsys, data, mode, words):
    path = key_file(tmp_path, data, mode)
    code = run(run_files, "--udp", "127.0.0.1:9", "--udp-key", str(path), "--duration", "0.2")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_run_udp_key_needs_udp(run_files, tmp_path, capsys):
    assert run(run_files, "--udp-key", str(key_file(tmp_path, KEY)), "--duration", "0.2") == 2
    assert "--udp HOST:PORT" in capsys.readouterr().err


def test_run_signs_every_datagram(run_files, tmp_path, receiver):
    path = key_file(tmp_path, KEY)
    receiver.settimeout(0.5)
    port = receiver.getsockname()[1]
    assert run(run_files, "--udp", f"127.0.0.1:{port}", "--udp-key", str(path), "--duration", "0.5") == 0
    got = []
    with contextlib.suppress(TimeoutError):
        while True:
            got.append(receiver.recv(4096))
    assert len(got) > 10
    signer = DatagramSigner(KEY)
    indices = [decode_estimate(verify_datagram(d, signer)).index for d in got]
    assert indices == sorted(indices)
