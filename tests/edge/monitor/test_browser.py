"""The monitor in a real browser (Playwright driving Debian's Chromium): the run view against amp-sim +
``myoedge run`` (waiting before the runtime, the angle trace moving, a second tab, stale within 1 s of the
amplifier stopping, and of the runtime stopping) and the MVC view of ``myoedge calibrate mvc --monitor``
(a repetition's verdict). Each view's screenshot goes to $MYOEDGE_SCREENSHOTS (docs/img for the README)
or the test's folder."""

from __future__ import annotations

import signal
import time

from browser import browser, free_udp_port, processes, run_files, screenshot_path
from loop_parts import MUSCLES


def _state(page) -> str:
    return page.get_attribute("#state", "data-state")


def _last_t(page) -> float:
    value = page.get_attribute("#theta-plot", "data-last-t")
    return float(value) if value else -1.0


def test_run_view_waits_follows_theta_and_goes_stale_within_a_second(tmp_path):
    bundle, profile, recording = run_files(tmp_path)
    udp = f"127.0.0.1:{free_udp_port()}"
    with processes() as start, browser() as b:
        monitor = start("monitor", "--udp", udp, "--port", "0", "--muscles", *MUSCLES)
        url = monitor.line("monitor: open ").split()[2]
        page = b.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_function("document.querySelector('#state').dataset.state === 'waiting'", timeout=5000)
        assert "waiting for the runtime" in page.text_content("#state")

        amp = start("amp-sim", "--recording", str(recording), "--tcp", "0")
        port = amp.line("amp-sim: listening on ").split()[-1]
        run = start("run", "--port", port, "--bundle", str(bundle), "--profile", str(profile), "--udp", udp,
              "--status-hz", "20")
        page.wait_for_function("document.querySelector('#state').dataset.state === 'live'", timeout=30000)
        page.wait_for_function("Number(document.querySelector('#theta-plot').dataset.points) > 20",
                               timeout=10000)
        first = _last_t(page)
        time.sleep(0.5)
        assert _last_t(page) > first + 0.3, "the θ trace did not move"
        # the status datagrams: frame counters and latency reach the page
        page.wait_for_function("document.querySelector('#counters').textContent.includes('CRC errors')",
                               timeout=5000)
        assert "latency p50" in page.text_content("#counters")

        other = b.new_page(viewport={"width": 1280, "height": 900})  # a second tab sees the same stream
        other.goto(url)
        other.wait_for_function("Number(document.querySelector('#theta-plot').dataset.points) > 20",
                                timeout=10000)
        assert _state(other) == "live"
        page.hover("#theta-plot .u-over")
        page.screenshot(path=str(screenshot_path(tmp_path, "monitor-run.png")))

        amp.stop(signal.SIGKILL)  # the amplifier goes away
        stopped = time.monotonic()
        page.wait_for_function("document.querySelector('#state').dataset.state === 'stale'", timeout=1000)
        took = time.monotonic() - stopped
        print(f"page stale {took * 1e3:.0f} ms after the amplifier stopped")
        assert took < 1.0 and "amplifier" in page.text_content("#state")
        other.wait_for_function("document.querySelector('#state').dataset.state === 'stale'", timeout=1000)
        page.screenshot(path=str(screenshot_path(tmp_path, "monitor-run-stale.png")))

        assert run.stop() == 0  # the runtime itself stops: its datagrams end
        stopped = time.monotonic()
        page.wait_for_function("document.querySelector('#state').textContent.includes('no datagram')",
                               timeout=1000)
        assert time.monotonic() - stopped < 1.0 and _state(page) == "stale"


def test_mvc_view_shows_the_muscle_the_countdown_and_each_repetition_verdict(tmp_path):
    """A guided session against amp-sim's MVC protocol, whose timing (rest 3 s, contraction 5 s) is the
    guided default: the page shows the prompt, the countdown, GO, and each verdict."""
    with processes() as start, browser() as b:
        amp = start("amp-sim", "--protocol", "mvc", "--joint", "knee", "--tcp", "0", "--rate", "1000",
                    "--mvc-repetitions", "1")
        port = amp.line("amp-sim: listening on ").split()[-1]
        mvc = start("calibrate", "mvc", "--port", port, "--joint", "knee", "--subject", "k01",
                    "--out", str(tmp_path / "k01.json"), "--repetitions", "1", "--monitor", "--monitor-port",
                    "0", "--json")
        url = mvc.line("monitor: open ").split()[2]
        page = b.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_function("['3', '2', '1'].includes(document.querySelector('#countdown').textContent)",
                               timeout=15000)
        assert "BFSH, repetition 1: relax" in page.text_content("#prompt")
        page.wait_for_function("document.querySelector('#prompt').dataset.phase === 'hold'", timeout=10000)
        assert page.text_content("#prompt").startswith("GO: contract BFSH")
        page.wait_for_selector("#reps li", timeout=15000)
        verdict = page.text_content("#reps li")
        assert verdict.startswith("BFSH #1: ") and ("accepted" in verdict or "rejected" in verdict)
        page.wait_for_function("document.querySelector('#prompt').dataset.phase === 'hold'", timeout=10000)
        page.wait_for_timeout(1500)  # RF's contraction under way
        page.screenshot(path=str(screenshot_path(tmp_path, "monitor-mvc.png")))
        assert mvc.proc.wait(timeout=30) == 0, mvc.err[-5:]
    assert (tmp_path / "k01.json").exists()
