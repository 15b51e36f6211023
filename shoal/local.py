"""Local mode: one crawl on this machine — a private Redis, the coordinator, a worker per sid.

This is what ``shoal run spider.py`` and ``Spider().start()`` do. The coordinator runs in this
process with the spider object itself; workers are separate processes, exactly as in the service.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import WorkerInfo
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.lease import Leases
from shoal.queue import CrawlQueues
from shoal.redis_server import RedisServer
from shoal.specs import shared_secret, store_spec
from shoal.spiders import CrawlResult, CrawlStats, Spider
from shoal.spiders.loader import crawl_spec, spider_source

T = TypeVar("T")
log = logging.getLogger("shoal.local")


@dataclass
class LocalOptions:
    """How to run a crawl locally."""

    redis_url: str | None = None
    workers: dict[str, int] = field(default_factory=dict)  # sid -> worker processes (default 1)
    capacity: int | None = None  # jobs each worker holds at once (default: by session kind)
    output: str | Path | None = None
    args: dict[str, Any] = field(default_factory=dict)
    source: tuple[str, str] | None = None  # (module source, filename) when known
    on_progress: Callable[["Progress"], None] | None = None


@dataclass
class Progress:
    """A snapshot of a running crawl for a progress display."""

    stats: CrawlStats
    queues: dict[str, tuple[int, int, int]]  # sid -> (frontier, queued, in flight)


@contextlib.contextmanager
def _redis_url(url: str | None) -> Iterator[str]:
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


def _exit_with_parent() -> None:
    """In a child before exec: have Linux send it SIGTERM when this process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _start_worker(command: list[str], redis_url: str) -> asyncio.subprocess.Process:
    """Start a worker process that does not outlive this one (on Linux). It gets the Redis URL in its
    environment, not on its command line, where any user of the machine could read the password."""
    preexec = _exit_with_parent if sys.platform == "linux" else None
    env = {**os.environ, "REDIS_URL": redis_url}
    return await asyncio.create_subprocess_exec(*command, preexec_fn=preexec, env=env)


class WorkerProcesses:
    """The worker processes of a local crawl: one per sid unless ``counts`` says otherwise."""

    def __init__(self, spider: Spider, redis_url: str, counts: dict[str, int], capacity: int | None) -> None:
        manager = spider.session_manager
        unknown = set(counts) - set(manager.session_ids)
        if unknown:
            raise ValueError(f"--workers names unknown sids {sorted(unknown)} (sessions: {manager.session_ids})")
        self.redis_url = redis_url
        self.commands = []
        for sid in manager.session_ids:
            command = [sys.executable, "-m", "shoal", "worker", "--log-level", "WARNING"]
            command += ["--kind", manager.get(sid).kind, "--sid", sid]
            command += ["--capacity", str(capacity)] if capacity else []
            self.commands += [command] * counts.get(sid, 1)
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        self.processes = [await _start_worker(command, self.redis_url) for command in self.commands]

    async def wait_ready(self, redis: Redis, timeout: float = 60) -> None:
        """Wait until every worker has registered, so the crawl does not start with half its pools."""
        host = socket.gethostname()

        async def registered() -> None:
            while True:
                records = await redis.hgetall(keys.WORKERS)
                infos = [msgspec.json.decode(raw, type=WorkerInfo) for raw in records.values()]
                running = {process.pid for process in self.processes if process.returncode is None}
                if running <= {i.pid for i in infos if i.host == host}:
                    return
                await asyncio.sleep(0.05)

        await self.guard(asyncio.wait_for(registered(), timeout))

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work`` while supervising the workers: one killed by a signal is started again; one
        that exits by itself (it cannot start, or crashed) cancels ``work`` with a RuntimeError naming it."""
        task = asyncio.ensure_future(work)
        exits = {asyncio.ensure_future(process.wait()): i for i, process in enumerate(self.processes)}
        try:
            while True:
                done, _ = await asyncio.wait([task, *exits], return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    return task.result()
                for exited in done:
                    i, code = exits.pop(exited), exited.result()
                    if code >= 0:
                        raise RuntimeError(f"a worker ({' '.join(self.commands[i][3:])}) exited with code {code}")
                    log.warning("a worker was killed by signal %d; starting another", -code)
                    self.processes[i] = await _start_worker(self.commands[i], self.redis_url)
                    exits[asyncio.ensure_future(self.processes[i].wait())] = i
        finally:
            task.cancel()
            for waiter in exits:
                waiter.cancel()

    async def stop(self) -> None:
        """SIGTERM every worker (they hand back unfinished jobs), kill those still there after 15 s."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _report(engine: CrawlEngine, on_progress: Callable[[Progress], None]) -> None:
    sids = engine.sessions.session_ids
    while True:
        async with engine.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.zcard(keys.frontier(engine.crawl, sid))
                pipe.xlen(keys.queue(engine.crawl, sid))
                pipe.hget(keys.inflight(engine.crawl), sid)
            depths = await pipe.execute()
        queues = {sid: (depths[3 * i], depths[3 * i + 1], int(depths[3 * i + 2] or 0)) for i, sid in enumerate(sids)}
        on_progress(Progress(await engine.stats(), queues))
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _local_crawl(spider: Spider, options: LocalOptions) -> AsyncIterator[tuple[CrawlEngine, WorkerProcesses]]:
    """Register the crawl in a (private) Redis and start its workers; undo both on exit."""
    source, filename = options.source or spider_source(type(spider))
    with _redis_url(options.redis_url) as url:
        redis = Redis.from_url(url)
        crawl_id = f"{spider.name}-{uuid.uuid4().hex[:8]}"
        await store_spec(redis, crawl_spec(crawl_id, spider, source, filename, options.args), shared_secret())
        await redis.hset(keys.state(crawl_id), mapping={"state": "running", "spider": spider.name or ""})
        await redis.sadd(keys.CRAWLS, crawl_id)
        leases = Leases(redis, f"local-{socket.gethostname()}-{os.getpid()}")
        await leases.claim(crawl_id)  # so that a service coordinator on the same Redis leaves it alone
        holding = asyncio.create_task(leases.hold(crawl_id))
        workers = WorkerProcesses(spider, url, options.workers, options.capacity)
        await workers.start()
        try:
            await workers.wait_ready(redis)
            yield CrawlEngine(redis, spider, crawl_id), workers
        finally:
            holding.cancel()
            await CrawlQueues(redis, crawl_id).retire()
            await leases.release(crawl_id)
            await workers.stop()
            await redis.aclose()


async def crawl(spider: Spider, options: LocalOptions) -> CrawlResult:
    """Run ``spider`` to the end on this machine and return its result."""
    async with _local_crawl(spider, options) as (engine, workers):
        reporter = asyncio.create_task(_report(engine, options.on_progress)) if options.on_progress else None
        try:
            spider.stats = await workers.guard(engine.run(options.output))
        finally:
            if reporter:
                reporter.cancel()
        items = await engine.item_list()
    return CrawlResult(stats=spider.stats, items=items, paused=False)


def run_spider(spider: Spider, *, use_uvloop: bool = True, **options: Any) -> CrawlResult:
    """``Spider.start()``: run the crawl locally, blocking until it ends."""
    loop_factory = None
    if use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(crawl(spider, LocalOptions(**options)))


async def stream_spider(spider: Spider, **options: Any) -> AsyncIterator[dict[str, Any]]:
    """``Spider.stream()``: run the crawl locally and yield items as they are stored."""
    async with _local_crawl(spider, LocalOptions(**options)) as (engine, workers):
        run = asyncio.create_task(workers.guard(engine.run()))
        last = "0"
        try:
            while True:
                finished = run.done()  # checked before reading, so the last items are read too
                reply = await engine.redis.xread({keys.items(engine.crawl): last}, count=500, block=200)
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        yield msgspec.json.decode(fields[b"i"])
                if finished and not reply:
                    break
            spider.stats = await run
        finally:
            run.cancel()
