"""The monitor's web server (aiohttp): the static page, and a WebSocket that streams a feed to each tab.

One broadcaster task asks the feed for a tick ``tick_hz`` times a second (30: the page's redraw rate)
and queues the same JSON text for every open tab. A tab that opens gets the feed's hello first (its
bounded history), so a second tab, or a reload, shows the same picture. Each tab's queue is bounded
(``QUEUE_TICKS``); a tab that falls that far behind is closed (its page reconnects and starts afresh)
rather than let memory grow. Binds 127.0.0.1 by default: the page is for this machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from myoedge.ground.errors import InputError

LOG = logging.getLogger("myoedge.monitor")
QUEUE_TICKS = 90  # 3 s at 30 Hz
STATIC = resources.files("myoedge.edge.monitor") / "static"
FEED = web.AppKey("feed", object)
CLIENTS = web.AppKey("clients", set)


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


def _same_origin(request: web.Request) -> bool:
    """A browser says which page opens a WebSocket: only this server's own page may (another site open
    in the same browser must not read the stream)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def _socket(request: web.Request) -> web.WebSocketResponse:
    if not _same_origin(request):
        raise web.HTTPForbidden(text="the monitor's stream is for its own page")
    ws = web.WebSocketResponse(heartbeat=10.0)
    await ws.prepare(request)
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_TICKS)
    clients = request.app[CLIENTS]
    queue.put_nowait(json.dumps(request.app[FEED].hello(), allow_nan=False))
    clients.add(queue)

    async def pump() -> None:
        try:
            while True:
                text = await queue.get()
                if text is None:
                    break
                await ws.send_str(text)
            await ws.close()
        except (ConnectionError, RuntimeError):  # the tab went away mid-send: its handler ends too
            pass

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:  # the page sends nothing; this waits for it to go
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        clients.discard(queue)
        sender.cancel()
    return ws


class MonitorServer:
    """The page and its WebSocket for ``feed`` on ``host:port`` (0: a free port; :attr:`url` says which)."""

    def __init__(self, feed, *, host: str = "127.0.0.1", port: int = 8765, tick_hz: float = 30.0) -> None:
        self.feed, self.host, self.port, self.tick_hz = feed, host, int(port), float(tick_hz)
        self.app = web.Application()
        self.app[FEED] = feed
        self.app[CLIENTS] = set()
        self.app.router.add_get("/", _page)
        self.app.router.add_get("/ws", _socket)
        self.app.router.add_static("/static", STATIC)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self.ticks = self.slow_clients = self.bad_ticks = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        return len(self.app[CLIENTS])

    async def start(self) -> MonitorServer:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise InputError(f"cannot serve the monitor page on {self.host}:{self.port}: {exc.strerror} "
                             "(another monitor? choose another port)") from None
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.create_task(self._broadcast())
        return self

    async def _broadcast(self) -> None:
        period = 1.0 / self.tick_hz
        while True:
            await asyncio.sleep(period)
            try:
                text = json.dumps(self.feed.tick(), allow_nan=False)
            except (TypeError, ValueError):  # a value JSON cannot carry: count it, keep serving
                self.bad_ticks += 1
                if self.bad_ticks == 1:
                    LOG.exception("a monitor tick could not be encoded (further ones are only counted)")
                continue
            self.ticks += 1
            for queue in list(self.app[CLIENTS]):
                try:
                    queue.put_nowait(text)
                except asyncio.QueueFull:  # this tab stopped reading: close it, its page reconnects
                    self.slow_clients += 1
                    self.app[CLIENTS].discard(queue)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for queue in list(self.app[CLIENTS]):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()


class ServerThread:
    """A :class:`MonitorServer` on a thread of its own, for a caller that is not async (the MVC session)."""

    def __init__(self, feed, *, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.server = MonitorServer(feed, host=host, port=port)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="myoedge-monitor", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # handed to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
