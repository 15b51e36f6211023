"""The data plane's guarantees, on a real Redis: one result per job, take-over of silent workers,
dead letters, and commits that happen once."""

import asyncio
import os
import signal
import threading
import time

import msgspec
import psutil
import pytest
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import FetchJob, FetchResult, RequestRecord, decode, encode
from shoal.coordinator.frontier import Commit, Scheduled, frontier_member
from shoal.coordinator.queues import CrawlQueues
from shoal.store.server import RedisServer
from shoal.workers.jobs import JobStreams
from shoal.workers.worker import MAX_DELIVERIES, Worker
from tests.test_crawl import SlowPagesSpider

CRAWL = "c1"


def scheduled(url: str, priority: int = 0) -> Scheduled:
    job = encode(FetchJob(crawl=CRAWL, request=RequestRecord(url=url, sid="default")))
    prefix, tail = frontier_member(priority, "e.test", job)
    return Scheduled("default", url.encode(), False, prefix, tail)


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def queues(redis):
    queues = CrawlQueues(redis, CRAWL)
    await queues.create({"default": "http"})
    return queues


async def test_a_job_finished_by_two_workers_yields_one_response(redis, queues):
    await queues.commit([Commit(requests=[scheduled("https://e.test/1")])])
    assert (await queues.dispatch(["default"], 4, 0, 0)).sent == 1
    first, second = JobStreams(redis, "w1", "http"), JobStreams(redis, "w2", "http")
    await first.refresh(), await second.refresh()
    [job] = await first.read(10, 100)
    [stolen] = await second.reclaim(10, min_idle_ms=0)
    assert stolen.deliveries == 2
    result = encode(FetchResult(crawl=CRAWL, request=decode(job.payload, FetchJob).request, status=200))
    assert await second.finish(stolen, result) is True
    assert await first.finish(job, result) is False
    assert await redis.xlen(keys.responses(CRAWL)) == 1


async def test_jobs_of_a_worker_that_stops_answering_are_taken_over(redis, queues):
    await queues.commit([Commit(requests=[scheduled(f"https://e.test/{n}") for n in range(3)])])
    await queues.dispatch(["default"], 4, 0, 0)
    silent, live = JobStreams(redis, "silent", "http"), JobStreams(redis, "live", "http")
    await silent.refresh(), await live.refresh()
    assert len(await silent.read(10, 100)) == 3
    assert await live.reclaim(10, min_idle_ms=60_000) == []
    await asyncio.sleep(0.2)
    taken = await live.reclaim(10, min_idle_ms=150)
    assert len(taken) == 3


async def test_touched_jobs_are_not_taken_over(redis, queues):
    await queues.commit([Commit(requests=[scheduled("https://e.test/1")])])
    await queues.dispatch(["default"], 4, 0, 0)
    busy, other = JobStreams(redis, "busy", "http"), JobStreams(redis, "other", "http")
    await busy.refresh(), await other.refresh()
    held = await busy.read(10, 100)
    await asyncio.sleep(0.2)
    await busy.touch(held)
    assert await other.reclaim(10, min_idle_ms=150) == []


async def test_a_response_is_committed_once(redis, queues):
    entry = await redis.xadd(keys.responses(CRAWL), {"r": b"x"})
    await redis.xreadgroup(keys.COORDINATOR_GROUP, "coordinator", {keys.responses(CRAWL): ">"})
    commit = Commit(response_id=entry.decode(), items=[b'{"a":1}'], stats={"items_scraped": 1})
    assert await queues.commit([commit, commit]) == [0, -1]
    assert await redis.xlen(keys.items(CRAWL)) == 1
    assert await redis.hget(keys.stats(CRAWL), "items_scraped") == b"1"


async def test_dispatch_respects_priority_then_fifo_and_capacity(redis, queues):
    urls = [("https://e.test/a", 0), ("https://e.test/b", 5), ("https://e.test/c", 0), ("https://e.test/d", 5)]
    await queues.commit([Commit(requests=[scheduled(url, priority) for url, priority in urls])])
    result = await queues.dispatch(["default"], 3, 0, 0)
    assert (result.sent, result.frontier, result.inflight) == (3, 1, 3)
    entries = await redis.xrange(keys.queue(CRAWL, "default"))
    assert [decode(f[b"j"], FetchJob).request.url[-1] for _, f in entries] == ["b", "d", "a"]


async def test_duplicates_are_scheduled_once_unless_dont_filter(redis, queues):
    again = scheduled("https://e.test/1")
    forced = Scheduled(again.sid, again.fp, True, again.prefix, again.tail)
    assert await queues.commit([Commit(requests=[scheduled("https://e.test/1"), again, forced])]) == [2]


async def test_a_malformed_job_is_dead_lettered_and_the_worker_goes_on(redis, queues):
    await redis.xadd(keys.queue(CRAWL, "default"), {"j": msgspec.msgpack.encode({"not": "a job"})})
    await redis.xadd(keys.queue(CRAWL, "default"), {"other": b"foreign"})
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(redis, "http").run(stop))
    try:
        for _ in range(100):
            if await redis.xlen(keys.dead_letters(CRAWL)) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    dead = await redis.xrange(keys.dead_letters(CRAWL))
    assert [b"not a valid FetchJob" in fields[b"reason"] for _, fields in dead] == [True, True]
    assert await redis.xlen(keys.responses(CRAWL)) == 0
    assert await redis.xlen(keys.queue(CRAWL, "default")) == 0


async def test_a_job_delivered_too_often_is_dead_lettered_and_reported_as_failed(redis, queues):
    await queues.commit([Commit(requests=[scheduled("https://e.test/poison")])])
    await queues.dispatch(["default"], 4, 0, 0)
    crashing = JobStreams(redis, "crashing", "http")
    await crashing.refresh()
    await crashing.read(10, 100)
    for _ in range(MAX_DELIVERIES):  # each take-over by a worker that then dies
        await crashing.reclaim(10, min_idle_ms=0)
    stop = asyncio.Event()
    worker = Worker(redis, "http")
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if await redis.xlen(keys.responses(CRAWL)):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    [(_, fields)] = await redis.xrange(keys.responses(CRAWL))
    result = decode(fields[b"r"], FetchResult)
    assert result.error.kind == "dead_letter" and result.request.url == "https://e.test/poison"
    [(_, dead)] = await redis.xrange(keys.dead_letters(CRAWL))
    assert b"delivered" in dead[b"reason"]


def test_killing_a_worker_mid_crawl_loses_and_repeats_nothing(shop, redis_url):
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            workers = [p for p in psutil.Process().children() if "worker" in p.cmdline()]
            if len(workers) == 2 and len(shop.log) >= 4:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    result = SlowPagesSpider(shop.url, pages=32, seconds=0.3).start(
        redis_url=redis_url, workers={"default": 2}, capacity=4
    )
    killer.join()
    assert killed, "no worker was killed"
    urls = [item["url"] for item in result.items]
    assert len(urls) == len(set(urls)) == 32


def test_a_redis_restart_mid_crawl_with_aof_loses_and_repeats_nothing(shop, tmp_path):
    with RedisServer(appendonly=True) as server:
        restarted: list[float] = []

        def restart_redis_mid_crawl() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not restarted:
                if sum("pool=aof" in path for _, _, path in shop.log) >= 8:
                    server.restart()  # every process's connections drop; the AOF keeps the crawl
                    restarted.append(time.monotonic())
                time.sleep(0.02)

        restarter = threading.Thread(target=restart_redis_mid_crawl)
        restarter.start()
        spider = SlowPagesSpider(f"{shop.url}", pages=32, seconds=0.3)
        spider.start_urls = [url + "&pool=aof" for url in spider.start_urls]
        result = spider.start(redis_url=server.url, capacity=4)
        restarter.join()
    assert restarted, "Redis was not restarted"
    urls = [item["url"] for item in result.items]
    assert len(urls) == len(set(urls)) == 32
