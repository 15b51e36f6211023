"""A worker outlives every way a crawl's job stream can vanish under it, on Redis 6.2 and 7, and says why once.

Redis 7 answers a client blocked in XREADGROUP with an UNBLOCKED error when the stream is deleted
(DEL, expiry, FLUSHDB, RENAME ...); Redis 6.2 lets the read time out and answers the next one with
NOGROUP. Destroying the group gives NOGROUP on both; a key of another type gives WRONGTYPE.
"""

import asyncio
import time

import msgspec
import pytest
import redis

from shoal.client import Client
from shoal.common import keys
from shoal.common.messages import WorkerInfo
from shoal.demo.site import ShopSite, start_site
from shoal.store.server import RedisServer
from tests.conftest import redis_binaries
from tests.test_service import SHOP_SPIDER, Service, expected, found, wait_for

VANISHED = "vanishing-1"
STREAM = keys.queue(VANISHED, "default")


def _delete(r: redis.Redis) -> None:
    r.delete(STREAM)


def _expire(r: redis.Redis) -> None:
    r.pexpire(STREAM, 1)


def _rename(r: redis.Redis) -> None:
    r.rename(STREAM, STREAM + ":moved")


def _destroy_group(r: redis.Redis) -> None:
    r.xgroup_destroy(STREAM, keys.WORKERS_GROUP)


def _replace_with_a_string(r: redis.Redis) -> None:
    with r.pipeline(transaction=True) as replace:  # at once: the worker never sees it missing
        replace.delete(STREAM)
        replace.set(STREAM, "not a stream")
        replace.execute()


def _flush(r: redis.Redis) -> None:
    r.flushdb()


SCENARIOS = [
    pytest.param(_delete, "the stream no longer exists while crawl vanishing-1 is running", id="deleted"),
    pytest.param(_expire, "the stream no longer exists while crawl vanishing-1 is running", id="expired"),
    pytest.param(_rename, "the stream no longer exists while crawl vanishing-1 is running", id="renamed"),
    pytest.param(
        _destroy_group, "its consumer group 'workers' no longer exists while crawl vanishing-1 is running", id="group"
    ),
    pytest.param(
        _replace_with_a_string, "the key now holds a string, not a stream while crawl vanishing-1 is running", id="type"
    ),
    pytest.param(_flush, "Redis lost crawl vanishing-1's state (restarted without persistence?)", id="flushdb"),
]


class Served:
    """A Redis of one version with a coordinator and an HTTP worker (logging at INFO to a file)."""

    def __init__(self, server: RedisServer, tmp_path) -> None:
        self.server = server
        self.service = Service(server.url, tmp_path)
        self.worker_log = tmp_path / "worker.log"
        self.service.start("coordinator")
        self.worker = self.service.start("worker", "--kind", "http", "--log-level", "INFO", log=self.worker_log)
        self.redis = redis.Redis.from_url(server.url)

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.worker_log.read_text().splitlines() if text in line]


@pytest.fixture(scope="module", params=redis_binaries())
def served(request, tmp_path_factory):
    with RedisServer(binary=request.param) as server:
        running = Served(server, tmp_path_factory.mktemp("served"))
        yield running
        running.service.stop()


@pytest.fixture(scope="module")
def small_shop():
    with start_site(ShopSite(products=10)) as running:
        yield running


def _blocked_reading(r: redis.Redis, since: float) -> bool:
    """Whether the worker looked at the registered streams after ``since`` (its heartbeat comes just before)
    and is now blocked in XREADGROUP, so on the new stream too."""
    beats = [msgspec.json.decode(record, type=WorkerInfo) for record in r.hvals(keys.WORKERS)]
    if not beats or beats[0].seen <= since:
        return False
    return any(client["cmd"] == "xreadgroup" and "b" in client["flags"] for client in r.client_list())


@pytest.mark.parametrize(("vanish", "reason"), SCENARIOS)
async def test_a_worker_survives_its_job_stream_vanishing_logs_why_once_and_serves_the_next_crawl(
    served, small_shop, vanish, reason
):
    r = served.redis
    served.worker_log.write_text("")  # this scenario's lines only (the worker appends)
    try:
        await _vanish_and_serve_another_crawl(served, small_shop, vanish, reason)
    finally:
        r.hdel(keys.QUEUES, STREAM)


async def _vanish_and_serve_another_crawl(served, small_shop, vanish, reason) -> None:
    r = served.redis
    r.delete(keys.state(VANISHED), STREAM, STREAM + ":moved")
    r.hset(keys.state(VANISHED), "state", "running")
    r.xgroup_create(STREAM, keys.WORKERS_GROUP, id="0", mkstream=True)
    registered = time.time()
    r.hset(keys.QUEUES, STREAM, "http")
    await wait_for(lambda: asyncio.to_thread(_blocked_reading, r, registered), timeout=30)
    vanish(r)
    said = f"stopped reading {STREAM}"
    await wait_for(lambda: asyncio.to_thread(lambda: served.worker.poll() is not None or served.log_lines(said)))
    assert served.worker.poll() is None, served.worker_log.read_text()[-2000:]
    async with Client(served.server.url) as client:
        crawl = await client.submit(served.service.spider_file(SHOP_SPIDER), url=small_shop.url)
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(small_shop)
    assert served.worker.poll() is None
    (line,) = served.log_lines(said)  # once, however often it was read since
    assert line.endswith(reason)
    assert "Traceback" not in served.worker_log.read_text()
