"""Fixtures shared by the loop's tests."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def receiver():
    """A bound UDP socket on 127.0.0.1 (5 s receive timeout): the controller's end of the link."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()
