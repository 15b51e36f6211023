"""A site on 127.0.0.1 that misbehaves on purpose: odd bodies, a redirect loop, and a slowloris port.

It runs in a background thread with its own event loop, so both a test's own loop and the loop of
``Spider.start()`` can crawl it.
"""

import asyncio
import socket
import threading

from aiohttp import web

LATIN1 = "<html><body><p>café à la crème</p></body></html>"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused) until someone binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page(name: str) -> str:
    return f"<html><body><h1>{name}</h1></body></html>"


class FaultySite:
    """``url`` serves the pages below; ``slow_url`` dribbles its response headers a byte every 0.1 s
    (a slowloris server) until ``heal()``, then answers ``/page/NAME`` like the rest.

    - ``/page/NAME``: ``<h1>NAME</h1>``
    - ``/links?to=URL&to=URL``: a page linking to each URL
    - ``/loop``: redirects to itself, forever
    - ``/big?kb=N``: an N KB page whose ``<h1>`` comes first
    - ``/binary``: 4 KB of every byte value, as application/octet-stream
    - ``/latin1``: Latin-1 text without any declared charset; ``/latin1-meta``: declared in a meta tag
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.url = self.slow_url = ""
        self.healthy = False
        self.dribbling = 0  # slowloris connections still open
        self.dribbled = 0  # slowloris connections ever opened
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="faulty-site", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    def heal(self) -> None:
        """From now on the slowloris port answers at once."""
        self.healthy = True

    def __enter__(self) -> "FaultySite":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the faulty site did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        slow = await asyncio.start_server(self._slowloris, "127.0.0.1", 0)
        self.slow_url = f"http://127.0.0.1:{slow.sockets[0].getsockname()[1]}"
        self._ready.set()
        await self._stop.wait()
        slow.close()
        await runner.cleanup()

    async def _slowloris(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if self.healthy:
                path = head.split(b" ", 2)[1].decode()
                body = page(path.rsplit("/", 1)[-1]).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                return
            self.dribbling += 1
            self.dribbled += 1
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 600:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)
            finally:
                self.dribbling -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _app(self) -> web.Application:
        def html(text: str, **headers: str) -> web.Response:
            return web.Response(text=text, content_type="text/html", headers=headers)

        async def named(request: web.Request) -> web.Response:
            return html(page(request.match_info["name"]))

        async def links(request: web.Request) -> web.Response:
            return html("".join(f'<a href="{url}">{url}</a>' for url in request.query.getall("to", [])))

        async def loop(request: web.Request) -> web.Response:
            raise web.HTTPFound("/loop")

        async def big(request: web.Request) -> web.Response:
            head = "<html><body><h1>big</h1>"
            return html(head + "x" * (int(request.query["kb"]) * 1024 - len(head)))

        async def binary(request: web.Request) -> web.Response:
            return web.Response(body=bytes(range(256)) * 16, content_type="application/octet-stream")

        async def latin1(request: web.Request) -> web.Response:
            return web.Response(body=LATIN1.encode("latin-1"), headers={"Content-Type": "text/html"})

        async def latin1_meta(request: web.Request) -> web.Response:
            body = LATIN1.replace("<html>", '<html><head><meta charset="iso-8859-1"></head>').encode("latin-1")
            return web.Response(body=body, headers={"Content-Type": "text/html"})

        app = web.Application()
        app.add_routes(
            [
                web.get("/page/{name}", named),
                web.get("/links", links),
                web.get("/loop", loop),
                web.get("/big", big),
                web.get("/binary", binary),
                web.get("/latin1", latin1),
                web.get("/latin1-meta", latin1_meta),
            ]
        )
        return app
