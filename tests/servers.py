"""Serving a test's aiohttp app on 127.0.0.1 from a background thread, over HTTP and, when asked, over
HTTPS with a self-signed certificate (browsers told to skip certificate checks reach it by any name)."""

import asyncio
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


def self_signed(hosts: tuple[str, ...]) -> ssl.SSLContext:
    """A server TLS context with a new self-signed certificate for ``hosts`` (openssl makes it)."""
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        names = ",".join(f"IP:{host}" if host[0].isdigit() else f"DNS:{host}" for host in hosts)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
             "-out", str(cert), "-subj", f"/CN={hosts[0]}", "-addext", f"subjectAltName={names}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    return context


@dataclass
class Served:
    """An app being served: ``url`` (HTTP), ``tls_port`` (HTTPS, 0 when not asked for)."""

    url: str
    tls_port: int
    stop: Callable[[], None]


def serve(app: web.Application, tls_hosts: tuple[str, ...] = ()) -> Served:
    """Serve ``app`` on 127.0.0.1 (and over HTTPS for ``tls_hosts``, if any) until ``stop()``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []
    tls = self_signed(tls_hosts) if tls_hosts else None

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        if tls is not None:
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        ports.extend(address[1] for address in runner.addresses)
        return runner

    def thread() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    worker = threading.Thread(target=thread, name="test-server", daemon=True)
    worker.start()
    if not ready.wait(30):
        raise RuntimeError("the test server did not start")

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        worker.join(10)

    return Served(f"http://127.0.0.1:{ports[0]}", ports[1] if tls is not None else 0, stop)
