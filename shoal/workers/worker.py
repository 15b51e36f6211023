"""The worker loop: take jobs for one session kind from Redis, fetch them, return the results.

A worker never parses. It holds at most ``capacity`` jobs at a time (backpressure: it asks Redis for
only as many as it has room for), builds a session per (crawl, sid) the first time a job needs it,
keeps the jobs it holds from being reclaimed while it works on them, takes over the jobs of workers
that died, and acknowledges a job in the same atomic step that publishes its result.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import (
    FetchError,
    FetchJob,
    FetchResult,
    MessageError,
    WorkerInfo,
    decode,
    encode,
)
from shoal.common.state import CrawlState
from shoal.common.version import __version__
from shoal.store import events
from shoal.store.connection import REDIS_DOWN, Backoff
from shoal.store.specs import SpecError, load_spec, shared_secret
from shoal.workers.jobs import Job, JobStreams
from shoal.workers.memory import tree_memory
from shoal.workers.metrics import WorkerMetrics
from shoal.workers.sessions import Session, SessionFactory, SessionStartError

log = logging.getLogger("shoal.worker")

#: A job nobody touched for this long belongs to a dead worker and is taken over.
LEASE_MS = 5_000
#: A job delivered more often than this is dead-lettered (it keeps killing workers).
MAX_DELIVERIES = 5
#: Jobs a worker holds at once unless told otherwise: HTTP fetches are cheap, browser tabs are not.
DEFAULT_CAPACITY = {"http": 64, "dynamic": 4, "stealth": 4}
#: Longest wait between two attempts to reach Redis while it is unreachable.
MAX_BACKOFF_S = 5.0
#: On SIGTERM a worker finishes its held jobs for this long, then hands back the rest.
DRAIN_S = 10.0
_MAINTENANCE_S = 1.0


class Worker:
    """Serves the job streams of every crawl's sids of one ``kind`` (only ``sids`` when given)."""

    def __init__(
        self,
        redis: Redis,
        kind: str,
        sids: list[str] | None = None,
        capacity: int | None = None,
        drain: float | None = None,
    ) -> None:
        self.redis = redis
        self.drain = DRAIN_S if drain is None else drain
        self.kind = kind
        self.capacity = capacity or DEFAULT_CAPACITY[kind]
        self.name = f"{kind}-{socket.gethostname()}-{os.getpid()}"
        self.streams = JobStreams(redis, self.name, kind, sids or ())
        self.secret = shared_secret()
        self.factory = SessionFactory(redis, kind, self.capacity, self.secret)
        self.metrics = WorkerMetrics(kind)
        self.info = WorkerInfo(
            id=self.name,
            kind=kind,
            sids=sorted(sids or ()),
            capacity=self.capacity,
            pid=os.getpid(),
            host=socket.gethostname(),
            version=__version__,
            started=time.time(),
            seen=time.time(),
        )
        self._held: dict[str, Job] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._sessions: dict[tuple[str, str], Session] = {}
        self._unstartable: dict[tuple[str, str], str] = {}  # sessions that could not start, with the reason
        self._session_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._seen_sessions: set[tuple[str, str]] = set()
        self._served: set[str] = set()  # the job streams this worker read at its last look
        self._leaving: dict[str, int] = {}  # streams it stopped reading while their crawl looked active: looks left

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish (or hand back) held jobs and close sessions. While Redis
        is unreachable the worker waits and retries, backing off up to MAX_BACKOFF_S between attempts."""
        log.info("worker %s serving %s sessions (%s)", self.name, self.kind, ", ".join(self.streams.sids) or "all")
        if self.kind == "http":  # loaded before the worker registers: its first fetch waits for no import
            import shoal.workers.http  # noqa: F401
        next_maintenance, backoff = 0.0, Backoff(log, MAX_BACKOFF_S)
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_maintenance:
                        await self._maintain()
                        next_maintenance = time.monotonic() + _MAINTENANCE_S
                    await self._take_jobs(stop)
                    backoff.reset()
                except REDIS_DOWN as e:
                    await _first(stop.wait(), timeout=backoff.failed(e))
        except Exception as e:
            self.info.stopped = f"crashed: {type(e).__name__}: {e}"
            raise
        finally:
            await self._shutdown()
            with contextlib.suppress(Exception):  # Redis may be gone; the heartbeat then just stops
                if self.info.stopped:  # listed as dead, with why, until the coordinators forget it
                    await self._heartbeat()
                else:  # stopped on purpose: gone from the registry
                    await self.redis.hdel(keys.WORKERS, self.name)
        log.info("worker %s stopped", self.name)  # a crash propagates instead: its traceback says why

    async def _take_jobs(self, stop: asyncio.Event) -> None:
        """Wait for room, then start as many jobs as there is room for (blocking up to a second)."""
        free = self.capacity - len(self._held)
        if free <= 0:
            self._room.clear()
            await _first(self._room.wait(), stop.wait(), timeout=_MAINTENANCE_S)
            return
        jobs = await self.streams.read(free, int(_MAINTENANCE_S * 1000))
        if not jobs and not self.streams.streams:
            await _first(stop.wait(), timeout=_MAINTENANCE_S)
        self._start(jobs)

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._held[job.entry_id] = job
            self._start_task(self._handle(job))

    def _start_task(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self) -> None:
        """Rewrite this worker's record in the registry: what it serves, holds and has fetched."""
        info = self.info
        info.seen, info.held = time.time(), len(self._held)
        info.rss = tree_memory()
        if await self.redis.hset(keys.WORKERS, self.name, msgspec.json.encode(info)):  # new: it just registered
            await events.add(self.redis, keys.WORKER_EVENTS, "worker", self.name)
        self.metrics.held.labels(self.kind).set(info.held)

    async def _maintain(self) -> None:
        """Heartbeat, keep held jobs leased, take over abandoned ones, and drop sessions of ended crawls."""
        await self._heartbeat()
        if self._held:
            await self.streams.touch(self._held.values())
        streams = await self.streams.refresh()
        if self.kind != "http":
            self._start_task(self._warm(streams))
        for stream in sorted(self._served - set(streams) | set(self._leaving)):
            await self._say_why_gone(stream, stream in streams)
        self._served = set(streams)
        live = {keys.queue_owner(stream)[0] for stream in streams}
        for crawl_sid in [cs for cs in self._sessions if cs[0] not in live]:
            await self._sessions.pop(crawl_sid).close()
        for crawl_sid in [cs for cs in self._unstartable if cs[0] not in live]:
            del self._unstartable[crawl_sid]
        free = self.capacity - len(self._held)
        if free > 0:
            reclaimed = await self.streams.reclaim(free, LEASE_MS)
            if reclaimed:
                log.warning("took over %d jobs of workers that stopped answering", len(reclaimed))
            self._start(reclaimed)

    async def _say_why_gone(self, stream: str, back: bool) -> None:
        """Log once why this worker no longer reads ``stream``: its crawl ended, paused or went away, or the
        stream itself was broken (deleted, its group destroyed, replaced by another type). A crawl still
        active is looked at again at the next maintenance, a few times: its new state is written just after
        its streams are unregistered."""
        if back:  # registered again (a paused crawl resumed) before its new state was seen
            self._leaving.pop(stream, None)
            return
        crawl, _ = keys.queue_owner(stream)
        state, error = (
            value.decode(errors="replace") if value else ""
            for value in await self.redis.hmget(keys.state(crawl), "state", "error")
        )
        broken = self.streams.broken.get(stream)
        if not state:
            # the same words as the coordinator's, which marks the crawl failed (a delete leaves no stream read)
            level, why = logging.ERROR, f"Redis lost crawl {crawl}'s state (restarted without persistence?)"
        elif state == CrawlState.FAILED:
            level, why = logging.WARNING, f"crawl {crawl} failed: {(error.splitlines() or ['?'])[-1]}"
        elif broken:
            level, why = logging.ERROR, f"{broken} while crawl {crawl} is {state}"
        elif state in (CrawlState.RUNNING, CrawlState.SUBMITTED) and self._leaving.setdefault(stream, 3) > 1:
            self._leaving[stream] -= 1
            return
        else:
            level, why = logging.INFO, f"crawl {crawl} is {state}"
        self._leaving.pop(stream, None)
        log.log(level, "stopped reading %s: %s", stream, why)

    async def _session(self, crawl: str, sid: str) -> Session:
        """The started session for a crawl's sid, started on first use; raises SessionStartError if it could
        not start (reported once to the crawl, whose coordinator then ends it)."""
        key = (crawl, sid)
        if key in self._sessions:
            return self._sessions[key]
        async with self._session_locks.setdefault(key, asyncio.Lock()):
            if key in self._unstartable:
                raise SessionStartError(self._unstartable[key])
            if key not in self._sessions:
                spec = await self.factory.crawl_spec(crawl, sid)
                try:
                    session = self.factory.build(crawl, sid, spec)
                    await session.start()
                except Exception as e:
                    reason = f"{type(e).__name__}: {str(e).strip()}"
                    log.error("could not start %s session '%s' of crawl %s: %s", self.kind, sid, crawl, reason)
                    self._unstartable[key] = reason
                    await self._report_start(crawl, sid, reason)
                    raise SessionStartError(reason) from None
                self._sessions[key] = session
                await self._report_start(crawl, sid, "")
                log.info("started %s session '%s' for crawl %s", self.kind, sid, crawl)
        return self._sessions[key]

    async def _report_start(self, crawl: str, sid: str, error: str) -> None:
        """Tell the crawl's coordinator that this worker started the session (or why it could not)."""
        fields = {"sid": sid, "worker": self.name, "error": error}
        await self.redis.xadd(keys.session_starts(crawl), fields)

    async def _warm(self, streams: list[str]) -> None:
        """Start the non-lazy sessions of crawls seen for the first time, as their crawl starts."""
        for stream in streams:
            key = keys.queue_owner(stream)
            if key in self._seen_sessions:
                continue
            self._seen_sessions.add(key)
            try:
                config = (await load_spec(self.redis, key[0], self.secret)).sessions.get(key[1])
            except SpecError:
                continue
            if config is not None and not config.lazy and config.kind == self.kind:
                with contextlib.suppress(SessionStartError, LookupError):  # reported to the crawl / it ended
                    await self._session(*key)

    async def _handle(self, job: Job) -> None:
        try:
            try:
                fetch = decode(job.payload, FetchJob)
                if fetch.crawl != keys.queue_owner(job.stream)[0]:
                    raise MessageError(f"a FetchJob of crawl '{fetch.crawl}' in another crawl's stream")
            except MessageError as e:
                log.error("dead-lettered a job in %s: %s", job.stream, e)
                await self.streams.finish(job, dead_reason=str(e))
                return
            if job.deliveries > MAX_DELIVERIES:
                reason = f"delivered {job.deliveries} times without a result"
                log.error("dead-lettered %s: %s", fetch.request.url, reason)
                error = FetchError(kind="dead_letter", message=reason)
                result = FetchResult(crawl=fetch.crawl, request=fetch.request, error=error)
                await self.streams.finish(job, encode(result), dead_reason=reason)
                return
            try:
                session = await self._session(fetch.crawl, fetch.request.sid)
                result = await session.fetch(fetch.crawl, fetch.request)
            except SessionStartError as e:
                error = FetchError(kind="session", message=f"the session could not start: {e}")
                result = FetchResult(crawl=fetch.crawl, request=fetch.request, error=error)
            except (LookupError, ValueError, TypeError) as e:
                error = FetchError(kind="invalid", message=str(e))
                result = FetchResult(crawl=fetch.crawl, request=fetch.request, error=error)
            except Exception as e:  # a bug in a session must fail the request, not hang it
                log.exception("fetching %s failed", fetch.request.url)
                error = FetchError(kind="worker", message=f"{type(e).__name__}: {e}")
                result = FetchResult(crawl=fetch.crawl, request=fetch.request, error=error)
            result.worker = self.name
            self.metrics.observe(result)
            self.info.fetched += 1
            try:
                await self.streams.finish(job, encode(result))
            except REDIS_DOWN as e:  # the job stays pending: fetched again later
                log.warning("could not return %s (Redis unreachable: %s); it will be redelivered", job.entry_id, e)
        finally:
            self._held.pop(job.entry_id, None)
            self._room.set()

    async def _shutdown(self) -> None:
        """Finish held jobs for up to ``drain`` seconds, then stop the rest and hand them back at once."""
        if self._held:
            log.info("finishing %d held jobs (for up to %g s)", len(self._held), self.drain)
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=self.drain)
            handed_back = list(self._held.values())
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            if handed_back:  # others take these over at once rather than after their lease runs out
                await self.streams.release(handed_back, LEASE_MS)
                log.warning("handed back %d unfinished jobs", len(handed_back))
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        await self.factory.close()


async def _first(*aws: Any, timeout: float) -> None:
    """Wait until the first of ``aws`` completes, or ``timeout`` seconds."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
