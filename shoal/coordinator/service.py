"""The coordinator service (``shoal coordinator``): accepts submitted crawls and runs them, many at once.

Submissions arrive through arq (msgspec-encoded, never pickled; results not kept). A crawl is owned
by whichever coordinator holds its lease, a Redis key with a TTL that the owner renews every
``RENEW_S`` seconds; when a coordinator dies its leases run out and any coordinator, a restarted one
or a second one, takes the crawls over and resumes them from Redis.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
import uuid

import msgspec
from arq.connections import ArqRedis
from arq.worker import Worker as ArqWorker
from arq.worker import func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shoal.common import keys
from shoal.common.messages import ARQ_SERIALIZERS, CoordinatorInfo, MessageError, Submission, WorkerInfo, decode
from shoal.common.signing import verify
from shoal.common.state import ACTIVE, CrawlState
from shoal.common.version import __version__
from shoal.coordinator import lifecycle
from shoal.coordinator.control import CrawlCancelled, CrawlStateLost
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.lease import RENEW_S, Leases
from shoal.spiders import SessionConfigurationError, Spider
from shoal.spiders.loader import crawl_spec, describe_error, load_spider
from shoal.store import events
from shoal.store.connection import REDIS_DOWN, Backoff, connection_pool, masked
from shoal.store.specs import load_spec, store_spec

log = logging.getLogger("shoal.coordinator")

#: A worker whose heartbeat stopped this long ago is removed from the registry (listed dead until then).
FORGET_WORKERS_S = 3600
#: Longest wait between two heartbeats while Redis is unreachable (the normal interval, RENEW_S).
_MAX_BACKOFF_S = RENEW_S


class Coordinator:
    """One coordinator process: takes submissions, holds leases, runs an engine per owned crawl."""

    def __init__(self, redis: Redis, redis_url: str, *, secret: str | None = None, name: str | None = None) -> None:
        self.redis = redis
        self.redis_url = redis_url
        self.secret = secret
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.started = time.time()
        self.tasks: dict[str, asyncio.Task] = {}
        self.leases = Leases(redis, self.id)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then hand every owned crawl back (resumable) and exit. While Redis
        is unreachable the coordinator keeps trying: its heartbeat backs off up to RENEW_S, the intake's
        commands are retried, and each crawl's engine waits and resumes."""
        intake = ArqWorker(
            functions=[func(self._accept, name="accept")],
            queue_name=keys.SUBMISSIONS,
            redis_pool=ArqRedis(connection_pool(self.redis_url, retries=-1), **ARQ_SERIALIZERS),
            handle_signals=False,
            keep_result=0,
            max_tries=3,
            job_timeout=120,
            poll_delay=0.2,
            **ARQ_SERIALIZERS,
        )
        if not log.isEnabledFor(logging.DEBUG):  # arq's own lines (a "shutdown on SIGUSR1" on every stop) mislead
            logging.getLogger("arq").setLevel(logging.WARNING)
        intake_task = asyncio.create_task(intake.async_run())
        log.info("coordinator %s serving %s", self.id, masked(self.redis_url))
        backoff = Backoff(log, _MAX_BACKOFF_S)
        try:
            while not stop.is_set():
                try:
                    await self._heartbeat()
                    backoff.reset()
                except REDIS_DOWN as e:
                    backoff.failed(e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.delay or RENEW_S)
                if intake_task.done():
                    intake_task.result()  # the intake died: let the process fail loudly
        finally:
            intake_task.cancel()
            if self.tasks:
                log.info("handing back crawls %s: any coordinator resumes them", ", ".join(sorted(self.tasks)))
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            with contextlib.suppress(RedisError, TimeoutError):  # Redis may be gone: then there is nothing to tidy
                await asyncio.wait_for(intake.close(), 5)
            with contextlib.suppress(RedisError):
                await self.redis.hdel(keys.COORDINATORS, self.id)
        log.info("coordinator %s stopped", self.id)  # a crash propagates instead: its traceback says why

    # -- submissions ----------------------------------------------------------------------------

    async def _accept(self, ctx: dict, payload: bytes, signature: str = "") -> str:
        """arq job: check a submission, load its spider, register the crawl and start running it."""
        try:
            submission = decode(payload, Submission)
        except MessageError as e:
            log.error("rejected a submission: %s", e)
            return "rejected"
        crawl = submission.crawl
        if self.secret and not (signature and verify(payload, signature, self.secret)):
            await self._fail(crawl, "refused: the submission is not signed with this cluster's secret (SHOAL_SECRET)")
            return "refused"
        if await self.redis.exists(keys.spec(crawl)):
            return "already accepted"  # a retried job whose first run got this far
        try:
            spider = load_spider(submission.source, submission.filename, submission.spider or None, submission.args)
            spec = crawl_spec(crawl, spider, submission.source, submission.filename, submission.args)
        except Exception as e:  # the spider's line and the reason first, then the whole traceback
            reason = describe_error(e, submission.filename)
            await self._fail(crawl, f"{reason}\n\n{''.join(traceback.format_exception(e))}")
            return "failed"
        await store_spec(self.redis, spec, self.secret)
        await lifecycle.register(self.redis, crawl, spec.name, CrawlState.RUNNING)
        if await self.leases.claim(crawl):
            self._start(crawl, spider)
        log.info("accepted crawl %s (%s)", crawl, spec.class_name)
        return "accepted"

    async def _fail(self, crawl: str, error: str) -> None:
        log.error("crawl %s failed: %s", crawl, error)
        await lifecycle.end(self.redis, crawl, CrawlState.FAILED, error=error)

    # -- ownership ------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Renew owned leases (dropping crawls whose lease was lost), take over orphans, say we live."""
        for crawl, task in list(self.tasks.items()):
            if not task.done() and not await self.leases.renew(crawl):
                log.error("lost the lease of crawl %s; stopping it here", crawl)
                task.cancel()
        for raw in await self.redis.smembers(keys.CRAWLS):
            crawl = raw.decode()
            if crawl in self.tasks:
                continue
            state = await self.redis.hget(keys.state(crawl), "state")
            if state is None:  # its keys expired
                await self.redis.srem(keys.CRAWLS, crawl)
            elif state.decode() in ACTIVE and await self.leases.claim(crawl):
                log.info("taking over crawl %s", crawl)
                self._start(crawl, None)
        for worker, raw in (await self.redis.hgetall(keys.WORKERS)).items():
            with contextlib.suppress(msgspec.DecodeError):
                if time.time() - msgspec.json.decode(raw, type=WorkerInfo).seen > FORGET_WORKERS_S:
                    await self.redis.hdel(keys.WORKERS, worker)
        info = CoordinatorInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            started=self.started,
            seen=time.time(),
            crawls=sorted(self.tasks),
        )
        await self.redis.hset(keys.COORDINATORS, self.id, msgspec.json.encode(info))

    def _start(self, crawl: str, spider: Spider | None) -> None:
        task = asyncio.create_task(self._run(crawl, spider), name=f"crawl {crawl}")
        self.tasks[crawl] = task
        task.add_done_callback(lambda _: self.tasks.pop(crawl, None))

    async def _run(self, crawl: str, spider: Spider | None) -> None:
        """Run (or resume) an owned crawl to its end, then give up its lease."""
        try:
            if spider is None:
                spec = await load_spec(self.redis, crawl, self.secret)
                spider = load_spider(spec.source, spec.filename, spec.class_name, spec.args)
            engine = CrawlEngine(self.redis, spider, crawl)
            await engine.run()
            if engine.pausing:  # the spider called pause(): paused as by `shoal pause`, until resumed
                await events.set_state(self.redis, crawl, control="pause")
            await lifecycle.expire(self.redis, crawl)
        except CrawlCancelled:  # nothing more is dispatched; its keys are kept as any ended crawl's
            await lifecycle.end(self.redis, crawl, CrawlState.CANCELLED)
            await lifecycle.expire(self.redis, crawl)
            log.info("cancelled crawl %s", crawl)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN as e:  # the crawl stays resumable; a heartbeat retakes it
            log.warning("crawl %s stopped here: Redis unreachable (%s); it resumes once Redis is back", crawl, e)
        except Exception as e:
            lost = isinstance(e, CrawlStateLost)  # Redis came back empty: the reason says so, no traceback
            if lost or isinstance(e, SessionConfigurationError):  # a worker's reason is the whole story
                await self._fail(crawl, str(e) if lost else f"{type(e).__name__}: {e}")
            else:
                await self._fail(crawl, "".join(traceback.format_exception(e)))
            if lost:
                await self.redis.sadd(keys.CRAWLS, crawl)  # so that `shoal status` lists it, failed, with the reason
            await lifecycle.expire(self.redis, crawl)
        finally:
            with contextlib.suppress(RedisError):  # if Redis is unreachable, the lease runs out by itself
                await self.leases.release(crawl)
