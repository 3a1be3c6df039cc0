"""The web layer of `cellsim view`, kept thin: aiohttp serves the static page and
one WebSocket per tab, hands the tab's messages to its Session and streams back
what the session produces. aiohttp because one well-kept package gives the HTTP
server, WebSockets and a test client, with no ASGI server and socket library to
pair up. All grid work runs on one worker thread, so the event loop stays free
and two tabs' grids never run at once."""
import asyncio
import concurrent.futures
import errno
import ipaddress
import json
import logging
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from ..errors import ConfigError
from . import protocol
from .session import PoolFull, SessionPool

log = logging.getLogger("cellsim.view")
STATIC = Path(__file__).parent / "static"
FRAME_INTERVAL_S = 1 / 60   # at most 60 frames a second
MAX_QUEUED = 256            # messages waiting for a tab's next turn; more are dropped
POOL = web.AppKey("pool", SessionPool)
WORKER = web.AppKey("worker", concurrent.futures.ThreadPoolExecutor)
HOST = web.AppKey("host", str)
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same_origin(request) -> bool:
    """A WebSocket is not bound by the same-origin rule, so any web page the user
    visits could open one to a local port: accept only the page's own origin,
    and on a loopback server only a loopback host name (no DNS rebinding)."""
    origin, host = request.headers.get("Origin"), request.headers.get("Host", "")
    if origin is None or urlsplit(origin).netloc != host:
        return False
    bound = request.app[HOST]
    hostname = urlsplit(f"http://{host}").hostname or ""
    return not is_loopback(bound) or is_loopback(hostname)


async def index(request):
    return web.FileResponse(STATIC / "index.html")


async def websocket(request):
    if not _same_origin(request):
        log.warning("refused a WebSocket from origin %r (host %r)",
                    request.headers.get("Origin"), request.headers.get("Host"))
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    # No per-message deflate: compressing every frame costs more than sending it.
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_CHARS * 4, compress=False)
    await ws.prepare(request)
    pool, worker = request.app[POOL], request.app[WORKER]
    loop = asyncio.get_running_loop()
    try:
        session = await loop.run_in_executor(worker, pool.open)
    except PoolFull as exc:
        await ws.send_json({"kind": "error", "message": str(exc)})
        await ws.close(code=1013, message=b"too many tabs")
        return ws
    log.info("tab %d opened (%d open)", session.sid, len(pool.sessions))
    inbox: list = []
    streaming = asyncio.create_task(_stream(ws, session, inbox, worker))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if len(inbox) < MAX_QUEUED:
                    inbox.append(msg.data)
                else:
                    log.warning("tab %d: message dropped, %d already waiting", session.sid,
                                MAX_QUEUED)
            elif msg.type == WSMsgType.BINARY:
                inbox.append(b"")  # rejected (and logged) by the session, in order
            else:
                break
    finally:
        streaming.cancel()
        try:
            await streaming
        except (asyncio.CancelledError, ConnectionError):
            pass
        pool.close(session)
        log.info("tab %d closed (%d open)", session.sid, len(pool.sessions))
    return ws


async def _stream(ws, session, inbox, worker):
    """The tab's loop: apply its messages, run its grid, send stats and a frame."""
    loop = asyncio.get_running_loop()
    try:
        await ws.send_json(hello(session))
        while not ws.closed:
            started = time.perf_counter()
            texts = inbox[:]
            del inbox[:len(texts)]
            replies, frame = await loop.run_in_executor(worker, session.tick, texts, started)
            for reply in replies:
                await ws.send_str(json.dumps(reply))
            if frame is not None:
                await ws.send_bytes(frame)
            await asyncio.sleep(max(0.0, FRAME_INTERVAL_S - (time.perf_counter() - started)))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:  # noqa: BLE001 - a bug ends this tab, not the server
        log.exception("tab %d failed; closing it", session.sid)
        await ws.close(code=1011, message=b"server error")


def hello(session) -> dict:
    """What the page needs to build its menus: models, clocks, tools, modes, limits."""
    from ..intspec import layout

    return {"kind": "hello", "session": session.sid, "models": session.catalogue.names(),
            "clocks": list(protocol.CLOCKS), "tools": list(protocol.TOOLS),
            "modes": list(protocol.MODES), "channels": layout.CHANNELS,
            "config": vars(session.config).copy(),
            "limits": {"min_side": protocol.MIN_SIDE, "max_side": protocol.MAX_SIDE,
                       "max_radius": protocol.MAX_RADIUS, "min_speed": protocol.MIN_SPEED,
                       "max_speed": protocol.MAX_SPEED, "max_duration": protocol.MAX_DURATION}}


def make_app(pool: SessionPool, host: str = "127.0.0.1") -> web.Application:
    app = web.Application()
    app[POOL] = pool
    app[WORKER] = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cellsim-grid")
    app[HOST] = host
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_static("/static/", STATIC)

    async def stop_worker(app):
        app[WORKER].shutdown(wait=False, cancel_futures=True)
    app.on_cleanup.append(stop_worker)
    return app


async def start(app, host: str, port: int):
    """Listen; -> (runner, url). ConfigError (one line) if the port cannot be had."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use; choose another with "
                              "--port") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}/"


def serve(pool: SessionPool, host: str, port: int, on_ready) -> None:
    """Run the server until interrupted; on_ready(url) once it listens."""
    async def main():
        runner, url = await start(make_app(pool, host), host, port)
        try:
            on_ready(url)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    asyncio.run(main())


class BackgroundServer:
    """The server on a thread of its own (tests, screenshots): .url, .pool, .stop()."""

    def __init__(self, pool: SessionPool, host: str = "127.0.0.1", port: int = 0):
        self.pool = pool
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start(make_app(pool, host), host, port),
                                                  self.loop)
        self.runner, self.url = future.result(timeout=30)

    def call(self, fn, *args):
        """Run fn on the grid worker thread (no tab's grid runs meanwhile); its result."""
        worker = self.runner.app[WORKER]
        return worker.submit(fn, *args).result(timeout=60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
