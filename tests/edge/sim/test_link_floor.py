"""The link-floor probe: every paced message arrives once, in order of time, over a pty and over TCP."""

from __future__ import annotations

import json

import pytest

from myoedge.edge.sim import link_floor
from myoedge.ground.errors import InputError


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_every_message_arrives_and_latency_from_due_includes_the_write(transport):
    result = link_floor.measure_link_floor(seconds=1.0, transport=transport, period_us=1000.0)
    assert result["messages"] == result["expected"] == 1000
    due, written = result["from_due_us"], result["from_write_us"]
    assert due["n"] == written["n"] == 501  # messages due from 0.5 s on: the first 0.5 s left out
    # a message is written after it is due and read after it is written
    assert 0 < written["p50"] <= due["p50"] and written["max"] <= due["max"]
    assert written["p50"] <= written["p99"] <= written["p99.9"] <= written["max"]


def test_bad_arguments_are_refused_and_the_cli_prints_json(capsys):
    with pytest.raises(InputError, match="transport"):
        link_floor.measure_link_floor(seconds=1.0, transport="usb")
    with pytest.raises(InputError, match="seconds"):
        link_floor.measure_link_floor(seconds=0.1)
    assert link_floor.main(["--seconds", "0.5", "--period-us", "50"]) == 2
    assert "period_us" in capsys.readouterr().err
    assert link_floor.main(["--seconds", "0.8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["transport"] == "pty" and set(result["from_due_us"]) == {"n", "p50", "p99", "p99.9", "max"}
