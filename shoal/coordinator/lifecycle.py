"""Crawl lifecycle: registering a crawl, the one way a crawl's run ends, and how long an ended crawl's keys stay."""

import os
import time

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.state import ACTIVE, CrawlState
from shoal.coordinator.queues import CrawlQueues
from shoal.store import events

#: Finished, failed and cancelled crawls keep their keys this long (items, stats, state).
RETENTION_S = int(os.environ.get("SHOAL_RETENTION_DAYS", "7")) * 86400


async def register(
    redis: Redis, crawl: str, spider: str, state: CrawlState, *, new: bool = False, **fields: float
) -> bool:
    """List crawl ``crawl`` (of spider ``spider``) in the registry (keys.CRAWLS) with its state hash: ``state``
    and ``fields`` (and the state's event). With ``new``, nothing is written and False returned if a crawl of
    that id exists."""
    if new and not await redis.hsetnx(keys.state(crawl), "state", state):
        return False
    async with redis.pipeline(transaction=True) as pipe:
        events.write_state(pipe, crawl, state=state, spider=spider, **fields)
        pipe.sadd(keys.CRAWLS, crawl)
        await pipe.execute()
    return True


async def end(redis: Redis, crawl: str, state: CrawlState, **fields: float | str) -> None:
    """End a run of crawl ``crawl`` in ``state``, with ``fields`` in its state hash. Paused, its job streams are
    retired and it stays resumable; finished, failed or cancelled, it has ended for good: its streams are retired,
    its share of the per-domain counts given back, and the time written as ``finished``."""
    queues = CrawlQueues(redis, crawl)
    if state == CrawlState.PAUSED:
        await queues.retire()
    else:
        await queues.end()
        fields = {**fields, "finished": time.time()}
    await events.set_state(redis, crawl, state=state, **fields)


async def expire(redis: Redis, crawl: str) -> None:
    """Keep an ended crawl's keys for RETENTION_S seconds (unless a retry made it run again meanwhile)."""
    if (await redis.hget(keys.state(crawl), "state") or b"").decode() in ACTIVE:
        return
    async with redis.pipeline(transaction=False) as pipe:
        async for key in redis.scan_iter(match=keys.crawl_keys(crawl), count=1000):
            pipe.expire(key, RETENTION_S)
        await pipe.execute()
