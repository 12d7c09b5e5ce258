"""The monitor's server without a browser: the page and its files (nothing from the network), two
WebSocket clients that both get the hello and the ticks, the UDP subscriber feeding it, and the CLI's
refusals."""

from __future__ import annotations

import asyncio
import json
import re
import socket

from browser import free_udp_port

from myoedge.cli import main
from myoedge.edge.loop.estimate import Estimate, Flags, encode_estimate
from myoedge.edge.monitor.run_feed import RunFeed
from myoedge.edge.monitor.server import MonitorServer
from myoedge.edge.monitor.subscriber import open_udp, subscribe


def test_the_page_and_two_tabs_over_websockets_with_datagrams_from_udp():
    import aiohttp

    async def scenario():
        feed = RunFeed(source="udp://127.0.0.1")
        sock = open_udp("127.0.0.1", 0)
        port = sock.getsockname()[1]
        transport = await subscribe(feed, sock)
        server = await MonitorServer(feed, host="127.0.0.1", port=0).start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(server.url) as r:
                    html = await r.text()
                scripts = re.findall(r'(?:src|href)="([^"]+)"', html)
                assert scripts and all(s.startswith("/static/") for s in scripts)  # no CDN: offline
                for path in scripts:
                    async with http.get(server.url.rstrip("/") + path) as r:
                        assert r.status == 200 and len(await r.read()) > 100
                try:  # another site open in the same browser may not read the stream
                    await http.ws_connect(server.url + "ws", origin="http://evil.example")
                    raise AssertionError("a foreign origin was let in")
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 403
                tabs = [await http.ws_connect(server.url + "ws") for _ in range(2)]
                hellos = [json.loads((await t.receive()).data) for t in tabs]
                assert [h["type"] for h in hellos] == ["hello", "hello"] and hellos[0]["state"] == "waiting"
                out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for k in range(30):
                    e = Estimate(index=k, seq=k, timestamp_us=k, theta_rad=0.01 * k, forces_n=(1.0,),
                                 torque_nm=0.0, torque_requested_nm=0.0, flags=Flags(0))
                    out.sendto(encode_estimate(e), ("127.0.0.1", port))
                    await asyncio.sleep(0.01)
                out.close()
                for tab in tabs:  # both tabs get the same ticks, live, with the points
                    seen = []
                    while sum(len(m["points"]) for m in seen) < 10:
                        seen.append(json.loads((await asyncio.wait_for(tab.receive(), 2.0)).data))
                    assert seen[-1]["type"] == "tick" and seen[-1]["state"] == "live"
                    await tab.close()
            assert feed.estimates == 30 and server.ticks > 5
        finally:
            transport.close()
            await server.stop()

    asyncio.run(scenario())


def test_monitor_refuses_a_busy_port_and_bad_options(capsys):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        code = main(["monitor", "--udp", f"127.0.0.1:{free_udp_port()}", "--port", str(busy.getsockname()[1]),
                     "--duration", "1"])
    finally:
        busy.close()
    assert code == 2 and "cannot serve the monitor page" in capsys.readouterr().err
    assert main(["monitor", "--udp", "nonsense"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    assert main(["monitor", "--stale-after", "3"]) == 2
    assert "--stale-after must be within (0, 1]" in capsys.readouterr().err


def test_monitor_runs_for_its_duration_and_says_where(capsys):
    code = main(["monitor", "--udp", f"127.0.0.1:{free_udp_port()}", "--port", "0", "--duration", "0.3",
                 "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and out.startswith("monitor: open http://127.0.0.1:")
    assert summary["estimates"] == 0 and summary["ticks"] >= 3 and "monitor: stopped" in err


def test_a_multicast_group_lets_the_controller_and_monitors_share_one_datagram():
    """The runtime sends once; every socket that joined the group (a controller, monitors) receives it."""
    port = free_udp_port()
    listeners = [open_udp("239.255.0.1", port) for _ in range(2)]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        out.connect(("239.255.0.1", port))
        out.send(b"one datagram")
        for sock in listeners:
            sock.setblocking(True)
            sock.settimeout(2.0)
            assert sock.recv(64) == b"one datagram"
    finally:
        out.close()
        for sock in listeners:
            sock.close()


def test_the_browser_test_fails_with_how_to_install_chromium_when_it_is_absent(monkeypatch, tmp_path):
    import pytest
    from browser import chromium_path

    monkeypatch.delenv("MYOEDGE_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_path()


def test_a_tick_json_cannot_carry_is_counted_and_the_server_keeps_ticking():
    class Feed:
        calls = 0

        def tick(self):
            self.calls += 1
            return {"type": "tick", "bad": float("nan") if self.calls == 2 else 1.0}

    async def scenario():
        server = await MonitorServer(Feed(), port=0, tick_hz=100).start()
        await asyncio.sleep(0.2)
        await server.stop()
        return server

    server = asyncio.run(scenario())
    assert server.bad_ticks == 1 and server.ticks >= 5


def test_monitor_stops_cleanly_on_sigterm_with_its_summary():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "myoedge", "monitor", "--port", "0", "--udp",
                             f"127.0.0.1:{free_udp_port()}", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("monitor: open http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and json.loads(out.strip().splitlines()[-1])["estimates"] == 0
    assert "monitor: stopped" in err
