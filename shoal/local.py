"""Local mode: one crawl on this machine — a private Redis, the coordinator, a worker per sid.

This is what ``shoal run spider.py`` and ``Spider().start()`` do. The coordinator runs in this
process with the spider object itself; workers are separate processes, exactly as in the service.

The private redis-server and the workers run in sessions of their own (shoal.common.processes), so a
terminal's Ctrl+C reaches only this process. The first Ctrl+C pauses: nothing more is dispatched, what
is in flight is processed, and the run returns a result with ``paused=True`` and every item stored so
far (written to ``output`` too). A second Ctrl+C, or SIGTERM, stops at once: what is in flight is left
unprocessed, and the result is the same. With a crawl directory (``Spider(crawldir=...)``,
``shoal run --crawldir``) the crawl's state is kept there (the private redis-server's append-only file
and the crawl's id), and running again resumes it, in-flight requests included; once the crawl
completes the directory's state is removed.
"""

import asyncio
import contextlib
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
from shoal.common.processes import child_options
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.lease import Leases
from shoal.coordinator.queues import CrawlQueues
from shoal.spiders import CrawlResult, CrawlStats, Spider
from shoal.spiders.loader import crawl_spec, spider_source
from shoal.spiders.result import check_export_path
from shoal.store.connection import unreachable
from shoal.store.server import RedisServer
from shoal.store.specs import shared_secret, store_spec

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
        with RedisServer(exit_with_parent=True) as server:
            yield server.url
        return
    # The crawl directory keeps the append-only file; a TCP port, as the directory's path may be too
    # long for a unix socket.
    (crawldir / "redis").mkdir(parents=True, exist_ok=True)
    with RedisServer(directory=crawldir / "redis", appendonly=True, unix_socket=False, exit_with_parent=True) as server:
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


async def _start_worker(command: list[str], redis_url: str) -> asyncio.subprocess.Process:
    """Start a worker process in its own session that does not outlive this one (shoal.common.processes). It
    gets the Redis URL in its environment, not on its command line, where any user of the machine could
    read the password."""
    env = {**os.environ, "REDIS_URL": redis_url}
    return await asyncio.create_subprocess_exec(*command, env=env, **child_options())


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
            # --drain 0: stopped, a worker hands back its jobs at once (a paused crawl has none left)
            command = [sys.executable, "-m", "shoal", "worker", "--log-level", "WARNING", "--drain", "0"]
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
            await asyncio.wait([task])  # it ends (its finally blocks run) before the workers are stopped

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


class _Interrupts:
    """Ctrl+C and SIGTERM from the start of a local crawl's run to the end of ``crawl()``: the first Ctrl+C
    pauses the crawl gracefully; a second one, or SIGTERM, stops it now (cancels ``run``); once the run
    ended, they are noted and the items are still written. Installed only in the main thread (signals go
    there); elsewhere a crawl has no handlers."""

    def __init__(self, engine: CrawlEngine, run: asyncio.Future) -> None:
        self.engine, self.run = engine, run
        self.stopped = ""  # why the run was stopped now, if it was
        self.loop: asyncio.AbstractEventLoop | None = None  # where the handlers are installed

    def _stop(self, why: str) -> None:
        if self.run.done():
            log.warning("%s: the run is already over; writing what it stored and stopping the workers", why)
        elif not self.stopped:
            self.stopped = why
            log.warning("Stopping now (%s): requests in flight are left unprocessed%s", why, self._resume_hint())
            self.run.cancel()

    def _ctrl_c(self) -> None:
        if self.engine.pausing or self.run.done():
            self._stop("Ctrl+C again" if self.engine.pausing else "Ctrl+C")
            return
        log.warning("Pausing: finishing the requests in flight (Ctrl+C again to stop now)%s", self._resume_hint())
        self.engine.pause()

    def _resume_hint(self) -> str:
        crawldir = self.engine.spider.crawldir
        return f"; run again with crawldir {crawldir} to resume" if crawldir else ""

    def install(self) -> "_Interrupts":
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self._ctrl_c)
            loop.add_signal_handler(signal.SIGTERM, self._stop, "SIGTERM")
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread: no handlers
            return self
        self.loop = loop
        return self

    def remove(self) -> None:
        if self.loop:
            self.loop.remove_signal_handler(signal.SIGINT)
            self.loop.remove_signal_handler(signal.SIGTERM)


async def crawl(spider: Spider, options: LocalOptions) -> CrawlResult:
    """Run ``spider`` on this machine until it ends, is paused or stopped, and return its result with every
    item stored; with ``options.output`` the items are written there too (also when paused or stopped)."""
    if options.output:
        check_export_path(options.output)  # a bad extension is an error now, not after the crawl
    interrupts = None
    try:
        async with _local_crawl(spider, options) as (engine, workers):
            reporter = asyncio.create_task(_report(engine, options.on_progress)) if options.on_progress else None
            run = asyncio.ensure_future(workers.guard(engine.run()))
            interrupts = _Interrupts(engine, run).install()
            try:
                spider.stats = await run
            except asyncio.CancelledError:
                if not interrupts.stopped:
                    raise
                spider.stats = await engine.stats()
            finally:
                if reporter:
                    reporter.cancel()
            items = await engine.item_list()
            failed = await CrawlQueues(engine.redis, engine.crawl).failed_requests()
        paused = engine.pausing or bool(interrupts.stopped)
        if options.output:
            items.export(options.output)
    finally:
        if interrupts:
            interrupts.remove()
    if spider.crawldir and not paused:
        CrawlDir(spider.crawldir).clear()
    return CrawlResult(
        stats=spider.stats,
        items=items,
        paused=paused,
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
        last, read = "0", 0
        try:
            while True:
                finished = run.done()  # checked before reading, so the last items are read too
                reply = await engine.redis.xread({keys.items(engine.crawl): last}, count=500, block=200)
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        last, read = entry_id, read + 1
                        # As in Scrapling, the item is counted before it is yielded (the stats of the
                        # commit that stored it may not be read back yet).
                        spider.stats.items_scraped = max(spider.stats.items_scraped, read)
                        yield msgspec.json.decode(fields[b"i"])
                if finished and not reply:
                    break
            spider.stats = await run
        finally:
            run.cancel()
