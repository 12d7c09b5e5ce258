"""Jetson service files: the systemd unit, the udev rule and the setup script parse and say what they must."""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess

import pytest

FILES = importlib.resources.files("myoedge.deploy") / "files"
UNIT = FILES / "myoedge.service"
RULES = FILES / "99-myoedge-amplifier.rules"
SETUP = FILES / "setup-jetson.sh"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax: [Section], Key=Value lines (keys may repeat), # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep and re.fullmatch(r"[A-Za-z]+", key), f"line {number}: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


_TOKEN = re.compile(r'(?P<key>[A-Z]+)(?:\{(?P<attr>[A-Za-z_]+)\})?'
                    r'(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"')
_MATCH_KEYS = {"ACTION", "SUBSYSTEM", "DRIVER", "ATTRS", "KERNEL"}
_ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "TAG", "ATTR"}


def parse_rules(text: str) -> list[dict[tuple[str, str | None], tuple[str, str]]]:
    """udev rules: one rule a line, comma-separated KEY[{attr}]OP"value" tokens."""
    rules = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        tokens = {}
        for token in (t.strip() for t in raw.split(",")):
            m = _TOKEN.fullmatch(token)
            assert m, f"malformed token {token!r}"
            key, op = m["key"], m["op"]
            matches = key in _MATCH_KEYS or key == "ATTR"
            assert (matches and op in ("==", "!=")) or (key in _ASSIGN_KEYS and op in ("=", "+=")), \
                f"{token!r}: {op} does not fit {key}"
            tokens[(key, m["attr"])] = (op, m["value"])
        rules.append(tokens)
    return rules


def test_unit_runs_myoedge_unprivileged_and_restarts_on_failure():
    unit = parse_unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {k: v[-1] for k, v in unit["Service"].items()}
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/bin/myoedge") and exec_start[1] == "run"
    for option in ("--port", "--bundle", "--profile", "--udp"):
        assert option in exec_start
    # a missing amplifier at boot exits 2: the unit must keep retrying, never give up
    assert service["Restart"] == "on-failure" and "RestartPreventExitStatus" not in service
    assert unit["Unit"]["StartLimitIntervalSec"][-1] == "0"
    assert service["User"] not in ("", "root", "0") and "dialout" in service["SupplementaryGroups"].split()
    assert service["KillSignal"] == "SIGINT" and "130" in service["SuccessExitStatus"].split()
    assert all(c.isdigit() for c in service["CPUAffinity"].split()) and -20 <= int(service["Nice"]) < 0
    assert service["IOSchedulingClass"] in ("best-effort", "realtime", "idle")
    assert "PrivateDevices" not in service  # it would hide /dev/nvhost-* and the serial port
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    defaults = dict(v.split("=", 1) for v in unit["Service"]["Environment"])
    for variable in re.findall(r"\$\{?(\w+)\}?", service["ExecStart"]):
        assert variable in defaults, f"{variable} has no default"
    assert defaults["MYOEDGE_PORT"] == "/dev/myoedge-amp"  # the udev rule's symlink


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    fake = tmp_path / "myoedge"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    text = UNIT.read_text().replace("/opt/myoedge/venv/bin/myoedge", str(fake))

    def problems(unit_text: str) -> list[str]:
        path = tmp_path / "myoedge.service"
        path.write_text(unit_text)
        run = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
        return [line for line in (run.stdout + run.stderr).splitlines() if "myoedge.service:" in line]

    assert problems(text) == []
    assert problems(text.replace("Nice=-10", "Nice=-100"))  # the check can fail


def test_udev_rule_names_the_amplifier_and_sets_the_latency_timer():
    symlink, latency = parse_rules(RULES.read_text())
    identity = {k: v for k, v in symlink.items() if k[0] == "ATTRS"}
    assert identity == {k: v for k, v in latency.items() if k[0] == "ATTRS"}  # the same adapter
    assert identity[("ATTRS", "idVendor")] == ("==", "0403")  # FTDI
    assert ("ATTRS", "serial") in identity and ("ATTRS", "idProduct") in identity
    assert symlink[("SUBSYSTEM", None)] == ("==", "tty")
    assert symlink[("SYMLINK", None)] == ("+=", "myoedge-amp")
    assert symlink[("GROUP", None)] == ("=", "dialout")
    assert latency[("SUBSYSTEM", None)] == ("==", "usb-serial")
    assert latency[("DRIVER", None)] == ("==", "ftdi_sio")
    assert latency[("ATTR", "latency_timer")] == ("=", "1")


def _setup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP), *args], capture_output=True, text=True, timeout=30)


def test_setup_script_plan():
    assert os.access(str(SETUP), os.X_OK)
    subprocess.run(["bash", "-n", str(SETUP)], check=True)
    run = _setup("--dry-run", "--amp-serial", "FT12AB", "--amp-product", "6014", "--prefix", "/opt/emg")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "python3 -m venv --system-site-packages /opt/emg/venv" in out
    assert "useradd --system" in out and "--groups dialout,video myoedge" in out
    assert "nvpmodel -m 0" in out and "jetson_clocks" in out and "pip install pycuda" in out
    rules = [line.strip() for line in out.splitlines() if line.startswith("    ") and "ATTRS{serial}" in line]
    assert len(rules) == 2 and all('{serial}=="FT12AB"' in r and '{idProduct}=="6014"' in r for r in rules)
    assert "systemctl enable myoedge.service" in out


@pytest.mark.parametrize("args, match", [(["--bogus"], "unknown option"),
                                         (["--dry-run", "--amp-product", "60x1"], "4 hex digits"),
                                         (["--dry-run", "--amp-serial", "a b"], "--amp-serial")])
def test_setup_script_refuses_bad_options(args, match):
    run = _setup(*args)
    assert run.returncode == 2 and match in run.stderr
