"""Callbacks: a fetched response through the spider's hooks and callback, and what they yield as a Commit."""

import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlparse

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import FailedRequest, FetchResult, MessageError, RequestRecord, decode, encode
from shoal.common.proxy import proxy_label
from shoal.common.request import Request
from shoal.common.response import Response
from shoal.coordinator.adaptive import AdaptiveStore
from shoal.coordinator.cache import CACHE_WORKER, ResponseCache
from shoal.coordinator.escalation import Escalation
from shoal.coordinator.frontier import Commit, Scheduled
from shoal.coordinator.items import json_error, to_json
from shoal.coordinator.queues import CrawlQueues
from shoal.coordinator.records import from_record
from shoal.coordinator.robots import RobotsTxt
from shoal.coordinator.sessions import SessionStarts
from shoal.coordinator.stats import DOMAIN_BYTES, PROXY, SESSION, STATUS, WORKER, count, count_failed
from shoal.coordinator.throttle import DomainDelays
from shoal.spiders import Spider


class Schedule(Protocol):
    """Normalizes, validates and encodes a request for the frontier (``escalated``: its sid was escalated);
    raises ValueError or TypeError on a bad request."""

    def __call__(self, request: Request, escalated: bool = False) -> list[Scheduled]: ...


class FetchFailed(Exception):
    """A request whose fetch failed in a worker: ``kind`` is timeout, connection, dns, ..."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Callbacks:
    """Turns one crawl's fetched responses into Commits by running its spider's hooks and callbacks."""

    def __init__(
        self,
        redis: Redis,
        spider: Spider,
        crawl: str,
        *,
        queues: CrawlQueues,
        schedule: Schedule,
        allowed: Callable[[Request], bool],
        delays: DomainDelays,
        session_starts: SessionStarts,
        robots: RobotsTxt | None,
        escalation: Escalation | None,
        cache: ResponseCache | None,
        max_items: int,
    ) -> None:
        self.spider = spider
        self.crawl = crawl
        self.log = spider.logger
        self.queues = queues
        self.schedule = schedule
        self.allowed = allowed
        self.delays = delays
        self.session_starts = session_starts
        self.robots = robots
        self.escalation = escalation
        self.cache = cache
        self.max_items = max_items  # 0: no limit
        self.adaptive = AdaptiveStore(redis, spider)
        #: Items stored, or about to be with the next commit.
        self.items = 0
        self._learned: list[Commit] = []  # robots.txt responses of the batch, committed after their release

    async def process(self, entry_id: str, payload: bytes) -> Commit:
        """The Commit for response ``entry_id`` of the crawl's response stream (an empty one if it was
        dead-lettered): what its callback yielded, or its failure, retry or robots.txt."""
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
            count_failed(stats, "rejected")
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
                count_failed(stats, kind)
                failed = FailedRequest(request=result.request, kind=kind, message=message, time=time.time())
                commit.failed = encode(failed)
                error = FetchFailed(kind, message)
                self.log.error("Failed %s: %s", request, error)
                await self.spider.on_error(request, error)
            else:
                await self._handle_response(request, result, commit, stats)
        except Exception as e:  # a hook (is_blocked, on_error ...) raised: the response is done with
            count(stats, "callback_errors")
            await self.spider_error(request, e)
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
        count(stats, "requests_count")
        count(stats, f"{SESSION}{request.sid}")
        count(stats, f"{WORKER}{result.worker}")
        count(stats, f"{STATUS}{result.status}")
        count(stats, "response_bytes", len(result.body))
        count(stats, f"{DOMAIN_BYTES}{request.domain}", len(result.body))
        if result.meta.get("body_truncated"):
            count(stats, "truncated_responses")
            self.log.warning(
                "The body of %s was cut at the session's max_body_size (%d bytes)", response, len(result.body)
            )
        if proxy := result.meta.get("proxy"):
            count(stats, f"{PROXY}{proxy_label(proxy)}")
        blocked = await self.spider.is_blocked(response)
        if self.cache is not None:
            if result.worker == CACHE_WORKER:
                count(stats, "cache_hits")
            else:
                count(stats, "cache_misses")
                if not blocked:
                    self.cache.put(result)
        self.delays.record(request.domain, result.elapsed, 200 <= result.status < 300 and not blocked, result.headers)
        if blocked:
            count(stats, "blocked_requests_count")
            await self._retry_blocked(request, result.request, response, commit, stats)
        else:
            if self.escalation and result.request.escalated:
                await self.escalation.learn(request.domain, request.sid)
            await self._run_callback(request, response, commit, stats)
        await self.adaptive.save(adaptive)

    async def _run_callback(self, request: Request, response: Response, commit: Commit, stats: dict) -> None:
        callback = request.callback or self.spider.parse
        requests: list[Scheduled] = []
        items: list[bytes] = []
        try:
            results = callback(response)
            async for result in results:
                if isinstance(result, Request):
                    if not self.allowed(result):
                        count(stats, "offsite_requests_count")
                        self.log.debug("Filtered offsite request to: %s", result.url)
                        continue
                    try:
                        requests += self.schedule(result)
                    except (ValueError, TypeError) as e:
                        count_failed(stats, "rejected")
                        await self.spider_error(result, e, yielded_by=results)
                elif isinstance(result, dict):
                    item = await self.spider.on_scraped_item(result)
                    if item and self.max_items and self.items >= self.max_items:
                        count(stats, "items_dropped")
                        self.log.debug("Dropped from %s (max_items reached)\n%s", response, item)
                    elif item:
                        try:
                            items.append(to_json(item))
                        except TypeError as e:
                            count(stats, "callback_errors")
                            self.log.error("Dropped an item from %s: %s", response, json_error(item, e))
                            continue
                        self.items += 1
                        count(stats, "items_scraped")
                        self.log.debug("Scraped from %s\n%s", response, item)
                    else:
                        count(stats, "items_dropped")
                        self.log.warning("Dropped from %s\n%s", response, item)
                elif result is not None:
                    count(stats, "callback_errors")
                    self.log.error(
                        "Spider must return Request, dict or None, got '%s' from %s in %s",
                        type(result).__name__,
                        _name(callback),
                        request,
                    )
        except Exception as e:  # what the callback yielded before it raised is kept
            count(stats, "callback_errors")
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
            count_failed(stats, "blocked")
            return
        retry, escalated = request.retry_copy(), False
        if self.escalation and type(self.spider).retry_blocked_request is Spider.retry_blocked_request:
            escalated = self.escalation.escalate(retry)
        if escalated:
            count(stats, "escalations_count")
            self.log.info("Escalating blocked request from sid '%s' to '%s': %s", request.sid, retry.sid, request.url)
        else:
            retry = await self.spider.retry_blocked_request(retry, response)
        try:
            commit.requests = self.schedule(retry, escalated)
        except (ValueError, TypeError) as e:
            count_failed(stats, "rejected")
            await self.spider_error(retry, e)
            return
        self.log.info(
            "Scheduled blocked request for retry (%d/%d): %s",
            retry.retry_count,
            self.spider.max_blocked_retries,
            request.url,
        )

    def _learn_robots(self, robots: RobotsTxt, result: FetchResult, commit: Commit) -> None:
        """Read a domain's robots.txt: its requests are routed by it from now on, its delay floor raised."""
        domain = robots.learn(result)
        self.delays.obey_robots(domain, robots.delay(domain))
        commit.stats = {"robots_txt_count": 1}
        self._learned.append(commit)

    def take_learned(self) -> list[Commit]:
        """The commits of the robots.txt responses processed since the last call: they are committed once the
        requests their domain held are released."""
        learned, self._learned = self._learned, []
        return learned

    async def spider_error(self, request: Request, error: Exception, yielded_by: Any = None) -> None:
        """Log an error of the spider's making, and call its on_error. A request that cannot be scheduled is
        shown at the line of the spider that yielded it (``yielded_by``: that generator), with the traceback
        of shoal's own checks only at DEBUG."""
        if yielded_by is None:
            self.log.error("Spider error processing %s: %s", request, error, exc_info=error)
        else:
            self.log.error("%s: %s", _yielded_at(yielded_by), error)
            self.log.debug("Traceback of the check that refused it:", exc_info=error)
        await self.spider.on_error(request, error)


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
