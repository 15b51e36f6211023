"""Kill anything, restart Redis, and the crawl still ends with exactly its items, or says clearly why not.

Every test here uses real processes (workers, coordinators, ``shoal run``), a real redis-server it may
restart, and a site on 127.0.0.1. Each prints its figures on a line starting ``FIGURES``
(``pytest -s`` shows them).
"""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
import redis

from shoal.client import Client, CrawlFailed
from shoal.common import keys
from shoal.common.messages import FetchJob, WorkerInfo, decode
from shoal.coordinator.lease import RENEW_S
from shoal.fetchers import AsyncDynamicSession
from shoal.spiders import Request, Response, Spider
from shoal.store.server import RedisServer
from shoal.workers.chromium import find_chromium
from tests import test_service
from tests.test_service import SHOP_SPIDER, Service, expected, found, wait_for

SLOW_SECONDS = 2.0
service, slow_shop = test_service.service, test_service.slow_shop  # the fixtures, shared


def report(test: str, **figures: object) -> None:
    """Print a test's measured figures on one line (``pytest -s`` shows it)."""
    print(f"\nFIGURES {test}: " + ", ".join(f"{name}={value}" for name, value in figures.items()))


class SlowSpider(Spider):
    """``pages`` pages of the site's /slow endpoint, one item each, fetched by the ``sid`` session."""

    name = "slow-fault"
    concurrent_requests = 8
    logging_level = 40

    def __init__(self, base: str, pages: int, tag: str, browser: bool = False) -> None:
        self.urls = [f"{base}/slow?seconds={SLOW_SECONDS}&{tag}={n}" for n in range(pages)]
        self.browser = browser
        super().__init__()

    def configure_sessions(self, manager):
        if self.browser:
            manager.add("browser", AsyncDynamicSession())
        else:
            super().configure_sessions(manager)

    async def start_requests(self):
        for url in self.urls:
            yield Request(url)

    async def parse(self, response: Response):
        yield {"url": response.request.url}


class WorkerKiller(threading.Thread):
    """SIGKILLs the first worker of ``kind`` that holds ``capacity`` jobs whose fetches reached the site,
    records which URLs it held and when it died, then when another worker took each of its jobs over."""

    def __init__(self, redis_url: str, site, kind: str, capacity: int) -> None:
        super().__init__(daemon=True)
        self.redis = redis.Redis.from_url(redis_url)
        self.site, self.kind, self.capacity = site, kind, capacity
        self.killed_at = 0.0
        self.held: dict[tuple[bytes, bytes], str] = {}  # (stream, entry id) -> URL
        self.taken_over: dict[str, float] = {}  # URL -> seconds from the kill to another worker's claim

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.killed_at:
            for raw in self.redis.hvals(keys.WORKERS):
                info = msgspec.json.decode(raw, type=WorkerInfo)
                if info.kind == self.kind and self._try_kill(info):
                    break
            time.sleep(0.05)
        while self.killed_at and len(self.taken_over) < len(self.held) and time.monotonic() < deadline:
            for (stream, entry), url in self.held.items():
                [pending] = self.redis.xpending_range(stream, keys.WORKERS_GROUP, entry, entry, 1) or [None]
                if url not in self.taken_over and (pending is None or pending["times_delivered"] > 1):
                    self.taken_over[url] = round(time.time() - self.killed_at, 2)
            time.sleep(0.05)

    def _held(self, consumer: str) -> dict[tuple[bytes, bytes], str]:
        held = {}
        for stream, kind in self.redis.hgetall(keys.QUEUES).items():
            if kind.decode() != self.kind:
                continue
            for pending in self.redis.xpending_range(stream, keys.WORKERS_GROUP, "-", "+", 100, consumer):
                entry = pending["message_id"]
                [(_, fields)] = self.redis.xrange(stream, entry, entry)
                held[stream, entry] = decode(fields[b"j"], FetchJob).request.url
        return held

    def _try_kill(self, info: WorkerInfo) -> bool:
        held = self._held(info.id)
        requested = {path for _, _, path in list(self.site.log)}
        if len(held) < self.capacity or not all(url.removeprefix(self.site.url) in requested for url in held.values()):
            return False
        os.kill(info.pid, signal.SIGKILL)
        self.killed_at, self.held = time.time(), held
        return True


def _refetch_delays(site, killer: WorkerKiller) -> list[float]:
    """For each URL the killed worker held: seconds from the kill to its fetch by another worker."""
    delays = []
    for url in killer.held.values():
        path = url.removeprefix(site.url)
        later = [t for t, _, seen in list(site.log) if seen == path and t > killer.killed_at]
        delays.append(round(later[0] - killer.killed_at, 2) if later else float("inf"))
    return sorted(delays)


def _crawl_with_a_worker_killed(site, redis_url: str, tag: str, *, browser: bool) -> None:
    kind, capacity, pages = ("dynamic", 4, 16) if browser else ("http", 4, 24)
    workers = {"browser" if browser else "default": 1 if browser else 2}
    killer = WorkerKiller(redis_url, site, kind, capacity)
    killer.start()
    started = time.monotonic()
    spider = SlowSpider(site.url, pages, tag, browser=browser)
    spider.concurrent_requests = capacity * sum(workers.values())  # no job waits for a worker at the kill
    result = spider.start(redis_url=redis_url, workers=workers, capacity=capacity)
    elapsed = time.monotonic() - started
    killer.join()
    assert killer.killed_at, f"no {kind} worker was killed"
    urls = [item["url"] for item in result.items]
    assert sorted(urls) == sorted(spider.urls)  # the items of an undisturbed crawl, none twice
    fetches = Counter(path for _, _, path in site.log if f"&{tag}=" in path)
    refetched = sorted(path for path, count in fetches.items() if count > 1)
    assert refetched == sorted(url.removeprefix(site.url) for url in killer.held.values())  # only what it held
    assert all(count <= 2 for count in fetches.values())
    refetch_delays = _refetch_delays(site, killer)
    report(
        f"{kind} worker SIGKILL",
        pages=pages,
        leased_at_kill=len(killer.held),
        redelivered=len(refetched),
        taken_over_after_s=sorted(killer.taken_over.values()),
        fetched_again_after_s=refetch_delays,
        crawl_s=round(elapsed, 1),
    )
    assert len(killer.taken_over) == len(killer.held)
    assert max(killer.taken_over.values()) < 8  # the lease (5 s) ran out and another worker claimed them
    assert max(refetch_delays) < (20 if browser else 10)  # a browser worker first launches its Chromium


def test_a_sigkilled_http_worker_s_leased_requests_are_redelivered_within_seconds_and_the_items_are_exact(
    shop, redis_url
):
    _crawl_with_a_worker_killed(shop, redis_url, "httpkill", browser=False)


def test_a_sigkilled_browser_worker_s_leased_requests_are_redelivered_within_seconds_and_the_items_are_exact(
    shop, redis_url
):
    try:
        find_chromium()
    except FileNotFoundError as e:
        pytest.skip(f"no Chromium: {e}")
    _crawl_with_a_worker_killed(shop, redis_url, "browserkill", browser=True)


RESUMABLE_SPIDER = (
    SHOP_SPIDER
    + '''

class ResumableSpider(ShopSpider):
    """The shop spider, plus: start_requests fetches a marker page (dont_filter, so a second run of
    start_requests would fetch it again), and the callback of product 7 notes each run in a file and,
    the first time, sleeps after yielding its item, so that its coordinator can be killed before the
    item is committed."""

    name = "resumable"
    callback_log = ""

    async def start_requests(self):
        yield Request(self.url + "/echo?start_requests=ran", dont_filter=True, callback=self.nothing)
        async for request in super().start_requests():
            yield request

    async def nothing(self, response: Response):
        return
        yield

    async def parse_product(self, response: Response):
        async for item in super().parse_product(response):
            yield item
        if response.url.endswith("/product/7"):
            import asyncio
            from pathlib import Path

            log = Path(self.callback_log)
            first = not log.exists()
            with log.open("a") as notes:
                notes.write("processed\\n")
            if first:
                await asyncio.sleep(60)
'''
)


async def test_a_coordinator_killed_again_and_again_and_restarted_resumes_from_redis_without_rerunning_start_requests(
    service, slow_shop, redis_url, tmp_path
):
    callback_log = tmp_path / "product-7.log"
    coordinator = service.start("coordinator")
    service.start("worker", "--kind", "http")
    kills, takeovers = 0, []
    async with Client(redis_url) as client:
        spider = service.spider_file(RESUMABLE_SPIDER)
        crawl = await client.submit(
            spider, spider_name="ResumableSpider", url=slow_shop.url, callback_log=str(callback_log), download_delay=0.1
        )
        # 1: killed between a callback and its commit: product 7's item was yielded, not committed
        await wait_for(lambda: _exists(callback_log), timeout=60)
        for _ in range(3):
            pages = (await crawl.status()).pages
            coordinator.send_signal(signal.SIGKILL)
            coordinator.wait()
            killed, kills = time.monotonic(), kills + 1
            coordinator = service.start("coordinator")  # the same command again
            await wait_for(lambda: _pages_at_least(crawl, pages + 6), timeout=60)  # noqa: B023 (awaited at once)
            takeovers.append(round(time.monotonic() - killed, 1))
            if (await crawl.status()).state == "finished":
                break
        status = await crawl.wait(120)
        items = [item async for item in crawl.items()]
        stats = await crawl.stats()
    report(
        "coordinator SIGKILL",
        kills=kills,
        resumed_after_s=takeovers,
        items=len(items),
        callback_runs_of_product_7=callback_log.read_text().count("processed"),
        pages=status.pages,
    )
    assert kills == 3, "the crawl ended before the coordinator could be killed three times"
    assert found(items) == expected(slow_shop)  # every item, none twice
    assert slow_shop.hits("/echo?start_requests=ran") == 1  # start_requests ran once, in the first coordinator
    assert callback_log.read_text().count("processed") == 2  # the uncommitted response was processed again
    assert stats.items_scraped == len(items) == 60  # its item and stats were committed once
    assert stats.requests_count == 64  # 3 listings, 60 products and the marker page, each counted once


async def _exists(path: Path) -> bool:
    return path.exists()


async def _pages_at_least(crawl, pages: int) -> bool:
    status = await crawl.status()
    return status.pages >= pages or status.state == "finished"


LOCAL_SLOW_SPIDER = """
from shoal.spiders import Request, Response, Spider


class SlowSpider(Spider):
    name = "slow-local"
    concurrent_requests = 4
    logging_level = 40
    url = ""

    async def start_requests(self):
        for n in range(40):
            yield Request(f"{self.url}/slow?seconds=0.5&lost={n}")

    async def parse(self, response: Response):
        yield {"url": response.url}
"""


def _restart_after(server: RedisServer, site, tag: str, fetches: int) -> float:
    """Restart ``server`` once the site has answered ``fetches`` requests carrying ``tag``; returns when."""
    deadline = time.monotonic() + 60
    while sum(tag in path for _, _, path in list(site.log)) < fetches:
        assert time.monotonic() < deadline, "the crawl never got going"
        time.sleep(0.02)
    server.restart()
    return time.monotonic()


def test_shoal_run_exits_non_zero_saying_redis_lost_the_crawl_when_redis_restarts_without_persistence(shop, tmp_path):
    spider_file = tmp_path / "spider.py"
    spider_file.write_text(LOCAL_SLOW_SPIDER)
    output = tmp_path / "items.jsonl"
    with RedisServer(appendonly=False) as server:
        command = [sys.executable, "-m", "shoal", "run", str(spider_file), "--redis", server.url]
        run = subprocess.Popen(
            [*command, "-a", f"url={shop.url}", "-o", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        restarted = _restart_after(server, shop, "lost=", 8)
        _, stderr = run.communicate(timeout=60)
        noticed = time.monotonic() - restarted
    message = stderr.decode()
    report("shoal run, Redis restarted empty", exit_code=run.returncode, exited_after_s=round(noticed, 1))
    assert run.returncode == 1, message
    assert "Redis lost crawl slow-local-" in message and "state (restarted without persistence?)" in message
    assert "Traceback" not in message
    assert not output.exists()  # no items file pretending the crawl finished
    assert noticed < 15


async def test_the_service_marks_a_crawl_failed_when_redis_restarts_without_persistence_and_keeps_serving(
    shop, slow_shop, tmp_path
):
    with RedisServer(appendonly=False) as server:
        service = Service(server.url, tmp_path)
        coordinator_log, worker_log = tmp_path / "coordinator.log", tmp_path / "worker.log"
        try:
            coordinator = service.start("coordinator", log=coordinator_log)
            worker = service.start("worker", "--kind", "http", log=worker_log)
            async with Client(server.url) as client:
                crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=slow_shop.url, download_delay=0.1)
                await wait_for(lambda: _pages_at_least(crawl, 10))
                await asyncio.to_thread(server.restart)  # comes back empty
                restarted = time.time()
                with pytest.raises(CrawlFailed) as failure:
                    await crawl.wait(30)
                noticed = time.time() - restarted
                status = await wait_for(lambda: _failed(client, crawl.id), timeout=30)
                shown = service.cli("status", crawl.id)
                await wait_for(lambda: _worker_heartbeat_since(client, restarted), timeout=20)
                # the same processes go on serving: a new crawl runs to its end
                again = await client.submit(service.spider_file(SHOP_SPIDER), url=shop.url)
                await again.wait(60)
                assert found([item async for item in again.items()]) == expected(shop)
            assert coordinator.poll() is None and worker.poll() is None
        finally:
            service.stop()
    reason = f"Redis lost crawl {crawl.id}'s state (restarted without persistence?)"
    report("service, Redis restarted empty", crawl_failed_after_s=round(noticed, 1), state=status.state)
    assert reason in str(failure.value)
    assert status.error == reason
    assert "failed" in shown.stdout and "Redis lost crawl" in shown.stdout
    assert reason in worker_log.read_text()  # the worker serving it says so too
    assert "Traceback" not in coordinator_log.read_text() + worker_log.read_text()


async def _failed(client, crawl_id: str):
    """The crawl's status once it is marked failed (it may be missing from Redis until then)."""
    try:
        status = await client.crawl(crawl_id).status()
    except LookupError:
        return None
    return status if status.state == "failed" else None


async def _worker_heartbeat_since(client, moment: float) -> bool:
    return any(worker.info.seen > moment for worker in await client.workers())


async def test_a_coordinator_rides_out_a_redis_restart_with_aof_and_its_crawl_ends_with_exact_items(
    slow_shop, tmp_path
):
    coordinator_log = tmp_path / "coordinator.log"
    with RedisServer(appendonly=True) as server:
        service = Service(server.url, tmp_path)
        try:
            coordinator = service.start("coordinator", log=coordinator_log)
            service.start("worker", "--kind", "http")
            async with Client(server.url) as client:  # the client's commands ride out the restart too
                crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=slow_shop.url, download_delay=0.1)
                await wait_for(lambda: _pages_at_least(crawl, 10))
                pages_before = (await crawl.status()).pages
                server.stop(remove=False)
                stopped = time.monotonic()
                await asyncio.sleep(RENEW_S + 1)  # the outage: longer than the coordinator's heartbeat interval
                await asyncio.to_thread(server.start)
                down = time.monotonic() - stopped
                await crawl.wait(90)
                finished_after = time.monotonic() - stopped
                items = [item async for item in crawl.items()]
                stats = await crawl.stats()
            assert coordinator.poll() is None  # it did not die with the connection
        finally:
            service.stop()
    report(
        "coordinator across a Redis restart (AOF)",
        pages_before_restart=pages_before,
        redis_down_s=round(down, 1),
        finished_after_restart_s=round(finished_after, 1),
        items=len(items),
    )
    said = coordinator_log.read_text()
    assert "shoal.coordinator WARNING: Redis unreachable" in said, said  # its heartbeat met the outage
    assert "Traceback" not in said, said
    assert found(items) == expected(slow_shop)
    assert stats.items_scraped == 60 and stats.requests_count == 63


async def test_a_client_command_in_flight_when_redis_restarts_is_retried_and_completes():
    with RedisServer(appendonly=True) as server:
        observer = redis.Redis.from_url(server.url)
        async with Client(server.url) as client:
            reading = asyncio.create_task(client.redis.xread({"s": "0"}, block=30_000))
            await wait_for(lambda: _blocked_clients(observer, 1))  # the XREAD waits in Redis
            server.stop(remove=False)
            await asyncio.sleep(1)  # the outage
            await asyncio.to_thread(server.start)
            restarted = time.monotonic()
            observer = redis.Redis.from_url(server.url)
            await wait_for(lambda: _blocked_clients(observer, 1))  # sent again, it waits in the new Redis
            observer.xadd("s", {"f": "v"})
            [(stream, [(_, fields)])] = await asyncio.wait_for(reading, 10)
            answered = time.monotonic() - restarted
    report("client command across a Redis restart", answered_after_restart_s=round(answered, 2))
    assert (stream, fields) == (b"s", {b"f": b"v"})


async def _blocked_clients(client: redis.Redis, count: int) -> bool:
    return client.info("clients")["blocked_clients"] == count
