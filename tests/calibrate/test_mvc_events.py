"""The MVC session's events for the live page (``run_mvc_session(on_event=...)``): their order in a
guided session, what the page's feed makes of them, and a consumer that raises, which must not stop the
session."""

from __future__ import annotations

import contextlib

from myoedge.calibrate.mvc import MvcConfig
from myoedge.calibrate.mvc_session import run_mvc_session
from myoedge.edge.monitor.mvc_feed import MvcFeed
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import mvc_protocol_signal


@contextlib.contextmanager
def amp(signal):
    sim = AmplifierSimulator(signal, samples_per_frame=20, fast=True, loop=False).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_a_guided_session_tells_the_page_each_step_and_a_failing_page_does_not_stop_it():
    signal = mvc_protocol_signal(joint="knee", subject=1, seed=0, repetitions=1)
    events, feed = [], MvcFeed(source="sim")

    def consumer(ev: dict) -> None:
        events.append(ev)
        feed.event(ev)
        if len(events) == 3:
            raise RuntimeError("the page broke")

    with amp(signal) as sim:
        result = run_mvc_session(sim.address, config=MvcConfig(repetitions=1, max_attempts=2),
                                 say=lambda _: None, on_event=consumer)
    kinds = [e["type"] for e in events if e["type"] != "envelope"]
    assert kinds == ["session", "prompt", "countdown", "countdown", "countdown", "go", "repetition",
                     "prompt", "countdown", "countdown", "countdown", "go", "repetition", "done"]
    assert [e["seconds"] for e in events if e["type"] == "countdown"][:3] == [3, 2, 1]
    reps = [e for e in events if e["type"] == "repetition"]
    assert [r["muscle"] for r in reps] == ["BFSH", "RF"] and all(r["accepted"] for r in reps)
    assert reps[0]["mvc_volts"] == result.mvc_volts["BFSH"]
    envelopes = [e for e in events if e["type"] == "envelope"]
    stream_s = result.stream_s
    assert abs(len(envelopes) - stream_s * 100 / 3) <= 2  # every 3rd envelope sample (100 Hz): 33 a second
    snap = feed.tick()
    assert snap["phase"] == "done" and [r["accepted"] for r in snap["repetitions"]] == [True, True]
    assert snap["running_max"][0] >= 0.9 * result.mvc_volts["BFSH"]


def test_a_scripted_session_says_which_muscle_it_waits_for():
    signal = mvc_protocol_signal(joint="knee", subject=1, seed=0, repetitions=1)
    events = []
    with amp(signal) as sim:
        run_mvc_session(sim.address, auto=True, timeout_s=60, config=MvcConfig(repetitions=1, max_attempts=2),
                        say=lambda _: None, on_event=events.append)
    steps = [(e["type"], e.get("muscle")) for e in events if e["type"] not in ("envelope",)]
    assert steps == [("session", None), ("prompt", "BFSH"), ("repetition", "BFSH"), ("prompt", "RF"),
                     ("repetition", "RF"), ("done", None)]
    assert events[1]["text"] == "scripted session: waiting for contractions of BFSH"
