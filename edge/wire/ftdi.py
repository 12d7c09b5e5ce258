"""What a USB-serial adapter needs on Linux: the FTDI ``latency_timer`` at 1 ms (design.md section 5)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOG = logging.getLogger("myoedge.edge")

LATENCY_TIMER_MAX_MS = 1
UDEV_RULE = ('ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"')


def check_latency_timer(device: str, *, sysfs_root: str | os.PathLike = "/sys") -> int | None:
    """The FTDI ``latency_timer`` (ms) of a Linux ``/dev/ttyUSB*`` port, warning when it is above 1 ms.

    The FTDI driver holds received bytes for up to ``latency_timer`` ms before passing a part-filled USB
    packet on; its default of 16 ms turns a 1 ms frame stream into 16 ms bursts. Returns None for other
    ports (and off Linux). ``device`` may be a symlink such as ``/dev/serial/by-id/...``.
    """
    names = [os.path.basename(device), os.path.basename(os.path.realpath(device))]
    for name in dict.fromkeys(n for n in names if n.startswith("ttyUSB")):
        path = Path(sysfs_root) / "bus" / "usb-serial" / "devices" / name / "latency_timer"
        try:
            value = int(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if value > LATENCY_TIMER_MAX_MS:
            LOG.warning("%s: FTDI latency_timer is %d ms (expected %d ms): frames arrive in %d ms bursts. "
                        "Fix it with `echo 1 | sudo tee %s` (until unplugged) or install the udev rule "
                        "shipped by myoedge.deploy: %s", device, value, LATENCY_TIMER_MAX_MS, value, path,
                        UDEV_RULE)
        return value
    return None
