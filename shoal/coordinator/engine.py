"""The coordinator's engine: runs one crawl's callbacks and keeps its frontier moving.

It never fetches. It reads fetched responses from Redis, builds Response objects, runs the spider's
hooks and callbacks, and commits what they produced (items, new requests, stats) atomically with the
response's acknowledgement. Then it dispatches as many requests as capacity and politeness allow.
The crawl ends when every frontier is empty and nothing is in flight.
"""

import asyncio
import time
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import urlparse

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shoal.common import keys
from shoal.common.messages import (
    FailedRequest,
    FetchError,
    FetchJob,
    FetchResult,
    MessageError,
    RequestRecord,
    decode,
    encode,
    plain,
)
from shoal.common.proxy import proxy_label
from shoal.common.request import Request
from shoal.common.response import Response
from shoal.coordinator.adaptive import AdaptiveStore
from shoal.coordinator.cache import CACHE_WORKER, ResponseCache
from shoal.coordinator.dedup import Dedup
from shoal.coordinator.escalation import Escalation
from shoal.coordinator.frontier import Commit, Scheduled
from shoal.coordinator.queues import CrawlQueues, DispatchResult
from shoal.coordinator.quotas import Quotas
from shoal.coordinator.records import from_record
from shoal.coordinator.robots import RobotsTxt
from shoal.coordinator.scheduler import Scheduler
from shoal.coordinator.sessions import SessionStarts
from shoal.coordinator.stats import DOMAIN_BYTES, FAILED, PROXY, SESSION, STATUS, WORKER, add_counts, read_stats
from shoal.coordinator.throttle import AutoThrottle, DomainDelays
from shoal.spiders import CrawlStats, ItemList, Spider
from shoal.spiders.spider import CrawlControl

#: Items and custom stats as JSON; Scrapling's selector results become str and dict, any other type JSON has no
#: form for (datetime, Decimal, UUID, tuple and set have one) is a TypeError, never its str() in silence.
_item_encoder = msgspec.json.Encoder(enc_hook=plain)
_SEED_BATCH = 500
_READ_COUNT = 128
#: How often the engine looks at what the crawl's client asks (run, pause, cancel).
_CONTROL_EVERY_S = 0.5
#: Longest wait between two attempts to reach Redis while it is unreachable.
_MAX_BACKOFF_S = 5.0
#: After this long waiting for the non-lazy sessions to start, the engine says which and why it may be.
_SESSIONS_PATIENCE_S = 30.0


class CrawlCancelled(Exception):
    """The crawl's client asked to cancel it."""


class CrawlStateLost(RuntimeError):
    """Redis no longer holds the crawl: it restarted without persistence, or someone deleted the keys."""

    def __init__(self, crawl: str) -> None:
        super().__init__(f"Redis lost crawl {crawl}'s state (restarted without persistence?)")


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
        self.session_starts = SessionStarts(redis, crawl, spider.session_manager)
        self.queues = CrawlQueues(redis, crawl, dedup=Dedup.of(spider))
        self.delays = DomainDelays(redis, crawl, spider.download_delay, AutoThrottle.of(spider))
        self.robots = RobotsTxt(redis, crawl) if spider.robots_txt_obey else None
        self._learned: list[Commit] = []  # robots.txt responses of the batch, committed after their release
        self.started = time.time()
        self._allowed = set(spider.allowed_domains or ())
        self.quotas = Quotas.of(spider)
        self.escalation = Escalation(redis, crawl, spider) if spider.escalation else None
        self.adaptive = AdaptiveStore(redis, spider)
        self.cache = None
        if spider.development_mode:
            self.cache = ResponseCache(spider.development_cache_dir or f".scrapling_cache/{spider.name}")
        self.scheduler = Scheduler(crawl, spider, self.escalation, self.robots, self.cache)
        #: The quota that stopped the crawl ("" while none has).
        self.stop_reason = ""
        #: True once ``pause()`` was asked: the run ends, resumable, when nothing is in flight.
        self.pausing = False
        self.control = CrawlControl()  # the spider's pause() sets its flag
        self._items = 0  # items stored, or about to be with the next commit
        self._turn = 0
        self._control = b"run"
        self._control_read = 0.0
        self._state = ""
        self._custom_stored: dict[str, bytes] = {}  # custom stats as last written to Redis
        self._unstorable: set[str] = set()  # custom stats JSON cannot hold, logged once

    # -- requests -------------------------------------------------------------------------------

    def _is_allowed(self, request: Request) -> bool:
        if not self._allowed:
            return True
        domain = request.domain.rsplit(":", 1)[0] if request.domain.count(":") == 1 else request.domain
        return any(domain == allowed or domain.endswith("." + allowed) for allowed in self._allowed)

    async def _seed(self) -> None:
        batch: list[Scheduled] = []
        stats: dict[str, int] = {}
        requests = self.spider.start_requests()
        async for request in requests:
            try:
                batch += self.scheduler.schedule(request)
            except (ValueError, TypeError) as e:
                _count_failed(stats, "rejected")
                await self._spider_error(request, e, yielded_by=requests)
            if len(batch) >= _SEED_BATCH:
                await self._commit([Commit(requests=batch, stats=stats)])
                batch, stats = [], {}
        await self._commit([Commit(requests=batch, stats=stats)])
        await self.redis.hset(keys.state(self.crawl), "seeded", 1)

    # -- responses ------------------------------------------------------------------------------

    async def _spider_error(self, request: Request, error: Exception, yielded_by: Any = None) -> None:
        """Log an error of the spider's making, and call its on_error. A request that cannot be scheduled is
        shown at the line of the spider that yielded it (``yielded_by``: that generator), with the traceback
        of shoal's own checks only at DEBUG."""
        if yielded_by is None:
            self.log.error("Spider error processing %s: %s", request, error, exc_info=error)
        else:
            self.log.error("%s: %s", _yielded_at(yielded_by), error)
            self.log.debug("Traceback of the check that refused it:", exc_info=error)
        await self.spider.on_error(request, error)

    async def _run_callback(self, request: Request, response: Response, commit: Commit, stats: dict) -> None:
        callback = request.callback or self.spider.parse
        requests: list[Scheduled] = []
        items: list[bytes] = []
        try:
            results = callback(response)
            async for result in results:
                if isinstance(result, Request):
                    if not self._is_allowed(result):
                        _count(stats, "offsite_requests_count")
                        self.log.debug("Filtered offsite request to: %s", result.url)
                        continue
                    try:
                        requests += self.scheduler.schedule(result)
                    except (ValueError, TypeError) as e:
                        _count_failed(stats, "rejected")
                        await self._spider_error(result, e, yielded_by=results)
                elif isinstance(result, dict):
                    item = await self.spider.on_scraped_item(result)
                    if item and self.quotas.max_items and self._items >= self.quotas.max_items:
                        _count(stats, "items_dropped")
                        self.log.debug("Dropped from %s (max_items reached)\n%s", response, item)
                    elif item:
                        try:
                            items.append(_item_encoder.encode(item))
                        except TypeError as e:
                            _count(stats, "callback_errors")
                            self.log.error("Dropped an item from %s: %s", response, _json_error(item, e))
                            continue
                        self._items += 1
                        _count(stats, "items_scraped")
                        self.log.debug("Scraped from %s\n%s", response, item)
                    else:
                        _count(stats, "items_dropped")
                        self.log.warning("Dropped from %s\n%s", response, item)
                elif result is not None:
                    _count(stats, "callback_errors")
                    self.log.error(
                        "Spider must return Request, dict or None, got '%s' from %s in %s",
                        type(result).__name__,
                        _name(callback),
                        request,
                    )
        except Exception as e:  # what the callback yielded before it raised is kept
            _count(stats, "callback_errors")
            self.log.error(
                "Callback %s raised %s processing %s (kept the %d items and %d requests it yielded before): %s",
                _name(callback),
                type(e).__name__,
                response,
                len(items),
                len(requests),
                e,
                exc_info=e,
            )
            await self.spider.on_error(request, e)
        commit.requests = requests
        commit.items = items

    async def _retry_blocked(
        self, request: Request, record: RequestRecord, response: Response, commit: Commit, stats: dict
    ) -> None:
        """Schedule the retry of a blocked request; one blocked max_blocked_retries times has failed for good."""
        if request.retry_count >= self.spider.max_blocked_retries:
            self.log.warning("Max retries exceeded for blocked request: %s", request.url)
            message = f"still blocked (status {response.status}) after {request.retry_count} retries"
            commit.failed = encode(FailedRequest(request=record, kind="blocked", message=message, time=time.time()))
            _count_failed(stats, "blocked")
            return
        retry, escalated = request.retry_copy(), False
        if self.escalation and type(self.spider).retry_blocked_request is Spider.retry_blocked_request:
            escalated = self.escalation.escalate(retry)
        if escalated:
            _count(stats, "escalations_count")
            self.log.info("Escalating blocked request from sid '%s' to '%s': %s", request.sid, retry.sid, request.url)
        else:
            retry = await self.spider.retry_blocked_request(retry, response)
        try:
            commit.requests = self.scheduler.schedule(retry, escalated)
        except (ValueError, TypeError) as e:
            _count_failed(stats, "rejected")
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
            if result.crawl != self.crawl:
                raise MessageError(f"a FetchResult of crawl '{result.crawl}', not of this crawl")
        except MessageError as e:
            reason = str(e) if payload else "not a shoal response (it has no field 'r')"
            self.log.error("Dead-lettered entry %s of %s: %s", entry_id, keys.responses(self.crawl), reason)
            await self.queues.dead_letter_response(entry_id, reason)
            return Commit()
        try:
            request = from_record(result.request, self.spider)
            commit.sid, commit.domain = request.sid, request.domain
        except (LookupError, TypeError, ValueError) as e:  # the spider lacks its callback, or bad arguments
            commit.sid, commit.domain = result.request.sid, _domain(result.request.url)
            _count_failed(stats, "rejected")
            self.log.error("Rejected the response to %s: %s", result.request.url, e)
            return commit
        if result.request.robots_txt and self.robots:
            self._learn_robots(self.robots, result, commit)
            return commit
        if result.error is not None and result.error.kind == "session":  # its worker could not start the session:
            await self.session_starts.read()  # the crawl ends (SessionConfigurationError) with the worker's reason
        try:
            if result.error is not None:
                kind, message = result.error.kind, result.error.message
                _count_failed(stats, kind)
                failed = FailedRequest(request=result.request, kind=kind, message=message, time=time.time())
                commit.failed = encode(failed)
                error = FetchFailed(kind, message)
                self.log.error("Failed %s: %s", request, error)
                await self.spider.on_error(request, error)
            else:
                await self._handle_response(request, result, commit, stats)
        except Exception as e:  # a hook (is_blocked, on_error ...) raised: the response is done with
            _count(stats, "callback_errors")
            await self._spider_error(request, e)
        return commit

    async def _handle_response(self, request: Request, result: FetchResult, commit: Commit, stats: dict) -> None:
        url = result.url or request.url
        parser_args, adaptive = await self.adaptive.parser_args(request, url)
        response = Response(
            url,
            result.body,
            result.status,
            result.reason,
            result.cookies,
            result.headers,
            method=str(request.session_kwargs.get("method", "GET")).upper(),
            meta={**request.meta, **result.meta},
            request=request,
            **parser_args,
        )
        _count(stats, "requests_count")
        _count(stats, f"{SESSION}{request.sid}")
        _count(stats, f"{WORKER}{result.worker}")
        _count(stats, f"{STATUS}{result.status}")
        _count(stats, "response_bytes", len(result.body))
        _count(stats, f"{DOMAIN_BYTES}{request.domain}", len(result.body))
        if result.meta.get("body_truncated"):
            _count(stats, "truncated_responses")
            self.log.warning(
                "The body of %s was cut at the session's max_body_size (%d bytes)", response, len(result.body)
            )
        if proxy := result.meta.get("proxy"):
            _count(stats, f"{PROXY}{proxy_label(proxy)}")
        blocked = await self.spider.is_blocked(response)
        if self.cache is not None:
            if result.worker == CACHE_WORKER:
                _count(stats, "cache_hits")
            else:
                _count(stats, "cache_misses")
                if not blocked:
                    self.cache.put(result)
        self.delays.record(request.domain, result.elapsed, 200 <= result.status < 300 and not blocked, result.headers)
        if blocked:
            _count(stats, "blocked_requests_count")
            await self._retry_blocked(request, result.request, response, commit, stats)
        else:
            if self.escalation and result.request.escalated:
                await self.escalation.learn(request.domain, request.sid)
            await self._run_callback(request, response, commit, stats)
        await self.adaptive.save(adaptive)

    # -- the loop -------------------------------------------------------------------------------

    async def _dispatch(self) -> tuple[bool, DispatchResult]:
        """Dispatch what capacity, politeness and quotas allow; returns whether the crawl is done, and what
        the dispatcher saw."""
        spider = self.spider
        self._turn += 1
        result = await self.queues.dispatch(
            self.sessions.session_ids,
            spider.concurrent_requests,
            spider.concurrent_requests_per_domain,
            self.delays.default_ms,
            self._turn,
            0 if self.stop_reason else self.quotas.page_budget,
        )
        if not self.stop_reason:
            self.stop_reason = self.quotas.reached(result.dispatched, self._items, time.time() - self.started)
            if self.stop_reason:
                self.log.info("Stopping crawl %s: %s", self.crawl, self.stop_reason)
        done = (result.frontier == 0 or bool(self.stop_reason)) and result.inflight == 0
        return done, result

    async def _replay(self, cache: ResponseCache) -> None:
        """Answer the requests waiting for the response cache (development mode) from it."""
        while entries := await self.queues.to_replay(_READ_COUNT):
            for entry, domain, job in entries:
                request = decode(job, FetchJob).request
                result = cache.replay(self.crawl, request)
                if result is None:
                    error = FetchError(kind="cache", message=f"the cached response to {request.url} is gone")
                    result = FetchResult(crawl=self.crawl, request=request, worker=CACHE_WORKER, error=error)
                await self.queues.replay(entry, request.sid, domain, encode(result))

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
            await self._commit(learned)

    async def _commit(self, commits: list[Commit]) -> None:
        """Commit, keep the live stats up to date, count the requests robots.txt disallowed, and write the
        delays that changed."""
        for commit, added in zip(commits, await self.queues.commit(commits), strict=True):
            if added < 0:  # processed before (by a coordinator that died before it could read the answer)
                self._items -= len(commit.items)
            elif commit.stats:
                add_counts(self.spider.stats, commit.stats)
        if self.robots:
            await self.robots.count_disallowed()
        await self.delays.flush()

    def _learn_robots(self, robots: RobotsTxt, result: FetchResult, commit: Commit) -> None:
        """Read a domain's robots.txt: its requests are routed by it from now on, its delay floor raised."""
        domain = robots.learn(result)
        self.delays.obey_robots(domain, robots.delay(domain))
        commit.stats = {"robots_txt_count": 1}
        self._learned.append(commit)

    async def run(self) -> CrawlStats:
        """Run the crawl to its end (resuming it if it was already started) and return its stats."""
        await self.queues.create({sid: self.sessions.get(sid).kind for sid in self.sessions.session_ids})
        await self.delays.load(await self.robots.load() if self.robots else {})
        resuming = bool(await self.redis.hget(keys.state(self.crawl), "seeded"))
        started = await self.redis.hget(keys.state(self.crawl), "started")
        self.started = float(started) if started else self.started
        await self._set_state("running", started=self.started)
        self.spider.stats = await self.stats()
        self._custom_stored = self._encoded_custom_stats()
        self._items = self.spider.stats.items_scraped
        if self.escalation:
            await self.escalation.load()
        self.spider.attach_control(self.control)
        await self._start_sessions()
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
                        await self._check_state()
                        await self._consume_pending()
                        backoff = 0.0
                    if not await self._step():
                        break
                except (RedisConnectionError, RedisTimeoutError) as e:
                    backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
                    self.log.warning("Redis unreachable (%s); retrying in %.1f s", e, backoff)
                    await asyncio.sleep(backoff)
                except ResponseError:  # a stream or group that vanished (NOGROUP, no such key) says why
                    await self._check_state()
                    raise
        finally:
            self.spider.attach_control(None)
            await self.spider.on_close()
        await self._sync_stats()
        if self.pausing:
            await self.queues.retire()
            await self._set_state("paused")
            return await self.stats()
        await self.queues.end()
        await self._set_state("finished", finished=time.time(), stop_reason=self.stop_reason)
        stats = await self.stats()
        self.log.info("%s", stats.to_dict())
        return stats

    async def _start_sessions(self) -> None:
        """Wait until workers have started the non-lazy sessions (raises SessionConfigurationError if one
        could not start, CrawlCancelled if the crawl is cancelled meanwhile)."""
        starts = self.session_starts
        if starts.pending():
            self.log.info("Waiting for workers to start the sessions %s", ", ".join(sorted(starts.pending())))
        waiting_since = time.monotonic()
        while starts.pending() and not self.pausing:
            if await self._read_control() == b"cancel":
                raise CrawlCancelled(self.crawl)
            await starts.read(block_ms=int(_CONTROL_EVERY_S * 1000))
            if starts.pending() and time.monotonic() - waiting_since > _SESSIONS_PATIENCE_S:
                pending = starts.pending()
                kinds = sorted({self.sessions.get(sid).kind for sid in pending})
                self.log.warning(
                    "Still waiting for the sessions %s to start: is a %s worker running?",
                    ", ".join(sorted(pending)),
                    " / ".join(kinds),
                )
                waiting_since = time.monotonic()

    def pause(self) -> None:
        """Stop dispatching and end ``run()`` once what is in flight is processed; the crawl stays resumable."""
        self.pausing = True

    async def _step(self) -> bool:
        """One turn of the loop: dispatch (unless paused), then process what came back; False at the end."""
        if self.control.pause_requested and not self.pausing:
            self.log.info("Pausing crawl %s: the spider asked", self.crawl)
            self.pause()
        control = await self._read_control()
        if control == b"cancel":
            raise CrawlCancelled(self.crawl)
        if self.pausing and await self.queues.inflight() == 0:
            return False
        if control == b"pause" or self.pausing:  # no dispatch; what is in flight comes back and is processed
            await self._set_state("paused")
            entries = await self.queues.read_responses(_READ_COUNT, int(_CONTROL_EVERY_S * 1000))
        else:
            await self._set_state("running")
            if self.cache is not None:
                await self._replay(self.cache)
            done, dispatched = await self._dispatch()
            wait = dispatched.wait_ms
            if done:
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
        """What the client asks (run, pause, cancel), read at most every _CONTROL_EVERY_S seconds, with a
        check that Redis still holds the crawl (raises CrawlStateLost when it does not) and that no session
        failed to start (raises SessionConfigurationError); the spider's live stats are brought up to date
        as often."""
        if time.monotonic() - self._control_read >= _CONTROL_EVERY_S:
            self._control_read = time.monotonic()
            await self._check_state()
            await self.session_starts.read()  # a session that could not start ends the crawl
            self._control = await self.redis.hget(keys.state(self.crawl), "control") or b"run"
            await self._sync_stats()
        return self._control

    async def _check_state(self) -> None:
        """Raise CrawlStateLost if Redis no longer holds the crawl's spec (the engine never writes it)."""
        if not await self.redis.exists(keys.spec(self.crawl)):
            raise CrawlStateLost(self.crawl)

    def _encoded_custom_stats(self) -> dict[str, bytes]:
        """The spider's custom stats as stored in Redis (JSON); one that JSON cannot hold is logged once and
        kept in this process only."""
        encoded = {}
        for name, value in self.spider.stats.custom_stats.items():
            try:
                encoded[str(name)] = _item_encoder.encode(value)
            except TypeError as e:
                if name not in self._unstorable:
                    self._unstorable.add(name)
                    self.log.error("custom stat %r is not stored (this process keeps it): %s", name, e)
        return encoded

    async def _sync_stats(self) -> None:
        """Store the custom stats the spider's callbacks changed, then refresh ``spider.stats`` from Redis."""
        custom = self.spider.stats.custom_stats
        encoded = self._encoded_custom_stats()
        changed = {name: value for name, value in encoded.items() if self._custom_stored.get(name) != value}
        removed = [name for name in self._custom_stored if name not in encoded]
        async with self.redis.pipeline(transaction=False) as pipe:
            if changed:
                pipe.hset(keys.custom_stats(self.crawl), mapping=changed)
            if removed:
                pipe.hdel(keys.custom_stats(self.crawl), *removed)
            await pipe.execute()
        self._custom_stored = encoded
        stats = await self.stats()
        stats.custom_stats = custom  # the dict the callbacks hold stays the live one
        self.spider.stats = stats

    async def _set_state(self, state: str, **fields: float | str) -> None:
        if state != self._state or fields:
            await self.redis.hset(keys.state(self.crawl), mapping={"state": state, **fields})
            self._state = state

    async def stats(self) -> CrawlStats:
        """The crawl's stats so far."""
        stats = await read_stats(self.redis, self.crawl)
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


def _json_error(item: dict[str, Any], error: TypeError) -> str:
    """Which of ``item``'s keys holds a value JSON has no form for, and its type."""
    for key, value in item.items():
        try:
            _item_encoder.encode(value)
        except TypeError as e:
            return f"its key {key!r} holds a value that cannot be written as JSON ({e})"
    return str(error)


def _domain(url: str) -> str:
    try:
        return urlparse(url).netloc
    except ValueError:
        return ""


def _name(callback: Any) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


def _yielded_at(generator: Any) -> str:
    """Where a spider's (async) generator, suspended, yielded its last value: "FILE, line N, in NAME"."""
    frame = getattr(generator, "ag_frame", None) or getattr(generator, "gi_frame", None)
    if frame is None:
        return f"Spider error in {_name(generator)}"
    return f"{frame.f_code.co_filename}, line {frame.f_lineno}, in {frame.f_code.co_name}"


def _count(stats: dict[str, int], name: str, amount: int = 1) -> None:
    stats[name] = stats.get(name, 0) + amount


def _count_failed(stats: dict[str, int], kind: str) -> None:
    """A request that failed for good: counted in failed_requests_count and by its kind."""
    _count(stats, "failed_requests_count")
    _count(stats, f"{FAILED}{kind}")
