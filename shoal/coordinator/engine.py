"""The coordinator's engine: the loop that keeps one crawl's frontier moving.

It never fetches. It dispatches as many requests as capacity and politeness allow, reads the fetched
responses from Redis, has them processed (shoal.coordinator.callbacks) and commits what their callbacks
produced (items, new requests, stats) atomically with the responses' acknowledgement. The crawl ends
when every frontier is empty and nothing is in flight.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.common import keys
from shoal.common.messages import FetchError, FetchJob, FetchResult, decode, encode
from shoal.common.request import Request
from shoal.common.state import CrawlState
from shoal.coordinator import lifecycle
from shoal.coordinator.cache import CACHE_WORKER, ResponseCache
from shoal.coordinator.callbacks import Callbacks
from shoal.coordinator.control import CONTROL_EVERY_S, Control, CrawlCancelled
from shoal.coordinator.dedup import Dedup
from shoal.coordinator.escalation import Escalation
from shoal.coordinator.frontier import Commit, Scheduled
from shoal.coordinator.items import read_items
from shoal.coordinator.queues import CrawlQueues, DispatchResult
from shoal.coordinator.quotas import Quotas
from shoal.coordinator.robots import RobotsTxt
from shoal.coordinator.scheduler import Scheduler
from shoal.coordinator.sessions import SessionStarts
from shoal.coordinator.stats import LiveStats, add_counts, count_failed
from shoal.coordinator.throttle import AutoThrottle, DomainDelays
from shoal.spiders import CrawlStats, ItemList, Spider
from shoal.spiders.spider import CrawlControl
from shoal.store.connection import REDIS_DOWN, Backoff

_SEED_BATCH = 500
_READ_COUNT = 128
#: Longest wait between two attempts to reach Redis while it is unreachable.
_MAX_BACKOFF_S = 5.0
#: After this long waiting for the non-lazy sessions to start, the engine says which and why it may be.
_SESSIONS_PATIENCE_S = 30.0


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
        self._allowed = set(spider.allowed_domains or ())
        self.quotas = Quotas.of(spider)
        self.escalation = Escalation(redis, crawl, spider) if spider.escalation else None
        self.cache = None
        if spider.development_mode:
            self.cache = ResponseCache(spider.development_cache_dir or f".scrapling_cache/{spider.name}")
        self.scheduler = Scheduler(crawl, spider, self.escalation, self.robots, self.cache)
        self.callbacks = Callbacks(
            redis,
            spider,
            crawl,
            queues=self.queues,
            schedule=self.scheduler.schedule,
            allowed=self._is_allowed,
            delays=self.delays,
            session_starts=self.session_starts,
            robots=self.robots,
            escalation=self.escalation,
            cache=self.cache,
            max_items=self.quotas.max_items,
        )
        self.control = Control(redis, crawl, self.session_starts)
        self.live_stats = LiveStats(redis, crawl, spider, self.delays)
        #: The quota that stopped the crawl ("" while none has).
        self.stop_reason = ""
        #: True once ``pause()`` was asked: the run ends, resumable, when nothing is in flight.
        self.pausing = False
        self.spider_control = CrawlControl()  # the spider's pause() sets its flag
        self._turn = 0

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
                count_failed(stats, "rejected")
                await self.callbacks.spider_error(request, e, yielded_by=requests)
            if len(batch) >= _SEED_BATCH:
                await self._commit([Commit(requests=batch, stats=stats)])
                batch, stats = [], {}
        await self._commit([Commit(requests=batch, stats=stats)])
        await self.redis.hset(keys.state(self.crawl), "seeded", 1)

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
            elapsed = time.time() - self.live_stats.started
            self.stop_reason = self.quotas.reached(result.dispatched, self.callbacks.items, elapsed)
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
        commits = [await self.callbacks.process(entry_id, payload) for entry_id, payload in entries]
        learned = self.callbacks.take_learned()
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
                self.callbacks.items -= len(commit.items)
            elif commit.stats:
                add_counts(self.spider.stats, commit.stats)
        if self.robots:
            await self.robots.count_disallowed()
        await self.delays.flush()

    async def run(self) -> CrawlStats:
        """Run the crawl to its end (resuming it if it was already started) and return its stats."""
        await self.queues.create({sid: self.sessions.get(sid).kind for sid in self.sessions.session_ids})
        await self.delays.load(await self.robots.load() if self.robots else {})
        resuming = bool(await self.redis.hget(keys.state(self.crawl), "seeded"))
        started = await self.redis.hget(keys.state(self.crawl), "started")
        live = self.live_stats
        live.started = float(started) if started else live.started
        await self.control.set_state(CrawlState.RUNNING, started=live.started)
        await live.load()
        self.callbacks.items = self.spider.stats.items_scraped
        if self.escalation:
            await self.escalation.load()
        self.spider.attach_control(self.spider_control)
        await self._start_sessions()
        await self.spider.on_start(resuming=resuming)
        try:
            if resuming:
                self.log.info("Resuming crawl %s, skipping start_requests()", self.crawl)
                await self._consume_pending()
            else:
                await self._seed()
            backoff = Backoff(self.log, _MAX_BACKOFF_S)
            while True:
                try:
                    if backoff.delay:  # reconnected: what was read but not committed before the outage comes first
                        await self.control.check_state()
                        await self._consume_pending()
                        backoff.reset()
                    if not await self._step():
                        break
                except REDIS_DOWN as e:
                    await asyncio.sleep(backoff.failed(e))
                except ResponseError:  # a stream or group that vanished (NOGROUP, no such key) says why
                    await self.control.check_state()
                    raise
        finally:
            self.spider.attach_control(None)
            await self.spider.on_close()
        await live.sync()
        if self.pausing:
            await lifecycle.end(self.redis, self.crawl, CrawlState.PAUSED)
            return await self.stats()
        await lifecycle.end(self.redis, self.crawl, CrawlState.FINISHED, stop_reason=self.stop_reason)
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
            await starts.read(block_ms=int(CONTROL_EVERY_S * 1000))
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
        if self.spider_control.pause_requested and not self.pausing:
            self.log.info("Pausing crawl %s: the spider asked", self.crawl)
            self.pause()
        control = await self._read_control()
        if control == b"cancel":
            raise CrawlCancelled(self.crawl)
        if self.pausing and await self.queues.inflight() == 0:
            return False
        if control == b"pause" or self.pausing:  # no dispatch; what is in flight comes back and is processed
            await self.control.set_state(CrawlState.PAUSED)
            entries, changed = await self.queues.read(_READ_COUNT, int(CONTROL_EVERY_S * 1000))
        else:
            await self.control.set_state(CrawlState.RUNNING)
            if self.cache is not None:
                await self._replay(self.cache)
            done, dispatched = await self._dispatch()
            wait = dispatched.wait_ms
            if done:
                return False
            if dispatched.inflight == 0 and wait >= 0:
                # Nothing can come back: wait for the delayed domain on this clock; a blocked read would end
                # only at Redis's next tick (up to 100 ms late at its default hz), slowing delayed crawls.
                await asyncio.sleep(min(wait / 1000, CONTROL_EVERY_S))
                return True
            entries, changed = await self.queues.read(_READ_COUNT, wait if wait >= 0 else 1000)
        if changed:  # a pause or cancel, read in the same blocking read as the responses, takes effect at once
            self.control.changed()
        if entries:
            await self._consume(entries)
        return True

    async def _read_control(self) -> bytes:
        """What the client asks (run, pause, cancel), read at most every CONTROL_EVERY_S seconds (see
        Control.read); the spider's live stats are brought up to date as often."""
        if await self.control.read():
            await self.live_stats.sync()
        return self.control.asked

    async def stats(self) -> CrawlStats:
        """The crawl's stats so far."""
        return await self.live_stats.read()

    async def item_list(self) -> ItemList:
        """Every item stored so far, as an ItemList."""
        return ItemList([item async for item in self.items()])

    def items(self) -> AsyncIterator[dict[str, Any]]:
        """Every item stored so far, in order."""
        return read_items(self.redis, self.crawl)
