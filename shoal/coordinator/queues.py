"""One crawl's frontier, job streams and response stream, from the coordinator's side.

Every state change is one Lua script (``shoal/store/lua``), so it happens whole or not at all:

- ``commit``: acknowledge a processed response and, atomically with it, store its items, deduplicate
  (:mod:`shoal.coordinator.dedup`: the seen set, or a Bloom filter) and schedule its requests, count its
  stats and release its in-flight slot. A coordinator that dies mid-callback leaves the response pending,
  and its successor processes it again from scratch.
- ``dispatch``: move requests from a sid's frontier to its job stream as capacity and politeness allow.
- ``replay``: in development mode, answer a request from the coordinator's response cache: it
  leaves the replay set and its response enters the response stream in one step.

The frontier entries are defined in :mod:`shoal.coordinator.frontier`.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.common import keys
from shoal.common.messages import FailedRequest, MessageError, decode
from shoal.common.meta import from_wire
from shoal.coordinator.dedup import Dedup
from shoal.coordinator.frontier import DOMAIN_AT, DOMAIN_END, SEQUENCE_FORMAT, Commit, Scheduled, domain_and_job
from shoal.store import scripts
from shoal.store.connection import text

#: A response as the coordinator reads it: (entry id, the encoded FetchResult).
ResponseEntry = tuple[str, bytes]
#: Jobs no worker took for this long mark their pool as down: they stop holding other sids' slots.
STALE_MS = 1000


@dataclass(slots=True)
class DispatchResult:
    sent: int
    wait_ms: int
    frontier: int
    inflight: int
    dispatched: int  # by the crawl in all


class CrawlQueues:
    """One crawl's frontier, job streams and response stream, from the coordinator's side."""

    def __init__(self, redis: Redis, crawl: str, consumer: str = "coordinator", dedup: Dedup | None = None) -> None:
        self.redis = redis
        self.crawl = crawl
        self.consumer = consumer
        self.dedup = dedup or Dedup()  # exact unless the engine gives the spider's
        self._commit = scripts.register(redis, "commit")
        self._dispatch = scripts.register(redis, "dispatch")
        self._replay = scripts.register(redis, "replay")
        self._release_domains = scripts.register(redis, "release_domains")
        self._dead_response = scripts.register(redis, "dead_response")
        self._requeue = scripts.register(redis, "requeue")

    async def create(self, sids_by_kind: dict[str, str]) -> None:
        """Create the response and events streams and each sid's job stream with their consumer groups, and
        register the job streams so that workers of the right kind find them."""
        streams = [(key, keys.COORDINATOR_GROUP) for key in (keys.responses(self.crawl), keys.events(self.crawl))]
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
            if text(key).startswith(keys.queue(self.crawl, ""))
        ]
        if streams:
            await self.redis.hdel(keys.QUEUES, *streams)

    async def commit(self, commits: Iterable[Commit]) -> list[int]:
        """Store each commit atomically; returns per commit the number of new requests (-1: already done).

        Failed requests are recorded first, keyed by response id, so that a commit interrupted after
        that and done again records each of them once."""
        await self.dedup.ready(self.redis, self.crawl)
        seen, *blocks = self.dedup.keys(self.crawl)
        base = [
            keys.responses(self.crawl),
            seen,
            keys.sequence(self.crawl),
            keys.stats(self.crawl),
            keys.items(self.crawl),
            keys.inflight(self.crawl),
            keys.domain_inflight(self.crawl),
            keys.DOMAIN_INFLIGHT,
            *blocks,
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
                    *self.dedup.args(),
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
            watching = self.dedup.watching
            if watching:
                pipe.hget(keys.stats(self.crawl), "bloom_added")
            results = await pipe.execute()
        if watching:
            self.dedup.check(self.crawl, int(results.pop() or 0))
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
        return [(entry, *domain_and_job(entry)) for entry in entries]

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

    async def read_responses(self, count: int, block_ms: int | None, pending: bool = False) -> list[ResponseEntry]:
        """Read responses for this coordinator: its unacknowledged ones when ``pending``, else new ones."""
        streams = {keys.responses(self.crawl): "0" if pending else ">"}
        return (await self._read(streams, count, None if pending else block_ms))[0]

    async def read(self, count: int, block_ms: int | None) -> tuple[list[ResponseEntry], bool]:
        """Read new responses and, in the same blocking read, the crawl's new events (acknowledged at once): the
        responses, and whether an event came (its state or control changed)."""
        streams = {keys.responses(self.crawl): ">", keys.events(self.crawl): ">"}
        return await self._read(streams, count, block_ms)

    async def _read(self, streams: dict[str, str], count: int, block: int | None) -> tuple[list[ResponseEntry], bool]:
        reply = await self.redis.xreadgroup(keys.COORDINATOR_GROUP, self.consumer, streams, count=count, block=block)
        responses: list[tuple[bytes, dict]] = []
        events: list[bytes] = []
        for stream, entries in reply or ():
            if text(stream) == keys.events(self.crawl):
                events += [entry_id for entry_id, _ in entries]
            else:
                responses += entries
        if events:
            await self.redis.xack(keys.events(self.crawl), keys.COORDINATOR_GROUP, *events)
        return [(text(entry_id), fields.get(b"r", b"")) for entry_id, fields in responses if fields], bool(events)
