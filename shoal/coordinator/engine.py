"""The coordinator's engine: runs one crawl's callbacks and keeps its frontier moving.

It never fetches. It reads fetched responses from Redis, builds Response objects, runs the spider's
hooks and callbacks, and commits what they produced (items, new requests, stats) atomically with the
response's acknowledgement. Then it dispatches as many requests as capacity and politeness allow.
The crawl ends when every frontier is empty and nothing is in flight.
"""

import asyncio
import time
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shoal.common import keys
from shoal.common.messages import FetchJob, FetchResult, MessageError, decode, encode
from shoal.common.request import Request
from shoal.common.response import Response
from shoal.common.sessions import check_request_kwargs
from shoal.coordinator.records import from_record, to_record
from shoal.coordinator.robots import RobotsTxt
from shoal.coordinator.stats import DOMAIN_BYTES, SESSION, STATUS, WORKER, stats_from_hash
from shoal.coordinator.throttle import AutoThrottle, DomainDelays
from shoal.queue import Commit, CrawlQueues, DispatchResult, Scheduled, frontier_member
from shoal.spiders import CrawlStats, ItemList, Spider

_item_encoder = msgspec.json.Encoder(enc_hook=str)
_SEED_BATCH = 500
_READ_COUNT = 128
#: How often the engine looks at what the crawl's client asks (run, pause, cancel).
_CONTROL_EVERY_S = 0.5
#: Longest wait between two attempts to reach Redis while it is unreachable.
_MAX_BACKOFF_S = 5.0


class CrawlCancelled(Exception):
    """The crawl's client asked to cancel it."""


class FetchFailed(Exception):
    """A request whose fetch failed in a worker: ``kind`` is timeout, connection, dns, ..."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class CrawlEngine:
    """Runs the spider side of crawl ``crawl``, whose state lives in ``redis``."""

    def __init__(self, redis: Redis, spider: Spider, crawl: str) -> None:
        self.redis = redis
        self.spider = spider
        self.crawl = crawl
        self.log = spider.logger
        self.sessions = spider.session_manager
        self.queues = CrawlQueues(redis, crawl)
        self.delays = DomainDelays(redis, crawl, spider.download_delay, AutoThrottle.of(spider))
        self.robots = RobotsTxt(redis, crawl) if spider.robots_txt_obey else None
        self._learned: list[Commit] = []  # robots.txt responses of the batch, committed after their release
        self.started = time.time()
        self._allowed = set(spider.allowed_domains or ())
        self._turn = 0
        self._control = b"run"
        self._control_read = 0.0
        self._state = ""

    # -- requests -------------------------------------------------------------------------------

    def _is_allowed(self, request: Request) -> bool:
        if not self._allowed:
            return True
        domain = request.domain.rsplit(":", 1)[0] if request.domain.count(":") == 1 else request.domain
        return any(domain == allowed or domain.endswith("." + allowed) for allowed in self._allowed)

    def _schedule(self, request: Request) -> list[Scheduled]:
        """Normalize, validate and encode ``request`` for the frontier (with robots.txt, what it routes
        there: held with the domain's robots.txt request, or disallowed); raises on a bad request."""
        if not request.sid:
            request.sid = self.sessions.default_session_id
        if request.sid not in self.sessions:
            raise ValueError(
                f"{request!r} names sid '{request.sid}', which no session has "
                f"(sessions: {', '.join(self.sessions.session_ids)})"
            )
        check_request_kwargs(
            self.sessions.get(request.sid).kind, request.session_kwargs, where=f"Request to sid '{request.sid}'"
        )
        if not request.url.startswith(("http://", "https://")):
            raise ValueError(f"{request!r}: only http:// and https:// URLs can be fetched")
        spider = self.spider
        fp = request.update_fingerprint(spider.fp_include_kwargs, spider.fp_include_headers, spider.fp_keep_fragments)
        job = encode(FetchJob(crawl=self.crawl, request=to_record(request, spider, fp)))
        prefix, tail = frontier_member(request.priority, request.domain, job)
        scheduled = Scheduled(request.sid, fp, request.dont_filter, prefix, tail)
        return self.robots.route(request, scheduled) if self.robots else [scheduled]

    async def _seed(self) -> None:
        batch: list[Scheduled] = []
        async for request in self.spider.start_requests():
            try:
                batch += self._schedule(request)
            except (ValueError, TypeError) as e:
                await self._spider_error(request, e)
            if len(batch) >= _SEED_BATCH:
                await self._commit([Commit(requests=batch)])
                batch = []
        await self._commit([Commit(requests=batch)])
        await self.redis.hset(keys.state(self.crawl), "seeded", 1)

    # -- responses ------------------------------------------------------------------------------

    async def _spider_error(self, request: Request, error: Exception) -> None:
        self.log.error("Spider error processing %s: %s", request, error, exc_info=error)
        await self.spider.on_error(request, error)

    async def _run_callback(self, request: Request, response: Response, commit: Commit, stats: dict) -> None:
        callback = request.callback or self.spider.parse
        requests: list[Scheduled] = []
        items: list[bytes] = []
        try:
            async for result in callback(response):
                if isinstance(result, Request):
                    if not self._is_allowed(result):
                        _count(stats, "offsite_requests_count")
                        self.log.debug("Filtered offsite request to: %s", result.url)
                        continue
                    try:
                        requests += self._schedule(result)
                    except (ValueError, TypeError) as e:
                        _count(stats, "failed_requests_count")
                        await self._spider_error(result, e)
                elif isinstance(result, dict):
                    item = await self.spider.on_scraped_item(result)
                    if item:
                        items.append(_item_encoder.encode(item))
                        _count(stats, "items_scraped")
                        self.log.debug("Scraped from %s\n%s", response, item)
                    else:
                        _count(stats, "items_dropped")
                        self.log.warning("Dropped from %s\n%s", response, item)
                elif result is not None:
                    self.log.error("Spider must return Request, dict or None, got '%s' in %s", type(result), request)
        except Exception as e:
            await self._spider_error(request, e)
        commit.requests = requests
        commit.items = items

    async def _retry_blocked(self, request: Request, response: Response, commit: Commit) -> None:
        if request.retry_count >= self.spider.max_blocked_retries:
            self.log.warning("Max retries exceeded for blocked request: %s", request.url)
            return
        retry = await self.spider.retry_blocked_request(request.retry_copy(), response)
        try:
            commit.requests = self._schedule(retry)
        except (ValueError, TypeError) as e:
            await self._spider_error(retry, e)
            return
        self.log.info(
            "Scheduled blocked request for retry (%d/%d): %s",
            retry.retry_count,
            self.spider.max_blocked_retries,
            request.url,
        )

    async def _process(self, entry_id: str, payload: bytes) -> Commit:
        stats: dict[str, int] = {}
        commit = Commit(response_id=entry_id, stats=stats)
        try:
            result = decode(payload, FetchResult)
        except MessageError as e:
            self.log.error("Rejected a message in %s: %s", keys.responses(self.crawl), e)
            _count(stats, "malformed_messages")
            return commit
        request = from_record(result.request, self.spider)
        commit.sid, commit.domain = request.sid, request.domain
        if result.request.robots_txt and self.robots:
            self._learn_robots(self.robots, result, commit)
            return commit
        try:
            if result.error is not None:
                _count(stats, "failed_requests_count")
                error = FetchFailed(result.error.kind, result.error.message)
                self.log.error("Failed %s: %s", request, error)
                await self.spider.on_error(request, error)
            else:
                await self._handle_response(request, result, commit, stats)
        except Exception as e:  # a hook (is_blocked, on_error ...) raised: the response is done with
            await self._spider_error(request, e)
        return commit

    async def _handle_response(self, request: Request, result: FetchResult, commit: Commit, stats: dict) -> None:
        response = Response(
            result.url or request.url,
            result.status,
            result.body,
            result.headers,
            reason=result.reason,
            cookies=result.cookies,
            meta={**request.meta, **result.meta},
            request=request,
        )
        _count(stats, "requests_count")
        _count(stats, f"{SESSION}{request.sid}")
        _count(stats, f"{WORKER}{result.worker}")
        _count(stats, f"{STATUS}{result.status}")
        _count(stats, "response_bytes", len(result.body))
        _count(stats, f"{DOMAIN_BYTES}{request.domain}", len(result.body))
        blocked = await self.spider.is_blocked(response)
        self.delays.record(request.domain, result.elapsed, 200 <= result.status < 300 and not blocked, result.headers)
        if blocked:
            _count(stats, "blocked_requests_count")
            await self._retry_blocked(request, response, commit)
        else:
            await self._run_callback(request, response, commit, stats)

    # -- the loop -------------------------------------------------------------------------------

    async def _dispatch(self) -> DispatchResult:
        """Dispatch what capacity allows."""
        spider = self.spider
        self._turn += 1
        return await self.queues.dispatch(
            self.sessions.session_ids,
            spider.concurrent_requests,
            spider.concurrent_requests_per_domain,
            self.delays.default_ms,
            self._turn,
        )

    async def _consume_pending(self) -> None:
        """Process the responses this crawl's coordinator read before but never committed."""
        while pending := await self.queues.read_responses(_READ_COUNT, None, pending=True):
            await self._consume(pending)

    async def _consume(self, entries: list[tuple[str, bytes]]) -> None:
        commits = [await self._process(entry_id, payload) for entry_id, payload in entries]
        learned, self._learned = self._learned, []
        await self._commit([commit for commit in commits if all(commit is not done for done in learned)])
        if learned and self.robots:  # robots.txt responses are acknowledged once their held requests are released
            for commit in learned:
                await self.robots.release(commit.domain)
            await self.queues.commit(learned)

    async def _commit(self, commits: list[Commit]) -> None:
        """Commit, then count the requests robots.txt disallowed and write the delays that changed."""
        await self.queues.commit(commits)
        if self.robots:
            await self.robots.count_disallowed()
        await self.delays.flush()

    def _learn_robots(self, robots: RobotsTxt, result: FetchResult, commit: Commit) -> None:
        """Read a domain's robots.txt: its requests are routed by it from now on, its delay floor raised."""
        domain = robots.learn(result)
        self.delays.obey_robots(domain, robots.delay(domain))
        commit.stats = {"robots_txt_count": 1}
        self._learned.append(commit)

    async def run(self, output: str | Path | None = None) -> CrawlStats:
        """Run the crawl to its end (resuming it if it was already started) and return its stats;
        with ``output``, the items are written there (format by extension) before it is marked finished."""
        await self.queues.create({sid: self.sessions.get(sid).kind for sid in self.sessions.session_ids})
        await self.delays.load(await self.robots.load() if self.robots else {})
        resuming = bool(await self.redis.hget(keys.state(self.crawl), "seeded"))
        started = await self.redis.hget(keys.state(self.crawl), "started")
        self.started = float(started) if started else self.started
        await self._set_state("running", started=self.started)
        await self.spider.on_start(resuming=resuming)
        try:
            if resuming:
                self.log.info("Resuming crawl %s, skipping start_requests()", self.crawl)
                await self._consume_pending()
            else:
                await self._seed()
            backoff = 0.0
            while True:
                try:
                    if backoff:  # reconnected: what was read but not committed before the outage comes first
                        await self._consume_pending()
                        backoff = 0.0
                    if not await self._step():
                        break
                except (RedisConnectionError, RedisTimeoutError) as e:
                    backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
                    self.log.warning("Redis unreachable (%s); retrying in %.1f s", e, backoff)
                    await asyncio.sleep(backoff)
        finally:
            await self.spider.on_close()
        await self.queues.retire()
        if output:
            (await self.item_list()).export(output)
        await self._set_state("finished", finished=time.time())
        stats = await self.stats()
        self.log.info("%s", stats.to_dict())
        return stats

    async def _step(self) -> bool:
        """One turn of the loop: dispatch (unless paused), then process what came back; False at the end."""
        control = await self._read_control()
        if control == b"cancel":
            raise CrawlCancelled(self.crawl)
        if control == b"pause":  # no dispatch; what is in flight comes back and is processed
            await self._set_state("paused")
            entries = await self.queues.read_responses(_READ_COUNT, int(_CONTROL_EVERY_S * 1000))
        else:
            await self._set_state("running")
            dispatched = await self._dispatch()
            wait = dispatched.wait_ms
            if dispatched.frontier == 0 and dispatched.inflight == 0:
                return False
            if dispatched.inflight == 0 and wait >= 0:
                # Nothing can come back: wait for the delayed domain on this clock; a blocked read would end
                # only at Redis's next tick (up to 100 ms late at its default hz), slowing delayed crawls.
                await asyncio.sleep(min(wait / 1000, _CONTROL_EVERY_S))
                return True
            entries = await self.queues.read_responses(_READ_COUNT, wait if wait >= 0 else 1000)
        if entries:
            await self._consume(entries)
        return True

    async def _read_control(self) -> bytes:
        """What the client asks (run, pause, cancel), read at most every _CONTROL_EVERY_S seconds."""
        if time.monotonic() - self._control_read >= _CONTROL_EVERY_S:
            self._control_read = time.monotonic()
            self._control = await self.redis.hget(keys.state(self.crawl), "control") or b"run"
        return self._control

    async def _set_state(self, state: str, **fields: float) -> None:
        if state != self._state or fields:
            await self.redis.hset(keys.state(self.crawl), mapping={"state": state, **fields})
            self._state = state

    async def stats(self) -> CrawlStats:
        """The crawl's stats so far."""
        stats = stats_from_hash(await self.redis.hgetall(keys.stats(self.crawl)))
        spider = self.spider
        stats.start_time, stats.end_time = self.started, time.time()
        stats.concurrent_requests = spider.concurrent_requests
        stats.concurrent_requests_per_domain = spider.concurrent_requests_per_domain
        stats.download_delay = spider.download_delay
        stats.autothrottle_enabled = spider.autothrottle_enabled
        stats.autothrottle_delays = self.delays.autothrottle_delays()
        stats.log_levels_counter = spider.log_counter.get_counts()
        return stats

    async def item_list(self) -> ItemList:
        """Every item stored so far, as an ItemList."""
        return ItemList([item async for item in self.items()])

    async def items(self) -> AsyncIterable[dict[str, Any]]:
        """Every item stored so far, in order."""
        last = "-"
        while batch := await self.redis.xrange(keys.items(self.crawl), min=last, count=1000):
            for _, fields in batch:
                yield msgspec.json.decode(fields[b"i"])
            last = "(" + batch[-1][0].decode()


def _count(stats: dict[str, int], name: str, amount: int = 1) -> None:
    stats[name] = stats.get(name, 0) + amount
