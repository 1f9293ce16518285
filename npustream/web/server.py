"""The HTTP side of `npustream web` (aiohttp): pages, the event stream and the downloads.

    GET /                 the live transcript page
    GET /overlay          the lower-third overlay (options as URL query parameters)
    GET /events           Server-Sent Events: unnamed events carry the daemon's messages as the
                          ZeroMQ schema's JSON (npustream/protocol/captions.schema.json), named ones
                          `connection` ({"state", "message"}) and `gap` ({"missed"}); a new
                          connection first gets the session so far (Session.replay)
    GET /transcript.srt   the session's finals as SubRip; /transcript.txt as plain text
    GET /static/...       the pages' scripts and styles

Every response forbids scripts and styles from elsewhere (Content-Security-Policy). A browser
that reads too slowly to keep up (CLIENT_QUEUE events behind) is disconnected; its
EventSource reconnects and gets the replay, so it loses nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import time
from importlib import resources
from typing import Any

from aiohttp import web

from npustream import log
from npustream.errors import ConfigError
from npustream.web import DEFAULT_LISTEN
from npustream.web.follow import Follower
from npustream.web.session import Event, Session

logger = log.get(__name__)


CLIENT_QUEUE = 1000  # events queued per browser before it is disconnected
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = resources.files("npustream.web").joinpath("static")
SESSION = web.AppKey("session", Session)
CLIENTS = web.AppKey("clients", set)


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT -> (host, port); port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), got {listen!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sse(event: Event) -> bytes:
    name, body = event
    head = "" if name == "message" else f"event: {name}\n"
    return f"{head}data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


class Client:
    """One browser's /events connection: a bounded queue; None in it ends the connection."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=CLIENT_QUEUE)

    def send(self, event: Event | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # too slow: disconnect it (its EventSource reconnects and replays)
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def _page(name: str):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text=STATIC.joinpath(name).read_text("utf-8"),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    return handler


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {".js": "text/javascript", ".css": "text/css"}
    kind = next((t for ext, t in types.items() if name.endswith(ext)), None)
    path = STATIC.joinpath(name)
    if kind is None or "/" in name or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        text=path.read_text("utf-8"), content_type=kind, headers={"Cache-Control": "no-cache"}
    )


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    client = Client()
    replay = request.app[SESSION].replay()  # no await between these two: nothing falls in between
    request.app[CLIENTS].add(client)
    try:
        await response.write(b"".join(sse(e) for e in replay))
        while (event := await client.queue.get()) is not None:
            await response.write(sse(event))
    except ConnectionError:
        pass  # the browser went away
    finally:
        request.app[CLIENTS].discard(client)
    return response


def _download(fmt: str, media_type: str):
    async def handler(request: web.Request) -> web.Response:
        name = time.strftime(f"npustream-%Y%m%d-%H%M.{fmt}")
        return web.Response(
            text=request.app[SESSION].transcript(fmt),
            content_type=media_type,
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return handler


def build_app(session: Session) -> web.Application:
    app = web.Application(middlewares=[security_headers])
    app[SESSION] = session
    app[CLIENTS] = set()
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/overlay", _page("overlay.html"))
    app.router.add_get("/events", events)
    app.router.add_get("/transcript.srt", _download("srt", "application/x-subrip"))
    app.router.add_get("/transcript.txt", _download("txt", "text/plain"))
    app.router.add_get("/static/{name}", static_file)
    return app


def broadcast(app: web.Application, kind: str, body: dict[str, Any]) -> None:
    """On the event loop: into the session, and to every browser if it is new."""
    if app[SESSION].accept(kind, body):
        for client in list(app[CLIENTS]):
            client.send((kind, body))


async def serve(listen: str, endpoint: str | None, control_endpoint: str | None) -> None:
    host, port = parse_listen(listen)
    app = build_app(Session())
    loop = asyncio.get_running_loop()
    follower = Follower(
        endpoint, control_endpoint, lambda kind, body: loop.call_soon_threadsafe(broadcast, app, kind, body)
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0]  # the real port when port 0 was asked for
    url = f"http://{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}/"
    if not is_loopback(host):
        logger.warning(
            "listening_beyond_loopback",
            host=host,
            message="anyone who can reach this address can read the captions",
        )
    logger.info("web_listening", url=url, overlay=url + "overlay", events=url + "events")
    print(f"npustream web: {url} (overlay: {url}overlay)", flush=True)
    follower.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("web_stopping")
        for client in list(app[CLIENTS]):
            client.send(None)
        await runner.cleanup()
        await asyncio.to_thread(follower.stop)
