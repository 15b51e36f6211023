"""The demo shop: paginated listings of products, product pages, and endpoints that tests poke at.

Pages are generated from the product number, so the site is the same every time and a test can
compute exactly which items a crawl must find (``ShopSite.expected_items``).
"""

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

FILLER = (
    "<p>This sturdy item is made of fine materials, tested for years of daily use and shipped in "
    "recyclable packaging. Customers praise its finish, its weight and its price.</p>\n"
)


@dataclass
class ShopSite:
    """A shop of ``products`` products, ``per_page`` to a listing page, product pages of ``product_kb`` KB."""

    products: int = 100
    per_page: int = 20
    product_kb: tuple[int, int] = (15, 30)
    #: Requests whose User-Agent contains this get a 403 block page (for escalation tests).
    blocked_agent: str = ""
    #: Seconds every page takes to answer (for tests that act on a running crawl).
    delay: float = 0.0

    @property
    def pages(self) -> int:
        return -(-self.products // self.per_page)

    def name(self, n: int) -> str:
        return f"Product {n}"

    def price(self, n: int) -> str:
        return f"${(n * 37) % 990 + 10}.{(n * 13) % 100:02d}"

    def expected_items(self) -> list[dict[str, str]]:
        """The items a spider taking ``h1::text`` and ``.price::text`` from every product page finds."""
        return [{"name": self.name(n), "price": self.price(n)} for n in range(1, self.products + 1)]

    def listing(self, page: int) -> str:
        first = (page - 1) * self.per_page + 1
        links = "".join(
            f'<li><a class="product" href="/product/{n}">{self.name(n)}</a></li>'
            for n in range(first, min(first + self.per_page, self.products + 1))
        )
        more = f'<a class="next" href="/products?page={page + 1}">next</a>' if page < self.pages else ""
        return f"<html><head><title>Products, page {page}</title></head><body><ul>{links}</ul>{more}</body></html>"

    def product(self, n: int) -> str:
        low, high = self.product_kb
        size = (low + (n * 7919) % (high - low + 1)) * 1024
        related = "".join(
            f'<a class="related" href="/product/{(n * k) % self.products + 1}">related</a>' for k in (3, 5, 7)
        )
        head = (
            f"<html><head><title>{self.name(n)}</title></head><body><h1>{self.name(n)}</h1>"
            f'<span class="price">{self.price(n)}</span><div class="related">{related}</div>'
        )
        return head + FILLER * max(0, (size - len(head)) // len(FILLER)) + "</body></html>"


@dataclass
class RunningSite:
    """A ShopSite being served: its base ``url`` and a log of the requests it answered."""

    site: ShopSite
    url: str = ""
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, method, path with query)
    active: int = 0  # requests being answered now
    peak: int = 0  # the most answered at once
    _stop: Callable[[], None] | None = None

    def hits(self, path: str) -> int:
        """How many requests asked for ``path`` (with its query string, if given)."""
        return sum(1 for _, _, seen in self.log if seen == path or seen.split("?")[0] == path)

    def stop(self) -> None:
        if self._stop:
            self._stop()
            self._stop = None

    def __enter__(self) -> "RunningSite":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _app(running: RunningSite) -> web.Application:
    site = running.site
    blocked_keys: set[str] = set()

    @web.middleware
    async def record(request: web.Request, handler):
        running.log.append((time.time(), request.method, request.path_qs))
        if site.blocked_agent and site.blocked_agent in request.headers.get("User-Agent", ""):
            return html("<h1>blocked</h1>", 403)
        running.active += 1
        running.peak = max(running.peak, running.active)
        try:
            if site.delay:
                await asyncio.sleep(site.delay)
            return await handler(request)
        finally:
            running.active -= 1

    def html(text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="text/html")

    async def products(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        return html(site.listing(page)) if 1 <= page <= site.pages else html("no such page", 404)

    async def product(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return html(site.product(n)) if 1 <= n <= site.products else html("no such product", 404)

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "cookies": dict(request.cookies),
            }
        )

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query.get("to", "/echo"))

    async def blocked_once(request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in blocked_keys:
            blocked_keys.add(key)
            return html("<h1>blocked</h1>", 403)
        return html(f"<h1>ok {key}</h1>")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return html(f"<h1>status {code}</h1>", code)

    async def offsite(request: web.Request) -> web.Response:
        return html('<a href="http://offsite.invalid/page">away</a><a href="/product/1">home</a>')

    async def dupes(request: web.Request) -> web.Response:
        links = '<a href="/product/2">p</a>' * 5
        links += '<a href="/product/2#reviews">p</a><a href="/echo?b=2&a=1">e</a><a href="/echo?a=1&b=2">e</a>'
        return html(links)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return html("<h1>slow</h1>")

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.json_response({"set": True})
        response.set_cookie(request.query.get("name", "a"), request.query.get("value", "b"))
        return response

    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=bytes((i * 31) % 256 for i in range(4096)), content_type="application/octet-stream")

    async def latin1(request: web.Request) -> web.Response:
        body = "<html><body><p>café à la crème</p></body></html>".encode("latin-1")
        return web.Response(body=body, headers={"Content-Type": "text/html; charset=ISO-8859-1"})

    async def js_delayed(request: web.Request) -> web.Response:
        delay = int(request.query.get("ms", "500"))
        return html(
            "<html><body><div id='root'></div><script>setTimeout(() => {"
            f"document.getElementById('root').innerHTML = '<div class=\"loaded\">ready</div>'}}, {delay})"
            "</script></body></html>"
        )

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow:\n", content_type="text/plain")

    app = web.Application(middlewares=[record], client_max_size=64 * 2**20)
    app.add_routes(
        [
            web.get("/products", products),
            web.get("/product/{n:\\d+}", product),
            web.route("*", "/echo", echo),
            web.get("/redirect", redirect),
            web.get("/blocked-once", blocked_once),
            web.route("*", "/status/{code:\\d+}", status),
            web.get("/offsite", offsite),
            web.get("/dupes", dupes),
            web.get("/slow", slow),
            web.get("/set-cookie", set_cookie),
            web.get("/binary", binary),
            web.get("/latin1", latin1),
            web.get("/js-delayed", js_delayed),
            web.get("/robots.txt", robots),
        ]
    )
    return app


def serve_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` (over HTTPS with ``ssl_context``) from a background thread with its own event loop; returns
    its base URL and a function that stops it, once it listens."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    bound: list[int] = []

    async def serve() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=1024, ssl_context=ssl_context).start()
        bound.append(runner.addresses[0][1])
        return runner

    def thread() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    worker = threading.Thread(target=thread, name="shoal-demo-site", daemon=True)
    worker.start()
    ready.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        worker.join(10)

    return f"{'https' if ssl_context else 'http'}://{host}:{bound[0]}", stop


def start_site(site: ShopSite, host: str = "127.0.0.1", port: int = 0) -> RunningSite:
    """Serve ``site`` from a background thread with its own event loop; returns once it listens."""
    running = RunningSite(site)
    running.url, running._stop = serve_app(_app(running), host, port)
    return running


def main() -> None:
    """``python -m shoal.demo``: serve the shop in the foreground."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m shoal.demo",
        description="Serve the demo shop until Ctrl+C; prints its URL as JSON once it listens.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--products", type=int, default=500, help="products in the shop (default 500)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every page takes to answer (default 0)")
    args = parser.parse_args()
    running = start_site(ShopSite(products=args.products, delay=args.delay), host=args.host, port=args.port)
    print(json.dumps({"url": running.url, "products": args.products}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        running.stop()
