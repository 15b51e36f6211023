"""The service as read from Redis: each crawl's state, counts and per-sid queues, and the registered workers."""

import contextlib
import time
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.common import keys
from shoal.common.messages import CrawlSpec, MessageError, WorkerInfo, decode
from shoal.coordinator.stats import stats_from_hash
from shoal.store import heartbeats

#: What decoding a malformed record from Redis raises.
MALFORMED = (MessageError, msgspec.DecodeError)


@dataclass
class SidStatus:
    """Where one sid's work stands: waiting in the frontier, queued for its pool, in flight."""

    sid: str
    kind: str
    frontier: int
    queued: int
    inflight: int
    workers: int  # live workers serving this sid
    pages: int
    pages_per_second: float


@dataclass
class CrawlStatus:
    """A crawl at a glance."""

    crawl: str
    spider: str
    state: str
    owner: str  # the coordinator holding its lease ("" when none)
    pages: int = 0
    items: int = 0
    errors: int = 0
    pages_per_second: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    error: str = ""
    stop_reason: str = ""  # the quota that stopped it, if one did
    sids: dict[str, SidStatus] = field(default_factory=dict)


@dataclass
class WorkerStatus:
    """A registered worker and whether its heartbeat is recent."""

    info: WorkerInfo
    alive: bool

    def serves(self, kind: str, sid: str) -> bool:
        return self.alive and self.info.kind == kind and (not self.info.sids or sid in self.info.sids)


async def read_crawls(redis: Redis) -> list[CrawlStatus]:
    """Every crawl this Redis knows, newest first."""
    workers = await read_workers(redis)
    found = []
    for raw in await redis.smembers(keys.CRAWLS):
        try:
            found.append(await read_crawl(redis, raw.decode(), workers))
        except LookupError:
            continue  # its keys expired
    return sorted(found, key=lambda status: status.started, reverse=True)


async def read_workers(redis: Redis) -> list[WorkerStatus]:
    """Every registered worker, alive or not (a dead one crashed, saying why in ``info.stopped``, or
    stopped sending heartbeats). A dead worker's ``info.held`` counts the jobs it still holds in Redis:
    0 once live workers took them over."""
    records = await heartbeats.read(redis, keys.WORKERS, WorkerInfo)
    found = [WorkerStatus(info, alive) for info, alive in records]
    if any(not worker.alive for worker in found):
        held = await pending_by_consumer(redis)
        for worker in found:
            if not worker.alive:
                worker.info.held = held.get(worker.info.id, 0)
    return sorted(found, key=lambda w: (w.info.kind, w.info.id))


async def pending_by_consumer(redis: Redis) -> dict[str, int]:
    """Jobs delivered and not yet acknowledged, per worker, over every registered job stream."""
    try:
        streams = await redis.hkeys(keys.QUEUES)
    except ResponseError:  # not a hash (someone wrote over it): no streams to count
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xpending(stream, keys.WORKERS_GROUP)
        replies = await pipe.execute(raise_on_error=False)
    held: dict[str, int] = {}
    for reply in replies:
        for consumer in reply.get("consumers", ()) if isinstance(reply, dict) else ():  # a stream gone: none
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            held[name] = held.get(name, 0) + int(consumer["pending"])
    return held


async def read_crawl(redis: Redis, crawl: str, workers: list[WorkerStatus]) -> CrawlStatus:
    """One crawl's state, counts and per-sid queues, with the live ``workers`` serving each sid; LookupError
    when Redis has no such crawl."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.state(crawl))
        pipe.get(keys.spec(crawl))
        pipe.hgetall(keys.stats(crawl))
        pipe.hgetall(keys.inflight(crawl))
        pipe.get(keys.lease(crawl))
        state, raw_spec, raw_stats, inflight, owner = await pipe.execute()
    if not state:
        raise LookupError(f"no crawl {crawl!r}")
    text = {k.decode(): v.decode() for k, v in state.items() if k != b"signature"}
    stats = stats_from_hash(raw_stats)
    started = float(text.get("started", 0) or 0)
    end = float(text.get("finished", 0) or 0) or time.time()
    elapsed = max(end - started, 1e-9) if started else 0.0
    status = CrawlStatus(
        crawl=crawl,
        spider=text.get("spider", ""),
        state=text.get("state", ""),
        owner=owner.decode() if owner else "",
        pages=stats.requests_count,
        items=stats.items_scraped,
        errors=stats.failed_requests_count,
        pages_per_second=stats.requests_count / elapsed if elapsed else 0.0,
        started=started,
        finished=float(text.get("finished", 0) or 0),
        error=text.get("error", ""),
        stop_reason=text.get("stop_reason", ""),
    )
    if raw_spec is None:
        return status
    with contextlib.suppress(*MALFORMED):  # a record that does not decode is skipped
        sessions = decode(raw_spec, CrawlSpec).sessions
        async with redis.pipeline(transaction=False) as pipe:
            for sid in sessions:
                pipe.zcard(keys.frontier(crawl, sid))
                pipe.xlen(keys.queue(crawl, sid))
            depths = await pipe.execute()
        for i, (sid, config) in enumerate(sessions.items()):
            pages = stats.sessions_requests_count.get(sid, 0)
            status.sids[sid] = SidStatus(
                sid=sid,
                kind=config.kind,
                frontier=depths[2 * i],
                queued=depths[2 * i + 1],
                inflight=int(inflight.get(sid.encode(), 0)),
                workers=sum(worker.serves(config.kind, sid) for worker in workers),
                pages=pages,
                pages_per_second=pages / elapsed if elapsed else 0.0,
            )
    return status
