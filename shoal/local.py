"""Local mode: one crawl on this machine — a private Redis, the coordinator, a worker per sid.

This is what ``shoal run spider.py`` and ``Spider().start()`` do. The coordinator runs in this
process with the spider object itself; workers are separate processes, exactly as in the service.

Ctrl+C pauses: nothing more is dispatched, what is in flight is processed, and the run returns a
result with ``paused=True``; a second Ctrl+C stops at once. With a crawl directory
(``Spider(crawldir=...)``, ``shoal run --crawldir``) the crawl's state is kept there (the private
redis-server's append-only file and the crawl's id), and running again resumes it; once the crawl
completes the directory's state is removed.
"""

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shoal.common import keys
from shoal.common.messages import WorkerInfo
from shoal.connection import unreachable
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.lease import Leases
from shoal.queue import CrawlQueues
from shoal.redis_server import RedisServer
from shoal.specs import shared_secret, store_spec
from shoal.spiders import CrawlResult, CrawlStats, Spider
from shoal.spiders.loader import crawl_spec, spider_source
from shoal.spiders.result import check_export_path

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
def _redis_url(url: str | None, crawldir: Path | None) -> Iterator[str]:
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if crawldir is None:
        with RedisServer() as server:
            yield server.url
        return
    # The crawl directory keeps the append-only file; a TCP port, as the directory's path may be too
    # long for a unix socket.
    (crawldir / "redis").mkdir(parents=True, exist_ok=True)
    with RedisServer(directory=crawldir / "redis", appendonly=True, unix_socket=False) as server:
        yield server.url


class CrawlDir:
    """A crawl directory: which crawl it holds (``crawl.json``) and, in local mode, its Redis data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.record = path / "crawl.json"

    def saved_crawl(self, spider: Spider) -> str | None:
        """The id of the crawl this directory holds for ``spider``, if any."""
        if not self.record.exists():
            return None
        saved = json.loads(self.record.read_text())
        if saved.get("spider") != spider.name:
            raise ValueError(f"{self.path} holds a crawl of spider {saved.get('spider')!r}, not {spider.name!r}")
        return saved["crawl"]

    def save(self, crawl: str, spider: Spider) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps({"crawl": crawl, "spider": spider.name}))

    def clear(self) -> None:
        """Forget the crawl: it completed."""
        self.record.unlink(missing_ok=True)
        shutil.rmtree(self.path / "redis", ignore_errors=True)


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
    crawldir = CrawlDir(spider.crawldir) if spider.crawldir else None
    with _redis_url(options.redis_url, crawldir.path if crawldir else None) as url:
        redis = Redis.from_url(url)
        try:
            await redis.ping()
        except (RedisConnectionError, RedisTimeoutError) as e:
            raise unreachable(url, e) from e
        crawl_id = crawldir.saved_crawl(spider) if crawldir else None
        if crawl_id and not await redis.exists(keys.state(crawl_id)):
            log.warning("%s names crawl %s, which its Redis no longer holds: starting over", crawldir.path, crawl_id)
            crawl_id = None
        if crawl_id:
            log.info("Resuming crawl %s from %s", crawl_id, crawldir.path)
        else:
            crawl_id = f"{spider.name}-{uuid.uuid4().hex[:8]}"
            await redis.hset(keys.state(crawl_id), mapping={"state": "running", "spider": spider.name or ""})
        if crawldir:
            crawldir.save(crawl_id, spider)
        await store_spec(redis, crawl_spec(crawl_id, spider, source, filename, options.args), shared_secret())
        await redis.sadd(keys.CRAWLS, crawl_id)
        leases = Leases(redis, f"local-{socket.gethostname()}-{os.getpid()}")
        await leases.claim(crawl_id)  # so that a service coordinator on the same Redis leaves it alone
        holding = asyncio.create_task(leases.hold(crawl_id))
        manager = spider.session_manager  # the job streams first: each worker finds them as it starts
        await CrawlQueues(redis, crawl_id).create({sid: manager.get(sid).kind for sid in manager.session_ids})
        workers = WorkerProcesses(spider, url, options.workers, options.capacity)
        await workers.start()
        try:
            await workers.wait_ready(redis)
            yield CrawlEngine(redis, spider, crawl_id), workers
        finally:
            holding.cancel()
            queues = CrawlQueues(redis, crawl_id)
            if spider.crawldir:  # resumable: it keeps its part of the shared per-domain counts
                await queues.retire()
            else:
                await queues.end()
            await leases.release(crawl_id)
            await workers.stop()
            await redis.aclose()


@contextlib.contextmanager
def _pause_on_ctrl_c(engine: CrawlEngine) -> Iterator[None]:
    """First Ctrl+C: pause the crawl gracefully; second: stop at once (KeyboardInterrupt)."""
    loop = asyncio.get_running_loop()

    def pause() -> None:
        if engine.pausing:
            raise KeyboardInterrupt
        where = f"; run again with crawldir {engine.spider.crawldir} to resume" if engine.spider.crawldir else ""
        log.warning("Pausing: finishing the requests in flight (Ctrl+C again to stop now)%s", where)
        engine.pause()

    try:
        loop.add_signal_handler(signal.SIGINT, pause)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread: no handler
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def crawl(spider: Spider, options: LocalOptions) -> CrawlResult:
    """Run ``spider`` on this machine until it ends (or is paused) and return its result."""
    if options.output:
        check_export_path(options.output)  # a bad extension is an error now, not after the crawl
    async with _local_crawl(spider, options) as (engine, workers):
        reporter = asyncio.create_task(_report(engine, options.on_progress)) if options.on_progress else None
        try:
            with _pause_on_ctrl_c(engine):
                spider.stats = await workers.guard(engine.run(options.output))
        finally:
            if reporter:
                reporter.cancel()
        items = await engine.item_list()
        failed = [failed for _, failed in await CrawlQueues(engine.redis, engine.crawl).failed()]
    if spider.crawldir and not engine.pausing:
        CrawlDir(spider.crawldir).clear()
    return CrawlResult(
        stats=spider.stats,
        items=items,
        paused=engine.pausing,
        stop_reason=engine.stop_reason,
        crawl_id=engine.crawl,
        failed=failed,
    )


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
