"""The Python client of a shoal service: submit spiders, watch and steer crawls, see the pools.

    async with Client("redis://127.0.0.1:6379/0") as client:
        crawl = await client.submit(ProductSpider)          # or "products.py", with spider args
        async for item in crawl.items(follow=True):
            ...
        print(await crawl.wait())

Everything here reads or writes documented Redis keys (see shoal.common.keys); the client holds no
crawl state of its own.
"""

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from arq.connections import ArqRedis

from shoal.common import keys
from shoal.common.messages import (
    ARQ_SERIALIZERS,
    CoordinatorInfo,
    FailedRequest,
    FetchJob,
    Submission,
    decode,
    encode,
)
from shoal.common.request import Request
from shoal.common.signing import sign
from shoal.common.state import ENDED, CrawlState
from shoal.coordinator import lifecycle
from shoal.coordinator.frontier import entry
from shoal.coordinator.queues import CrawlQueues
from shoal.coordinator.stats import read_stats
from shoal.coordinator.status import (
    MALFORMED,
    CrawlStatus,
    SidStatus,
    WorkerStatus,
    read_crawl,
    read_crawls,
    read_workers,
)
from shoal.spiders import CrawlStats, ItemList, Spider
from shoal.spiders.loader import spider_source
from shoal.spiders.result import check_export_path
from shoal.store import events, heartbeats
from shoal.store.connection import connection_pool
from shoal.store.specs import shared_secret

#: How often a command is retried while Redis is unreachable (about 9 s in all: a restart is ridden out).
RETRIES = 8
#: A Redis that never answered is given up after this many seconds (RedisUnreachable says what to check).
REACH_WITHIN_S = 2.0


class SubmissionError(Exception):
    """A submission the service refused or could not load; the message holds the spider's traceback."""


class CrawlFailed(Exception):
    """A crawl that ended in failure; the message holds the reason (a traceback)."""


@dataclass
class CrawlError:
    """A request of a crawl that failed for good: when (seconds since the epoch), which, and why."""

    time: float
    url: str
    sid: str
    reason: str


class Crawl:
    """A handle on one crawl of the service."""

    def __init__(self, client: "Client", crawl_id: str) -> None:
        self.client = client
        self.id = crawl_id
        self._seen = False  # whether Redis ever had this crawl, as far as this handle knows

    def __repr__(self) -> str:
        return f"<Crawl {self.id}>"

    async def status(self) -> CrawlStatus:
        """The crawl's state, counts and per-sid queues; raises LookupError for an unknown crawl, and
        CrawlFailed for one this handle saw before and Redis no longer has."""
        try:
            status = await read_crawl(self.client.redis, self.id, await self.client.workers())
        except LookupError:
            if self._seen:
                raise CrawlFailed(f"Redis lost crawl {self.id}'s state (restarted without persistence?)") from None
            raise
        self._seen = True
        return status

    async def stats(self) -> CrawlStats:
        """The crawl's Scrapling-style stats so far."""
        return await read_stats(self.client.redis, self.id)

    async def wait(self, timeout: float | None = None) -> CrawlStatus:
        """Wait until the crawl ends; raises CrawlFailed if it failed (or Redis lost it), TimeoutError after
        ``timeout`` s."""
        status = await self._until(lambda state: state in ENDED, timeout)
        if status.state not in ENDED:
            raise TimeoutError(f"crawl {self.id} is still {status.state} after {timeout} s")
        if status.state == CrawlState.FAILED:
            raise CrawlFailed(f"crawl {self.id} failed:\n{status.error}")
        return status

    async def _until(self, done: Callable[[str], bool], timeout: float | None) -> CrawlStatus:
        """The crawl's status once ``done(its state)`` holds, or after ``timeout`` seconds if it still does not;
        between two reads of the state it blocks on the crawl's events stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = events.Waiter(self.client.redis, keys.events(self.id))
        await waiter.mark()  # before the state is read: a change after the read is an event after the mark
        while not done((status := await self.status()).state):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            await waiter.wait(left)
        return status

    async def items(self, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        """The crawl's items from the first; with ``follow``, new ones as they come until the crawl ends."""
        redis, stream, last = self.client.redis, keys.items(self.id), "0"
        while True:
            ended = (await redis.hget(keys.state(self.id), "state") or b"").decode() in ENDED
            reply = await redis.xread({stream: last}, count=1000, block=500 if follow and not ended else None)
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    yield msgspec.json.decode(fields[b"i"])
            if not reply and (ended or not follow):
                return

    async def recent_items(self, count: int = 20) -> list[dict[str, Any]]:
        """The crawl's newest ``count`` items, newest first; raises LookupError for an unknown crawl."""
        return [msgspec.json.decode(fields[b"i"]) for _, fields in await self._newest(keys.items(self.id), count)]

    async def errors(self, count: int = 20) -> list[CrawlError]:
        """The crawl's newest ``count`` failures, newest first: requests whose fetch failed after their
        retries, and jobs dead-lettered by workers (delivered too many times, or undecodable); raises
        LookupError for an unknown crawl."""
        found = [
            CrawlError(failed.time, failed.request.url, failed.request.sid, f"{failed.kind}: {failed.message}")
            for failed in await self.failed()
        ]
        for entry_id, fields in await self._newest(keys.dead_letters(self.id), count):
            url = sid = ""
            with contextlib.suppress(*MALFORMED):  # an undecodable job is itself a reason to dead-letter
                request = decode(fields.get(b"job", b""), FetchJob).request
                url, sid = request.url, request.sid
            when = int(entry_id.split(b"-")[0]) / 1000
            found.append(CrawlError(when, url, sid, fields.get(b"reason", b"").decode(errors="replace")))
        return sorted(found, key=lambda error: error.time, reverse=True)[:count]

    async def _newest(self, stream: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        async with self.client.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.state(self.id))
            pipe.xrevrange(stream, count=count)
            known, entries = await pipe.execute()
        if not known:
            raise LookupError(f"no crawl {self.id!r}")
        return entries

    async def failed(self) -> list[FailedRequest]:
        """The requests whose fetch failed after their retries and were not retried since, oldest first:
        each with its ``request`` (url, sid, callback, meta ...), error ``kind``, ``message`` and ``time``."""
        return await CrawlQueues(self.client.redis, self.id).failed_requests()

    async def retry_failed(self) -> int:
        """Put the failed requests back into their sids' frontiers (deduplication does not apply to them)
        and run the crawl again if it had ended; returns how many were re-queued. A crawl that had ended
        keeps its keys again until it ends anew, and a coordinator of the service resumes it."""
        redis = self.client.redis
        state = await redis.hget(keys.state(self.id), "state")
        if state is None:
            raise LookupError(f"no crawl {self.id!r}")
        queues = CrawlQueues(redis, self.id)
        entries = []
        for entry_id, failed in await queues.failed():
            record = failed.request
            job = encode(FetchJob(crawl=self.id, request=record))
            entries.append(
                (entry_id, entry(record.sid, record.fp, record.priority, Request(record.url).domain, job, True))
            )
        moved = await queues.requeue(entries)
        if moved and state.decode() in (CrawlState.FINISHED, CrawlState.FAILED):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hdel(keys.state(self.id), "finished", "error")
                events.write_state(pipe, self.id, state=CrawlState.RUNNING, control="run")
                await pipe.execute()
            async with redis.pipeline(transaction=False) as pipe:
                async for key in redis.scan_iter(match=keys.crawl_keys(self.id), count=1000):
                    pipe.persist(key)
                await pipe.execute()
        return moved

    async def _control(self, control: str) -> None:
        state = await self.client.redis.hget(keys.state(self.id), "state")
        if state is None:
            raise LookupError(f"no crawl {self.id!r}")
        await events.set_state(self.client.redis, self.id, control=control)

    async def pause(self) -> None:
        """Stop dispatching requests; those in flight finish, nothing is lost."""
        await self._control("pause")

    async def resume(self) -> None:
        """Dispatch again after ``pause``."""
        await self._control("run")

    async def cancel(self) -> None:
        """End the crawl now: nothing more is dispatched, and its items, stats and failed requests are kept
        like those of any ended crawl (for SHOAL_RETENTION_DAYS); its state says ``cancelled``."""
        await self._control("cancel")

    async def delete(self) -> int:
        """Delete an ended crawl (finished, failed or cancelled) and everything it holds: items, stats, failed
        requests and state; returns how many keys went. Raises ValueError for a crawl that has not ended
        (cancel it first), LookupError for an unknown one."""
        redis = self.client.redis
        state, control = await redis.hmget(keys.state(self.id), "state", "control")
        if state is None:
            raise LookupError(f"no crawl {self.id!r}")
        if state.decode() not in ENDED:
            if control == b"cancel":
                raise ValueError(f"crawl {self.id} is being cancelled: delete it once its state says cancelled")
            raise ValueError(f"crawl {self.id} is {state.decode()}: cancel it first (shoal cancel {self.id})")
        await CrawlQueues(redis, self.id).end()  # workers stop reading its streams before they go
        doomed = [key async for key in redis.scan_iter(match=keys.crawl_keys(self.id), count=1000)]
        if doomed:
            await redis.delete(*doomed)
        await redis.srem(keys.CRAWLS, self.id)
        return len(doomed)

    async def export(self, path: str | Path) -> int:
        """Write the crawl's items to ``path`` on this machine (format by extension: .json, .jsonl, .csv,
        .xml); returns how many. Raises ValueError for another extension, LookupError for an unknown crawl."""
        check_export_path(path)
        await self.status()  # an unknown crawl is an error, not an empty file
        found = ItemList([item async for item in self.items()])
        found.export(path)
        return len(found)


class Client:
    """Talks to a shoal service through its Redis (``$REDIS_URL`` by default)."""

    def __init__(self, redis_url: str | None = None, *, secret: str | None = None, retries: int = RETRIES) -> None:
        """``retries``: how often each command is retried while Redis is unreachable, backing off (0: none).
        A URL that is not a Redis URL is a ValueError; a Redis that does not answer within REACH_WITHIN_S
        seconds of the first command is a redis ConnectionError naming the URL (password masked)."""
        self.redis_url = redis_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.secret = secret if secret is not None else shared_secret()
        pool = connection_pool(self.redis_url, retries=retries, reach_within=REACH_WITHIN_S)
        self.redis = ArqRedis(connection_pool=pool, default_queue_name=keys.SUBMISSIONS, **ARQ_SERIALIZERS)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.redis.aclose(close_connection_pool=True)

    def crawl(self, crawl_id: str) -> Crawl:
        return Crawl(self, crawl_id)

    async def submit(
        self,
        spider: type[Spider] | str | Path,
        *,
        spider_name: str | None = None,
        crawl_id: str | None = None,
        accept_timeout: float = 30.0,
        **spider_args: Any,
    ) -> Crawl:
        """Submit a Spider class or a spider file and wait until a coordinator accepts it.

        Raises SubmissionError with the spider's traceback when it does not load (import error, no
        such class, a bad argument) or the service refuses it, and TimeoutError when no coordinator
        took it within ``accept_timeout`` seconds (it stays queued).
        """
        if isinstance(spider, type):
            source, filename = spider_source(spider)
            if not source:
                raise SubmissionError(f"cannot find the source of {spider.__name__}; submit its file instead")
            spider_name, label = spider_name or spider.__name__, spider.name or spider.__name__
        else:
            path = Path(spider)
            try:
                source = path.read_text(encoding="utf-8")
            except OSError as e:
                raise SubmissionError(f"cannot read spider file {path}: {e.strerror}") from None
            filename, label = str(path), spider_name or path.stem
        crawl_id = crawl_id or f"{label}-{uuid.uuid4().hex[:8]}"
        submission = Submission(
            crawl=crawl_id,
            source=source,
            filename=filename,
            spider=spider_name or "",
            args=spider_args,
            submitted=time.time(),
        )
        payload = encode(submission)
        registered = await lifecycle.register(
            self.redis, crawl_id, label, CrawlState.SUBMITTED, new=True, submitted=submission.submitted
        )
        if not registered:
            raise SubmissionError(f"a crawl {crawl_id!r} already exists")
        signature = sign(payload, self.secret) if self.secret else ""
        await self.redis.enqueue_job("accept", payload, signature, _job_id=crawl_id)
        crawl = Crawl(self, crawl_id)
        status = await crawl._until(lambda state: state != CrawlState.SUBMITTED, accept_timeout)
        if status.state == CrawlState.SUBMITTED:
            raise TimeoutError(
                f"no coordinator accepted crawl {crawl_id} within {accept_timeout} s "
                "(is `shoal coordinator` running on this Redis?); it stays queued"
            )
        if status.state == CrawlState.FAILED:
            raise SubmissionError(f"crawl {crawl_id} was not accepted:\n{status.error}")
        return crawl

    async def crawls(self) -> list[CrawlStatus]:
        """Every crawl this Redis knows, newest first."""
        return await read_crawls(self.redis)

    async def workers(self) -> list[WorkerStatus]:
        """Every registered worker, alive or not (a dead one crashed, saying why in ``info.stopped``, or
        stopped sending heartbeats). A dead worker's ``info.held`` counts the jobs it still holds in Redis:
        0 once live workers took them over."""
        return await read_workers(self.redis)

    async def coordinators(self) -> list[tuple[CoordinatorInfo, bool]]:
        """Every registered coordinator with whether its heartbeat is recent."""
        return await heartbeats.read(self.redis, keys.COORDINATORS, CoordinatorInfo)

    async def queues(self) -> list[SidStatus]:
        """Every sid of every running or paused crawl, with its queue depths and live workers."""
        return [sid for crawl in await self.crawls() if crawl.state not in ENDED for sid in crawl.sids.values()]
