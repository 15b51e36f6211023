"""The job streams of every crawl, from a worker's side: read jobs, take over those of dead workers,
and finish them.

``finish`` runs the ``finish_job`` Lua script (``shoal/store/lua``): a worker acknowledges a job and
publishes its result only if the acknowledgement succeeded, so a job redelivered to a second worker
never yields two results (nor a job whose stream is gone).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.common import keys
from shoal.store import scripts
from shoal.store.connection import text


@dataclass(slots=True)
class Job:
    """A job as a worker received it."""

    stream: str
    entry_id: str
    payload: bytes
    deliveries: int = 1


#: What Redis answers a worker reading a job stream that vanished: deleted while it was blocked (Redis 7),
#: deleted or its group destroyed (NOGROUP), replaced by a key of another type (WRONGTYPE).
_VANISHED = ("UNBLOCKED", "NOGROUP", "WRONGTYPE")


class JobStreams:
    """The job streams of every crawl's sids of one kind, from a worker's side."""

    def __init__(self, redis: Redis, consumer: str, kind: str, sids: Iterable[str] = ()) -> None:
        self.redis = redis
        self.consumer = consumer
        self.kind = kind
        self.sids = set(sids)
        self.streams: list[str] = []  # the streams read
        self.broken: dict[str, str] = {}  # registered streams that cannot be read, with why
        self._finish = scripts.register(redis, "finish_job")

    async def refresh(self) -> list[str]:
        """Re-read which job streams this worker serves (its kind, and its sids when given), leaving out
        those that cannot be read (a broken stream is checked again each time: it may have been recreated)."""
        registered = await self.redis.hgetall(keys.QUEUES)
        mine = {
            key
            for key, kind in ((text(k), text(v)) for k, v in registered.items())
            if kind == self.kind and (not self.sids or keys.queue_owner(key)[1] in self.sids)
        }
        broken = {}
        for stream in self.broken.keys() & mine:
            if why := await self.unreadable(stream):
                broken[stream] = why
        self.broken = broken
        self.streams = sorted(mine - set(self.broken))
        return self.streams

    async def unreadable(self, stream: str) -> str:
        """Why ``stream`` cannot be read as a job stream ("" when it can)."""
        kind = text(await self.redis.type(stream))
        if kind == "none":
            return "the stream no longer exists"
        if kind != "stream":
            return f"the key now holds a {kind}, not a stream"
        if all(text(group["name"]) != keys.WORKERS_GROUP for group in await self.redis.xinfo_groups(stream)):
            return f"its consumer group '{keys.WORKERS_GROUP}' no longer exists"
        return ""

    async def read(self, count: int, block_ms: int) -> list[Job]:
        """Take up to ``count`` new jobs, waiting up to ``block_ms`` for the first. A stream that vanished
        (deleted, its group destroyed, replaced by another type) moves to ``broken`` and is read no more."""
        if not self.streams:
            return []
        try:
            reply = await self.redis.xreadgroup(
                keys.WORKERS_GROUP, self.consumer, dict.fromkeys(self.streams, ">"), count=count, block=block_ms
            )
        except ResponseError as e:
            if not str(e).startswith(_VANISHED):
                raise
            for stream in self.streams:
                if why := await self.unreadable(stream):
                    self.broken[stream] = why
            self.streams = [stream for stream in self.streams if stream not in self.broken]
            return []
        return [
            Job(text(stream), text(entry_id), fields.get(b"j", b""))
            for stream, entries in reply or ()
            for entry_id, fields in entries
        ]

    async def reclaim(self, count: int, min_idle_ms: int) -> list[Job]:
        """Take over up to ``count`` jobs that other (dead) workers held longer than ``min_idle_ms``."""
        jobs: list[Job] = []
        for stream in self.streams:
            if len(jobs) >= count:
                break
            try:
                _, claimed, *_ = await self.redis.xautoclaim(
                    stream, keys.WORKERS_GROUP, self.consumer, min_idle_ms, count=count - len(jobs)
                )
            except ResponseError:
                continue
            claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
            if not claimed:
                continue
            pending = await self.redis.xpending_range(
                stream, keys.WORKERS_GROUP, min=claimed[0][0], max=claimed[-1][0], count=len(claimed) * 2
            )
            deliveries = {text(p["message_id"]): p["times_delivered"] for p in pending}
            for entry_id, fields in claimed:
                jobs.append(Job(stream, text(entry_id), fields.get(b"j", b""), deliveries.get(text(entry_id), 1)))
        return jobs

    async def touch(self, held: Iterable[Job]) -> None:
        """Reset the idle time of the jobs this worker is still working on, so nobody reclaims them."""
        by_stream: dict[str, list[str]] = {}
        for job in held:
            by_stream.setdefault(job.stream, []).append(job.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xclaim(stream, keys.WORKERS_GROUP, self.consumer, 0, ids, justid=True)
            await pipe.execute(raise_on_error=False)

    async def finish(self, job: Job, result: bytes = b"", dead_reason: str = "") -> bool:
        """Acknowledge ``job`` and publish ``result``; with ``dead_reason`` also dead-letter the job.
        Returns False when another worker already finished the job (nothing is published then)."""
        crawl, _ = keys.queue_owner(job.stream)
        done = await self._finish(
            keys=[job.stream, keys.responses(crawl), keys.dead_letters(crawl), keys.stats(crawl)],
            args=[keys.WORKERS_GROUP, job.entry_id, result, dead_reason, job.payload if dead_reason else b""],
        )
        return bool(done)

    async def release(self, jobs: Iterable[Job], lease_ms: int) -> None:
        """Hand ``jobs`` back: mark them idle for ``lease_ms`` so the next reclaim takes them at once."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.xclaim(
                    job.stream, keys.WORKERS_GROUP, self.consumer, 0, [job.entry_id], idle=lease_ms, justid=True
                )
            await pipe.execute(raise_on_error=False)
