"""The data plane: frontier, dispatch queues and responses of a crawl, as Redis structures and Lua.

Every state change is one Lua script, so it happens whole or not at all:

- ``commit``: acknowledge a processed response and, atomically with it, store its items, deduplicate
  and schedule its requests, count its stats and release its in-flight slot. A coordinator that dies
  mid-callback leaves the response pending, and its successor processes it again from scratch.
- ``dispatch``: move requests from a sid's frontier to its job stream as capacity and politeness allow.
- ``finish_job``: a worker acknowledges a job and publishes its result only if the acknowledgement
  succeeded, so a job redelivered to a second worker never yields two results (nor a job whose stream
  is gone).
- ``replay``: in development mode, answer a request from the coordinator's response cache: it
  leaves the replay set and its response enters the response stream in one step.

Frontier entries are members of a sorted set, all scored 0 so Redis orders them by bytes:
``16 hex digits of (2**63 - 1 - priority)`` + ``17-digit sequence`` + ``domain`` + ``\\n`` + job.
Higher priority sorts first, then FIFO.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.common import keys
from shoal.common.messages import FailedRequest, MessageError, decode
from shoal.common.meta import from_wire
from shoal.store import scripts

_MAX_PRIORITY = 2**63 - 1
#: The layout of a frontier entry, which the Lua scripts read through ARGV: the format of its sequence
#: number, where its domain starts (0-based), and the byte that ends the domain.
SEQUENCE_FORMAT = "%017d"
DOMAIN_AT = 16 + 17
DOMAIN_END = b"\n"
#: Jobs no worker took for this long mark their pool as down: they stop holding other sids' slots.
STALE_MS = 1000


def frontier_member(priority: int, domain: str, job: bytes) -> tuple[bytes, bytes]:
    """The priority prefix and the tail (domain, newline, job) of a frontier entry."""
    if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
        raise ValueError(f"priority {priority} is out of range (a 64-bit integer)")
    return b"%016x" % (_MAX_PRIORITY - priority), domain.encode() + DOMAIN_END + job


@dataclass(slots=True)
class Scheduled:
    """A request ready for the frontier: its sid, fingerprint, and encoded entry."""

    sid: str
    fp: bytes
    dont_filter: bool
    prefix: bytes
    tail: bytes
    key: str = ""  # the sorted set it goes to when not its sid's frontier (replay, held for robots.txt, disallowed)


@dataclass(slots=True)
class Commit:
    """What processing one response produced, to be stored atomically with its acknowledgement."""

    response_id: str = ""
    sid: str = ""
    domain: str = ""
    requests: Sequence[Scheduled] = ()
    items: Sequence[bytes] = ()
    stats: dict[str, int] | None = None
    failed: bytes = b""  # a FailedRequest when the fetch failed


@dataclass(slots=True)
class DispatchResult:
    sent: int
    wait_ms: int
    frontier: int
    inflight: int
    dispatched: int  # by the crawl in all


class CrawlQueues:
    """One crawl's frontier, job streams and response stream, from the coordinator's side."""

    def __init__(self, redis: Redis, crawl: str, consumer: str = "coordinator") -> None:
        self.redis = redis
        self.crawl = crawl
        self.consumer = consumer
        self._commit = scripts.register(redis, "commit")
        self._dispatch = scripts.register(redis, "dispatch")
        self._replay = scripts.register(redis, "replay")
        self._release_domains = scripts.register(redis, "release_domains")
        self._dead_response = scripts.register(redis, "dead_response")
        self._requeue = scripts.register(redis, "requeue")

    async def create(self, sids_by_kind: dict[str, str]) -> None:
        """Create the response stream and each sid's job stream with their consumer groups, and
        register the job streams so that workers of the right kind find them."""
        streams = [(keys.responses(self.crawl), keys.COORDINATOR_GROUP)]
        streams += [(keys.queue(self.crawl, sid), keys.WORKERS_GROUP) for sid in sids_by_kind]
        for key, group in streams:
            try:
                await self.redis.xgroup_create(key, group, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
        await self.redis.hset(
            keys.QUEUES, mapping={keys.queue(self.crawl, sid): kind for sid, kind in sids_by_kind.items()}
        )

    async def retire(self) -> None:
        """Unregister the crawl's job streams: workers stop reading them and close its sessions."""
        streams = [
            key
            for key, _ in (await self.redis.hgetall(keys.QUEUES)).items()
            if _text(key).startswith(keys.queue(self.crawl, ""))
        ]
        if streams:
            await self.redis.hdel(keys.QUEUES, *streams)

    async def commit(self, commits: Iterable[Commit]) -> list[int]:
        """Store each commit atomically; returns per commit the number of new requests (-1: already done).

        Failed requests are recorded first, keyed by response id, so that a commit interrupted after
        that and done again records each of them once."""
        base = [
            keys.responses(self.crawl),
            keys.seen(self.crawl),
            keys.sequence(self.crawl),
            keys.stats(self.crawl),
            keys.items(self.crawl),
            keys.inflight(self.crawl),
            keys.domain_inflight(self.crawl),
            keys.DOMAIN_INFLIGHT,
        ]
        commits = list(commits)
        failed = {commit.response_id: commit.failed for commit in commits if commit.failed}
        async with self.redis.pipeline(transaction=False) as pipe:
            if failed:
                pipe.hset(keys.failed(self.crawl), mapping=failed)
            for commit in commits:
                frontier_keys: dict[str, int] = {}
                args: list[str | bytes | int] = [
                    commit.response_id,
                    commit.sid,
                    commit.domain,
                    len(commit.requests),
                    len(commit.items),
                    len(commit.stats or ()),
                    keys.COORDINATOR_GROUP,
                    keys.ITEMS_MAXLEN,
                    SEQUENCE_FORMAT,
                ]
                for request in commit.requests:
                    target = request.key or keys.frontier(self.crawl, request.sid)
                    index = frontier_keys.setdefault(target, len(base) + len(frontier_keys) + 1)
                    args += [index, request.fp, int(request.dont_filter), request.prefix, request.tail]
                args += commit.items
                for name, value in (commit.stats or {}).items():
                    args += [name, value]
                extra = list(frontier_keys)
                await self._commit(keys=base + extra, args=args, client=pipe)
            results = await pipe.execute()
        return results[1:] if failed else results

    async def dead_letter_response(self, entry_id: str, reason: str) -> None:
        """Acknowledge a response entry that is not a valid response and move it to the dead letters."""
        await self._dead_response(
            keys=[keys.responses(self.crawl), keys.dead_letters(self.crawl), keys.stats(self.crawl)],
            args=[keys.COORDINATOR_GROUP, entry_id, reason],
        )

    async def failed(self) -> list[tuple[bytes, FailedRequest]]:
        """The recorded failed requests with their hash field, oldest first (a record that does not decode
        is left out, and stays where it is)."""
        found = []
        for field, raw in (await self.redis.hgetall(keys.failed(self.crawl))).items():
            try:
                found.append((field, decode(raw, FailedRequest)))
            except MessageError:
                continue
        return sorted(found, key=lambda pair: (pair[1].time, pair[0]))

    async def failed_requests(self) -> list[FailedRequest]:
        """The recorded failed requests as a user reads them, oldest first: their meta with its own types."""
        found = []
        for _, failed in await self.failed():
            request = msgspec.structs.replace(failed.request, meta=from_wire(failed.request.meta))
            found.append(msgspec.structs.replace(failed, request=request))
        return found

    async def requeue(self, entries: Iterable[tuple[bytes, Scheduled]]) -> int:
        """Move failed requests (failed hash field, request) back to their frontiers, bypassing
        deduplication; a field already gone (retried by someone else) is skipped. Returns how many moved."""
        base = [keys.failed(self.crawl), keys.sequence(self.crawl)]
        frontier_keys: dict[str, int] = {}
        args: list[str | bytes | int] = [SEQUENCE_FORMAT]
        for field, request in entries:
            index = frontier_keys.setdefault(request.sid, len(base) + len(frontier_keys) + 1)
            args += [field, index, request.prefix, request.tail]
        if not frontier_keys:
            return 0
        extra = [keys.frontier(self.crawl, sid) for sid in frontier_keys]
        return int(await self._requeue(keys=base + extra, args=args))

    async def dispatch(
        self, sids: list[str], capacity: int, per_domain: int, delay_ms: int, turn: int = 0, budget: int = -1
    ) -> DispatchResult:
        """Move requests from the sids' frontiers to their job streams, as far as politeness allows.

        ``capacity`` bounds the requests in flight across all sids: jobs workers hold, responses not
        yet processed, and jobs waiting in a stream. Jobs that waited longer than ``stale_ms``
        without a worker taking them stop counting for the other sids, so a sid whose pool is down
        never holds another sid's slots; each sid's waiting jobs stay bounded by ``capacity``.
        ``per_domain`` bounds each domain's requests in flight over every crawl (0: no bound); two requests
        to a domain are at least its own delay apart (``keys.domain_delay``), else ``delay_ms``.
        ``turn`` rotates which sid is served first. ``budget`` caps the requests the crawl dispatches in
        all (counted in its stats as ``requests_dispatched``); -1 for no cap.
        """
        stream_keys = [key for sid in sids for key in (keys.frontier(self.crawl, sid), keys.queue(self.crawl, sid))]
        result = await self._dispatch(
            keys=[
                keys.inflight(self.crawl),
                keys.domain_inflight(self.crawl),
                keys.DOMAIN_NEXT,
                keys.stats(self.crawl),
                keys.DOMAIN_INFLIGHT,
                *stream_keys,
                keys.domain_delay(self.crawl),
            ],
            args=[
                capacity,
                per_domain,
                delay_ms,
                max(4 * capacity, 64),
                turn % len(sids),
                keys.WORKERS_GROUP,
                STALE_MS,
                budget,
                DOMAIN_AT + 1,  # Lua counts from 1
                DOMAIN_END,
                *sids,
            ],
        )
        return DispatchResult(*(int(x) for x in result))

    async def to_replay(self, count: int) -> list[tuple[bytes, str, bytes]]:
        """Up to ``count`` requests waiting to be answered from the response cache: (entry, domain, job)."""
        entries = await self.redis.zrange(keys.replay(self.crawl), 0, count - 1)
        return [(entry, *_domain_and_job(entry)) for entry in entries]

    async def replay(self, entry: bytes, sid: str, domain: str, result: bytes) -> None:
        """Move a request from the replay set to the response stream with its cached ``result``."""
        await self._replay(
            keys=[keys.replay(self.crawl), keys.responses(self.crawl), keys.inflight(self.crawl),
                  keys.domain_inflight(self.crawl), keys.DOMAIN_INFLIGHT],
            args=[entry, result, sid, domain],
        )  # fmt: skip

    async def end(self) -> None:
        """The crawl ended for good (finished, failed, cancelled, or cannot be resumed): retire its job streams
        and give back its part of the shared per-domain counts (what it still had in flight)."""
        await self.retire()
        await self._release_domains(keys=[keys.domain_inflight(self.crawl), keys.DOMAIN_INFLIGHT])

    async def inflight(self) -> int:
        """Requests dispatched and not yet processed, over every sid."""
        return sum(int(count) for count in await self.redis.hvals(keys.inflight(self.crawl)))

    async def read_responses(self, count: int, block_ms: int | None, pending: bool = False) -> list[tuple[str, bytes]]:
        """Read responses for this coordinator: its unacknowledged ones when ``pending``, else new ones."""
        reply = await self.redis.xreadgroup(
            keys.COORDINATOR_GROUP,
            self.consumer,
            {keys.responses(self.crawl): "0" if pending else ">"},
            count=count,
            block=None if pending else block_ms,
        )
        entries = [entry for _, entries in reply or () for entry in entries]
        return [(_text(entry_id), fields.get(b"r", b"")) for entry_id, fields in entries if fields]


def _domain_and_job(entry: bytes) -> tuple[str, bytes]:
    """The domain and the job of a frontier entry (they follow its priority and sequence digits)."""
    domain, _, job = entry[DOMAIN_AT:].partition(DOMAIN_END)
    return domain.decode(), job


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
            for key, kind in ((_text(k), _text(v)) for k, v in registered.items())
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
        kind = _text(await self.redis.type(stream))
        if kind == "none":
            return "the stream no longer exists"
        if kind != "stream":
            return f"the key now holds a {kind}, not a stream"
        if all(_text(group["name"]) != keys.WORKERS_GROUP for group in await self.redis.xinfo_groups(stream)):
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
            Job(_text(stream), _text(entry_id), fields.get(b"j", b""))
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
            deliveries = {_text(p["message_id"]): p["times_delivered"] for p in pending}
            for entry_id, fields in claimed:
                jobs.append(Job(stream, _text(entry_id), fields.get(b"j", b""), deliveries.get(_text(entry_id), 1)))
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
