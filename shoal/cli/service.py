"""The service's processes: ``shoal coordinator``, ``shoal worker`` and ``shoal dashboard`` run until SIGTERM or
Ctrl+C; ``shoal health`` checks one of them."""

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import AuthenticationError, RedisError

from shoal.cli.terminal import error, log_to_console

if TYPE_CHECKING:  # annotations only: `shoal health` imports this module and must stay quick
    from shoal.coordinator.metrics import ServiceCollector


def _serve(make: Callable[[str], Any], args: argparse.Namespace) -> int:
    """Run a service process (``make(redis_url)`` returns an object with ``run(stop)``) until SIGTERM/Ctrl+C,
    saying once why it stops."""
    log_to_console(args.log_level)
    log = logging.getLogger(f"shoal.{args.command}")
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping(sig: signal.Signals) -> None:
            if not stop.is_set():
                log.info("stopping: %s received", sig.name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping, sig)
        await _check_credentials(args.redis)
        await make(args.redis).run(stop)

    try:
        asyncio.run(serve())
    except AuthenticationError as e:
        from shoal.store.connection import masked

        error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
        return 1
    except OSError:  # the caller says what (a dashboard's port in use ...)
        raise
    except Exception:
        log.critical("stopped: crashed", exc_info=True)
        return 1
    return 0


async def _check_credentials(url: str) -> None:
    """Raise AuthenticationError if Redis refuses the URL's password; an unreachable Redis is not an error
    here (the process says so, and waits for it)."""
    from redis.asyncio import Redis

    from shoal.store.connection import unreachable

    redis = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await redis.ping()
    except AuthenticationError:
        raise
    except RedisError as e:
        logging.getLogger("shoal").warning("%s Waiting for it.", unreachable(url, e))
    finally:
        await redis.aclose()


def worker(args: argparse.Namespace) -> int:
    """``shoal worker``: serve one session kind's job streams until SIGTERM or Ctrl+C."""
    from redis.asyncio import Redis

    from shoal.common.metrics import serve
    from shoal.workers.worker import Worker

    def make(url: str) -> Worker:
        pool = Worker(Redis.from_url(url), args.kind, args.sid, capacity=args.capacity, drain=args.drain)
        if args.metrics_port:
            serve(pool.metrics.registry, args.metrics_port)
        return pool

    return _serve(make, args)


class _CoordinatorProcess:
    """The coordinator with its optional metrics endpoint and dashboard."""

    def __init__(self, url: str, metrics_port: int | None, dashboard: Any = None) -> None:
        from redis.asyncio import Redis

        from shoal.coordinator.service import Coordinator
        from shoal.store.specs import shared_secret

        self.url, self.metrics_port, self.dashboard = url, metrics_port, dashboard
        self.coordinator = Coordinator(Redis.from_url(url), url, secret=shared_secret())

    async def run(self, stop: asyncio.Event) -> None:
        from prometheus_client import CollectorRegistry

        from shoal.common.metrics import serve
        from shoal.coordinator.metrics import ServiceCollector

        follower = None
        if self.metrics_port:
            collector, registry = ServiceCollector(), CollectorRegistry()
            registry.register(collector)
            serve(registry, self.metrics_port)
            follower = asyncio.create_task(self._follow(collector))
        if self.dashboard:
            await self.dashboard.start()
        try:
            await self.coordinator.run(stop)
        finally:
            if follower:
                follower.cancel()
            if self.dashboard:
                await self.dashboard.stop()

    async def _follow(self, collector: "ServiceCollector") -> None:
        """Refresh the metrics' snapshot through a client of the service (it rides out Redis restarts)."""
        from shoal.client import Client
        from shoal.coordinator.metrics import follow_service

        async with Client(self.url) as client:
            await follow_service(collector, client.redis)


def _dashboard(args: argparse.Namespace, host: str, port: int) -> Any:
    """The dashboard for ``args``; exits with a message when it would be exposed without a read token."""
    from shoal.dashboard import Access, Dashboard

    access = Access.from_env(getattr(args, "token", None), getattr(args, "write_token", None))
    try:
        return Dashboard(args.redis, access, host, port)
    except ValueError as e:
        error(f"{e}")
        raise SystemExit(2) from None


def coordinator(args: argparse.Namespace) -> int:
    """``shoal coordinator``: accept submitted crawls and run them until SIGTERM or Ctrl+C."""
    board = _dashboard(args, args.dashboard_host, args.dashboard_port) if args.dashboard_port else None
    return _serve(lambda url: _CoordinatorProcess(url, args.metrics_port, board), args)


def dashboard(args: argparse.Namespace) -> int:
    """``shoal dashboard``: serve the web dashboard until SIGTERM or Ctrl+C."""
    board = _dashboard(args, args.host, args.port)
    try:
        return _serve(lambda url: board, args)
    except OSError as e:
        error(f"{e.strerror}")
        return 1


def health(args: argparse.Namespace) -> int:
    """``shoal health``: exit 0 when Redis answers and a ROLE process on this host sent a recent heartbeat
    (a container's health check: it answers at once, without retrying, and imports only what it needs,
    to answer quickly on a loaded machine)."""
    from redis.asyncio import Redis

    from shoal.store.connection import masked, unreachable
    from shoal.store.heartbeats import alive_here

    async def check() -> bool:
        redis = Redis.from_url(args.redis, socket_connect_timeout=2.0)
        try:
            return await alive_here(redis, args.role)
        finally:
            await redis.aclose()

    try:
        alive = asyncio.run(check())
    except AuthenticationError as e:
        error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
        return 1
    except (RedisError, OSError) as e:
        error(str(unreachable(args.redis, e)))
        return 1
    if not alive:
        error(f"no {args.role} on {socket.gethostname()} sent a heartbeat lately")
        return 1
    return 0
