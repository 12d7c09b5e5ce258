"""``myoedge monitor``: serve the live page of a running loop (docs/monitor.md)."""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys

from myoedge.ground.errors import InputError

DEFAULT_UDP = "127.0.0.1:9870"
DEFAULT_PORT = 8765


def add_server_options(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """``--host`` and ``--port`` (with ``prefix``: ``--monitor-host``, ``--monitor-port``)."""
    p.add_argument(f"--{prefix}host", default="127.0.0.1",
                   help="address the page is served on (default 127.0.0.1: this machine only)")
    p.add_argument(f"--{prefix}port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port of the page (default {DEFAULT_PORT}; 0 picks a free one)")


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "monitor", _monitor, help="live view of the running loop in the browser",
                 description="Listen to the datagrams `myoedge run --udp HOST:PORT` sends (estimates, and "
                             "with --status-hz its counters, latency and envelopes) and serve a page that "
                             "shows them live: angle and torque with their validity flags, muscle forces, "
                             "envelopes, frame loss, CRC errors, reconnects, latency. Start it before or "
                             "after the runtime; it only listens. Stops on Ctrl-C or SIGTERM.")
    p.add_argument("--udp", default=DEFAULT_UDP, metavar="HOST:PORT",
                   help=f"where the runtime sends (its --udp; default {DEFAULT_UDP}); a multicast group "
                        "(e.g. 239.255.0.1:9870) is joined, so the controller can listen too")
    p.add_argument("--udp-key", metavar="FILE", help="the runtime's --udp-key: datagrams whose tag fails are "
                   "counted and not shown")
    add_server_options(p)
    p.add_argument("--muscles", nargs="+", metavar="NAME", help="names of the forces, in the bundle's order "
                   "(default F1, F2, ...)")
    p.add_argument("--stale-after", type=float, default=0.5, metavar="S",
                   help="show 'stale' after S seconds without a datagram (default 0.5; at most 1)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until "
                   "interrupted)")


def require_server() -> None:
    """The page's server needs the ``monitor`` extra; say so instead of a traceback."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise InputError("the monitor needs aiohttp: pip install 'myoedge[monitor]'") from None


def check_port(port: int, flag: str) -> int:
    if not 0 <= port <= 65535:
        raise InputError(f"{flag} must be within 0..65535, got {port}")
    return port


def _monitor(args: argparse.Namespace) -> dict:
    from myoedge.edge.loop.publish import parse_host_port
    from myoedge.edge.monitor.run_feed import RunFeed
    from myoedge.edge.monitor.subscriber import open_udp

    require_server()
    host, udp_port = parse_host_port(args.udp)
    check_port(args.port, "--port")
    if not (math.isfinite(args.stale_after) and 0 < args.stale_after <= 1):
        raise InputError(f"--stale-after must be within (0, 1] s, got {args.stale_after:g}")
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    key = None
    if args.udp_key is not None:
        from myoedge.edge.loop.link_auth import load_udp_key

        key = load_udp_key(args.udp_key)
    feed = RunFeed(source=f"udp://{args.udp}", stale_after_s=args.stale_after,
                   muscles=tuple(args.muscles or ()))
    sock = open_udp(host, udp_port)
    return asyncio.run(_serve(feed, sock, key=key, host=args.host, port=args.port, duration_s=args.duration))


async def _serve(feed, sock, *, key, host: str, port: int, duration_s: float | None) -> dict:
    from myoedge.edge.monitor.server import MonitorServer
    from myoedge.edge.monitor.subscriber import subscribe

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    transport = await subscribe(feed, sock, key=key)
    server = None
    try:
        server = await MonitorServer(feed, host=host, port=port).start()
        print(f"monitor: open {server.url} (listening for the runtime on {feed.source})", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), duration_s)
        except asyncio.TimeoutError:
            pass
    finally:
        transport.close()
        if server is not None:
            await server.stop()
    summary = {"url": server.url, "source": feed.source, **feed.summary(), "ticks": server.ticks,
               "slow_clients": server.slow_clients}
    print(f"monitor: stopped: {summary['estimates']} estimates, {summary['statuses']} status datagrams, "
          f"{summary['rejected']} rejected", file=sys.stderr)
    return summary
