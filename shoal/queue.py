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

_MAX_PRIORITY = 2**63 - 1
#: Jobs no worker took for this long mark their pool as down: they stop holding other sids' slots.
STALE_MS = 1000

COMMIT = """
local rid = ARGV[1]
if rid ~= '' then
  if redis.call('XACK', KEYS[1], ARGV[7], rid) == 0 then return -1 end
  redis.call('XDEL', KEYS[1], rid)
  if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[6], ARGV[2], -1) end
  if ARGV[3] ~= '' then
    redis.call('HINCRBY', KEYS[7], ARGV[3], -1)
    redis.call('HINCRBY', KEYS[8], ARGV[3], -1)
  end
end
local i = 9
local added = 0
for _ = 1, tonumber(ARGV[4]) do
  local is_new = redis.call('SADD', KEYS[2], ARGV[i + 1])
  if is_new == 1 or ARGV[i + 2] == '1' then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], 0, ARGV[i + 3] .. string.format('%017d', seq) .. ARGV[i + 4])
    added = added + 1
  end
  i = i + 5
end
for _ = 1, tonumber(ARGV[5]) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'i', ARGV[i])
  i = i + 1
end
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return added
"""

DISPATCH = """
local capacity, limit, delay, scan = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n, first, group, stale_ms = (#KEYS - 6) / 2, tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
-- KEYS: 1 inflight, 2 the crawl's domain_inflight, 3 DOMAIN_NEXT, 4 stats, 5 DOMAIN_INFLIGHT, then per sid
-- its frontier and its job stream, and last the crawl's domain_delay (domain -> that domain's own delay in
-- ms: robots.txt floors, AutoThrottle; else `delay`). Per-domain limits and delays count every crawl's requests.
local domain_delays = KEYS[#KEYS]
local per_domain = redis.call('EXISTS', domain_delays) == 1
-- budget: requests this crawl may still dispatch in all (max_pages), -1 for no limit
local budget = tonumber(ARGV[8])
local dispatched = tonumber(redis.call('HGET', KEYS[4], 'requests_dispatched') or '0')
if budget >= 0 then budget = math.max(budget - dispatched, 0) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Jobs waiting in a stream that no worker took for stale_ms belong to a pool that is down or busy:
-- they do not hold other sids' slots.
local function waiting_since(stream)
  local info = redis.call('XINFO', 'GROUPS', stream)
  for _, g in ipairs(info) do
    local fields = {}
    for f = 1, #g, 2 do fields[g[f]] = g[f + 1] end
    if fields['name'] == group then
      local oldest = redis.call('XRANGE', stream, '(' .. fields['last-delivered-id'], '+', 'COUNT', 1)[1]
      if oldest then return tonumber(string.match(oldest[1], '^(%d+)')) end
    end
  end
  return now
end
local undelivered, leased, inflight_total, fresh_waiting = {}, 0, 0, 0
for i = 1, n do
  local stream = KEYS[5 + 2 * i]
  local inflight = tonumber(redis.call('HGET', KEYS[1], ARGV[8 + i]) or '0')
  undelivered[i] = redis.call('XLEN', stream) - redis.call('XPENDING', stream, group)[1]
  leased = leased + inflight - undelivered[i]
  inflight_total = inflight_total + inflight
  if undelivered[i] > 0 and now - waiting_since(stream) < stale_ms then
    fresh_waiting = fresh_waiting + undelivered[i]
    undelivered[i] = 0  -- counted once, in fresh_waiting
  end
end
local sent_total, wait, frontier_total = 0, -1, 0
for k = 0, n - 1 do
  local i = (first + k) % n + 1
  local frontier, stream, sid = KEYS[4 + 2 * i], KEYS[5 + 2 * i], ARGV[8 + i]
  local room, sent = capacity - leased - fresh_waiting - undelivered[i], 0
  if budget >= 0 then room = math.min(room, budget - sent_total) end
  local function send(member)
    local nl = string.find(member, '\\n', 34, true)
    local domain = string.sub(member, 34, nl - 1)
    redis.call('XADD', stream, '*', 'j', string.sub(member, nl + 1))
    redis.call('HINCRBY', KEYS[2], domain, 1)
    redis.call('HINCRBY', KEYS[5], domain, 1)
    sent = sent + 1
    return domain
  end
  if room > 0 and limit == 0 and delay == 0 and not per_domain then
    local popped = redis.call('ZPOPMIN', frontier, room)
    for j = 1, #popped, 2 do send(popped[j]) end
  elseif room > 0 then
    for _, member in ipairs(redis.call('ZRANGE', frontier, 0, scan - 1)) do
      if sent >= room then break end
      local nl = string.find(member, '\\n', 34, true)
      local domain = string.sub(member, 34, nl - 1)
      local ready = limit == 0 or tonumber(redis.call('HGET', KEYS[5], domain) or '0') < limit
      local gap = per_domain and tonumber(redis.call('HGET', domain_delays, domain) or delay) or delay
      if ready and gap > 0 then
        local next_at = tonumber(redis.call('HGET', KEYS[3], domain) or '0')
        if next_at > now then
          ready = false
          if wait < 0 or next_at - now < wait then wait = next_at - now end
        end
      end
      if ready then
        redis.call('ZREM', frontier, member)
        send(member)
        if gap > 0 then redis.call('HSET', KEYS[3], domain, now + gap) end
      end
    end
  end
  if sent > 0 then
    redis.call('HINCRBY', KEYS[1], sid, sent)
    redis.call('HINCRBY', KEYS[4], 'requests_dispatched', sent)
  end
  fresh_waiting = fresh_waiting + sent
  sent_total = sent_total + sent
  inflight_total = inflight_total + sent
  frontier_total = frontier_total + redis.call('ZCARD', frontier)
end
return {sent_total, wait, frontier_total, inflight_total, dispatched + sent_total}
"""

REPLAY = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
redis.call('HINCRBY', KEYS[5], ARGV[4], 1)
return 1
"""

RELEASE_DOMAINS = """
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local count = tonumber(held[i + 1])
  if count ~= 0 then redis.call('HINCRBY', KEYS[2], held[i], 0 - count) end
end
redis.call('DEL', KEYS[1])
return #held / 2
"""

FINISH_JOB = """
if redis.call('TYPE', KEYS[1]).ok ~= 'stream' then return 0 end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('XADD', KEYS[2], '*', 'r', ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'reason', ARGV[4], 'job', ARGV[5])
  redis.call('HINCRBY', KEYS[4], 'dead_letters', 1)
end
return 1
"""

# A response entry that is not a shoal response: moved, fields and all, to the dead letters, and counted.
DEAD_RESPONSE = """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local fields = {'reason', ARGV[3], 'from', KEYS[1]}
if entry then
  for _, value in ipairs(entry[2]) do fields[#fields + 1] = value end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_letters', 1)
return 1
"""

# Failed requests back to their frontiers, each only if it is still in the failed hash (no dedup check:
# they were seen already). ARGV: groups of (failed hash field, frontier key index, prefix, tail).
REQUEUE = """
local moved = 0
for i = 1, #ARGV, 4 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    local seq = redis.call('INCR', KEYS[2])
    redis.call('ZADD', KEYS[tonumber(ARGV[i + 1])], 0, ARGV[i + 2] .. string.format('%017d', seq) .. ARGV[i + 3])
    moved = moved + 1
  end
end
return moved
"""


def frontier_member(priority: int, domain: str, job: bytes) -> tuple[bytes, bytes]:
    """The priority prefix and the tail (domain, newline, job) of a frontier entry."""
    if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
        raise ValueError(f"priority {priority} is out of range (a 64-bit integer)")
    return b"%016x" % (_MAX_PRIORITY - priority), domain.encode() + b"\n" + job


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
        self._commit = redis.register_script(COMMIT)
        self._dispatch = redis.register_script(DISPATCH)
        self._replay = redis.register_script(REPLAY)
        self._release_domains = redis.register_script(RELEASE_DOMAINS)
        self._dead_response = redis.register_script(DEAD_RESPONSE)
        self._requeue = redis.register_script(REQUEUE)

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
        args: list[str | bytes | int] = []
        for field, request in entries:
            index = frontier_keys.setdefault(request.sid, len(base) + len(frontier_keys) + 1)
            args += [field, index, request.prefix, request.tail]
        if not args:
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
    domain, _, job = entry[33:].partition(b"\n")
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
        self._finish = redis.register_script(FINISH_JOB)

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
