"""The dashboard's web server: one static page and the JSON API it polls, all read through ``shoal.Client``.

    GET  /api/access                    {"write": whether this request's token may steer crawls}
    GET  /api/crawls                    every crawl with its per-sid queues (newest first)
    GET  /api/crawls/{crawl}            one crawl
    GET  /api/crawls/{crawl}/items?n=   its newest n items (n <= 200), newest first
    GET  /api/crawls/{crawl}/errors?n=  its newest n failures, newest first
    GET  /api/workers                   every registered worker with its heartbeat age
    POST /api/crawls/{crawl}/pause|resume|cancel   (the write token only)

The server keeps no crawl state: every answer is read from Redis when asked. The page keeps the
samples its charts draw (one a second, in the browser's memory).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from redis.exceptions import RedisError

from shoal.client import Client
from shoal.dashboard.access import Access

log = logging.getLogger("shoal.dashboard")

STATIC = Path(__file__).parent / "static"
#: The most items or errors one answer lists.
MAX_LISTED = 200
ACTIONS = ("pause", "resume", "cancel")
CLIENT = web.AppKey("client", Client)
ACCESS = web.AppKey("access", Access)
#: The page loads only its own script and stylesheet, and no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class BadQuery(ValueError):
    """A query parameter out of range; the message names it."""


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the host (without a read token) and the token of every API call; turn failures into JSON
    answers that name them."""
    access = request.app[ACCESS]
    if not access.read and not access.can_read(request):
        return _error(403, "without a read token the dashboard answers only requests to 127.0.0.1 or localhost")
    if request.path.startswith("/api/"):
        if not access.can_read(request):
            return _error(401, "this dashboard needs its token: open it as /#token=TOKEN")
        if request.method == "POST" and not access.can_write(request):
            why = "a valid write token" if access.write else "a write token, and this dashboard has none"
            return _error(403, f"pausing, resuming and cancelling crawls need {why} (--write-token)")
    try:
        response = await handler(request)
    except BadQuery as e:
        response = _error(400, str(e))
    except LookupError as e:
        response = _error(404, str(e.args[0]))
    except RedisError as e:
        log.warning("Redis unreachable: %s", e)
        response = _error(503, "cannot reach the service's Redis")  # the URL may hold a password
    response.headers.update(PAGE_HEADERS)
    return response


def _count(request: web.Request) -> int:
    raw = request.query.get("n", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LISTED:
        raise BadQuery(f"n must be a number from 1 to {MAX_LISTED}, got {raw!r}")
    return int(raw)


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def access_info(request: web.Request) -> web.Response:
    return _json({"write": request.app[ACCESS].can_write(request)})


async def crawls(request: web.Request) -> web.Response:
    return _json(await request.app[CLIENT].crawls())


async def crawl(request: web.Request) -> web.Response:
    return _json(await request.app[CLIENT].crawl(request.match_info["crawl"]).status())


async def items(request: web.Request) -> web.Response:
    return _json(await request.app[CLIENT].crawl(request.match_info["crawl"]).recent_items(_count(request)))


async def errors(request: web.Request) -> web.Response:
    return _json(await request.app[CLIENT].crawl(request.match_info["crawl"]).errors(_count(request)))


async def workers(request: web.Request) -> web.Response:
    now = time.time()
    return _json(
        [
            {**msgspec.structs.asdict(w.info), "alive": w.alive, "heartbeat_age": max(0.0, now - w.info.seen)}
            for w in await request.app[CLIENT].workers()
        ]
    )


async def control(request: web.Request) -> web.Response:
    crawl_id, action = request.match_info["crawl"], request.match_info["action"]
    await getattr(request.app[CLIENT].crawl(crawl_id), action)()
    log.info("%s crawl %s (from %s)", action, crawl_id, request.remote)
    return _json({"crawl": crawl_id, "action": action})


def create_app(redis_url: str, access: Access) -> web.Application:
    """The dashboard's aiohttp application, reading the service on ``redis_url``."""
    app = web.Application(middlewares=[_guard])
    app[ACCESS] = access

    async def client_context(app: web.Application):
        async with Client(redis_url) as client:
            app[CLIENT] = client
            yield

    app.cleanup_ctx.append(client_context)
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/access", access_info)
    app.router.add_get("/api/crawls", crawls)
    app.router.add_get("/api/crawls/{crawl}", crawl)
    app.router.add_get("/api/crawls/{crawl}/items", items)
    app.router.add_get("/api/crawls/{crawl}/errors", errors)
    app.router.add_post(f"/api/crawls/{{crawl}}/{{action:{'|'.join(ACTIONS)}}}", control)
    app.router.add_get("/api/workers", workers)
    return app


class Dashboard:
    """The dashboard served on ``host:port`` (``shoal dashboard``, or inside ``shoal coordinator``)."""

    def __init__(self, redis_url: str, access: Access, host: str = "127.0.0.1", port: int = 8700) -> None:
        access.check_host(host)
        self.app = create_app(redis_url, access)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as e:
            await self._runner.cleanup()
            raise OSError(e.errno, f"the dashboard cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        mode = "pause/resume/cancel with the write token" if self.app[ACCESS].write else "read-only"
        log.info("dashboard on http://%s:%d/ (%s)", self.host, self.port, mode)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
