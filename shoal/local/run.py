"""The local crawl: register it in a (private) Redis, start its workers, run the coordinator's engine here."""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.state import CrawlState
from shoal.coordinator import lifecycle
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.lease import Leases
from shoal.coordinator.queues import CrawlQueues
from shoal.local.crawldir import CrawlDir, crawl_redis
from shoal.local.interrupts import Interrupts
from shoal.local.supervisor import WorkerProcesses
from shoal.spiders import CrawlResult, CrawlStats, Spider
from shoal.spiders.loader import crawl_spec, spider_source
from shoal.spiders.result import check_export_path
from shoal.store.connection import REDIS_DOWN, unreachable
from shoal.store.specs import shared_secret, store_spec

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
    with crawl_redis(options.redis_url, crawldir.path if crawldir else None) as url:
        redis = Redis.from_url(url)
        try:
            await redis.ping()
        except REDIS_DOWN as e:
            raise unreachable(url, e) from e
        crawl_id = crawldir.saved_crawl(spider) if crawldir else None
        if crawl_id and not await redis.exists(keys.state(crawl_id)):
            log.warning("%s names crawl %s, which its Redis no longer holds: starting over", crawldir.path, crawl_id)
            crawl_id = None
        new = not crawl_id
        if new:
            crawl_id = f"{spider.name}-{uuid.uuid4().hex[:8]}"
        else:
            log.info("Resuming crawl %s from %s", crawl_id, crawldir.path)
        if crawldir:
            crawldir.save(crawl_id, spider)
        await store_spec(redis, crawl_spec(crawl_id, spider, source, filename, options.args), shared_secret())
        if new:
            await lifecycle.register(redis, crawl_id, spider.name or "", CrawlState.RUNNING)
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
            if (await redis.hget(keys.state(crawl_id), "state") or b"").decode() == CrawlState.RUNNING:
                # stopped, not ended by its engine (a second Ctrl+C, SIGTERM, an error): with a crawl
                # directory it stays resumable, without one it is over
                await lifecycle.end(redis, crawl_id, CrawlState.PAUSED if crawldir else CrawlState.CANCELLED)
            await leases.release(crawl_id)
            await workers.stop()
            await redis.aclose()


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
            interrupts = Interrupts(engine, run).install()
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
