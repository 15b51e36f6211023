"""The service: a coordinator and workers as separate processes, driven by the client and the CLI."""

import asyncio
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from shoal.client import Client, SubmissionError
from shoal.common import keys
from shoal.coordinator.lifecycle import RETENTION_S
from shoal.demo.site import ShopSite, start_site
from shoal.store.server import RedisServer
from tests.conftest import redis_binaries

SHOP_SPIDER = """
from shoal.spiders import Request, Response, Spider


class ShopSpider(Spider):
    name = "shop"
    concurrent_requests = 4
    logging_level = 30
    url = ""
    product_sid = ""

    async def start_requests(self):
        yield Request(self.url + "/products")

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, sid=self.product_sid, callback=self.parse_product)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}
"""

TWO_SID_SPIDER = SHOP_SPIDER.replace(
    '    product_sid = ""\n',
    """    product_sid = "pages"

    def configure_sessions(self, manager):
        from shoal.fetchers import FetcherSession
        manager.add("listings", FetcherSession())
        manager.add("pages", FetcherSession())
""",
)


class Service:
    """Coordinator and worker processes on one Redis, stopped (SIGTERM) at the end of a test."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen] = []

    def start(
        self,
        role: str,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """Start ``shoal ROLE``; with ``log``, its output is appended to that file; ``cwd``: created if need be."""
        command = [sys.executable, "-m", "shoal", role, "--redis", self.redis_url, "--log-level", "WARNING", *args]
        output = log.open("a") if log else None
        if cwd:
            cwd.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **(env or {})}
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output, cwd=cwd)
        if output:
            output.close()
        self.processes.append(process)
        return process

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "shoal", *args, "--redis", self.redis_url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)

    def spider_file(self, source: str, name: str = "spider.py") -> Path:
        path = self.tmp_path / name
        path.write_text(source)
        return path

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def service(redis_url, tmp_path):
    running = Service(redis_url, tmp_path)
    yield running
    running.stop()


@pytest.fixture
def slow_shop():
    """A shop of 60 products for crawls that must still be running while a test acts on them."""
    running = start_site(ShopSite(products=60))
    yield running
    running.stop()


async def wait_for(condition, timeout: float = 30, every: float = 0.1):
    """Poll an async ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"not met within {timeout} s"
        await asyncio.sleep(every)
    return value


def expected(site) -> list[tuple[str, str]]:
    return sorted((item["name"], item["price"]) for item in site.site.expected_items())


def found(items) -> list[tuple[str, str]]:
    return sorted((item["name"], item["price"]) for item in items)


async def test_a_spider_submitted_from_another_process_runs_on_the_service_and_its_items_reach_the_client(
    service, shop, redis_url
):
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    output = service.tmp_path / "items.csv"
    spider_file = str(service.spider_file(SHOP_SPIDER))
    submitted = service.cli("submit", spider_file, "-a", f"url={shop.url}", "-o", str(output), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    crawl_id = submitted.stdout.split()[0]
    async with Client(redis_url) as client:
        crawl = client.crawl(crawl_id)
        assert (await crawl.status()).state == "finished"
        assert found([item async for item in crawl.items()]) == expected(shop)
        assert (await crawl.stats()).requests_count == 105
    listed = service.cli("items", crawl_id)
    assert found(json.loads(line) for line in listed.stdout.splitlines()) == expected(shop)
    with output.open(newline="") as written:  # the coordinator wrote them too, as asked at submit
        assert found(csv.DictReader(written)) == expected(shop)


async def test_two_crawls_at_once_keep_their_own_items_and_stats(service, shop, slow_shop, redis_url):
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    spider = service.spider_file(SHOP_SPIDER)
    async with Client(redis_url) as client:
        first, second = await asyncio.gather(
            client.submit(spider, url=shop.url, download_delay=0.01), client.submit(spider, url=slow_shop.url)
        )
        await asyncio.gather(first.wait(60), second.wait(60))
        assert found([item async for item in first.items()]) == expected(shop)
        assert found([item async for item in second.items()]) == expected(slow_shop)
        assert (await first.stats()).requests_count == 105
        assert (await second.stats()).requests_count == 63
        assert {status.crawl for status in await client.crawls()} == {first.id, second.id}


async def test_pause_stops_dispatch_losing_nothing_and_resume_finishes_with_the_same_items(
    service, slow_shop, redis_url
):
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=slow_shop.url, download_delay=0.1)
        await wait_for(lambda: _pages_at_least(crawl, 10))
        await crawl.pause()
        paused = await wait_for(lambda: _settled(crawl, "paused"))
        await asyncio.sleep(1.0)  # a window in which a crawl that still dispatched would fetch ~10 pages
        assert (await crawl.status()).pages == paused.pages < 63
        assert sum(sid.frontier for sid in paused.sids.values()) > 0
        await crawl.resume()
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(slow_shop)
        assert (await crawl.stats()).requests_count == 63


PAUSING_SPIDER = SHOP_SPIDER.replace(
    "    async def parse_product(self, response: Response):\n",
    """    async def parse_product(self, response: Response):
        if self.stats.items_scraped >= 5 and not self.stats.custom_stats.get("paused"):
            self.stats.custom_stats["paused"] = True  # once: custom stats outlive the pause
            self.pause()
""",
)


async def test_a_spider_that_pauses_itself_stays_paused_on_the_service_until_resumed(service, slow_shop, redis_url):
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(PAUSING_SPIDER), url=slow_shop.url, download_delay=0.1)
        paused = await wait_for(lambda: _settled(crawl, "paused"))
        await asyncio.sleep(3.0)  # longer than a lease: a coordinator that took the crawl back would dispatch
        assert (await crawl.status()).pages == paused.pages < 63
        await crawl.resume()
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(slow_shop)


async def _pages_at_least(crawl, pages: int):
    return (await crawl.status()).pages >= pages


async def _settled(crawl, state: str):
    """The crawl's status once it is in ``state`` with nothing in flight or queued, else None."""
    status = await crawl.status()
    busy = sum(sid.inflight + sid.queued for sid in status.sids.values())
    return status if status.state == state and busy == 0 else None


@pytest.mark.parametrize("binary", redis_binaries())
async def test_cancel_keeps_the_crawls_items_and_stats_until_delete_removes_them_and_the_worker_lives_on(
    slow_shop, shop, tmp_path, binary
):
    with RedisServer(binary=binary) as server:
        service = Service(server.url, tmp_path)
        try:
            service.start("coordinator")
            worker = service.start("worker", "--kind", "http")
            async with Client(server.url) as client:
                spider = service.spider_file(SHOP_SPIDER)
                # 0.5 s a page: the crawl outlasts the two commands below however slowly a loaded machine runs them
                crawl = await client.submit(spider, url=slow_shop.url, download_delay=0.5)
                await wait_for(lambda: _pages_at_least(crawl, 5))
                refused = service.cli("delete", crawl.id)
                assert refused.returncode == 1 and f"cancel it first (shoal cancel {crawl.id})" in refused.stderr
                assert service.cli("pause", crawl.id).returncode == 0  # as in the report: pause, then cancel
                await wait_for(lambda: _settled(crawl, "paused"))
                assert service.cli("cancel", crawl.id).returncode == 0
                status = await wait_for(lambda: _status_if(crawl, "cancelled"))
                assert 5 <= status.pages < 63 and status.items > 0
                listed = service.cli("items", crawl.id).stdout.splitlines()
                assert len(listed) == status.items == (await crawl.stats()).items_scraped
                assert 0 < redis.Redis.from_url(server.url).ttl(keys.items(crawl.id)) <= RETENTION_S
                assert not redis.Redis.from_url(server.url).hexists(keys.QUEUES, keys.queue(crawl.id, "default"))

                deleted = service.cli("delete", crawl.id)
                assert deleted.returncode == 0 and f"deleted crawl {crawl.id}" in deleted.stderr
                assert redis.Redis.from_url(server.url).keys(keys.crawl_keys(crawl.id)) == []
                assert crawl.id not in {listed.crawl for listed in await client.crawls()}
                assert "no crawl" in service.cli("items", crawl.id).stderr

                again = await client.submit(spider, url=shop.url)  # the same worker serves the next crawl
                await again.wait(60)
                assert found([item async for item in again.items()]) == expected(shop)
                assert worker.poll() is None
        finally:
            service.stop()


async def _status_if(crawl, state: str):
    status = await crawl.status()
    return status if status.state == state else None


async def _state_is(crawl, state: str) -> bool:
    return (await crawl.status()).state == state


@pytest.mark.parametrize(
    ("source", "options", "expected_text", "where"),
    [
        (
            "import no_such_module_here\n" + SHOP_SPIDER,
            {},
            "ModuleNotFoundError: No module named 'no_such_module_he",
            "line 1, in <module>",
        ),
        (SHOP_SPIDER, {"spider_name": "NoSuchSpider"}, "no Spider subclass named 'NoSuchSpider'", None),
        (
            SHOP_SPIDER + "\n    def __init__(self, pages):\n        raise ValueError(f'bad pages: {pages!r}')\n",
            {"pages": "many"},
            "ValueError: bad pages: 'many'",
            "in __init__",
        ),
    ],
    ids=["import error", "missing class", "bad argument"],
)
async def test_a_spider_that_cannot_load_fails_the_submission_with_its_traceback(
    service, redis_url, source, options, expected_text, where
):
    service.start("coordinator")
    spider = service.spider_file(source)
    async with Client(redis_url) as client:
        with pytest.raises(SubmissionError) as failure:
            await client.submit(spider, **options)
    message = str(failure.value)
    assert expected_text in message
    assert "Traceback" in message and "spider.py" in message
    if where:  # the spider's line comes first
        assert message.splitlines()[1].startswith(f"{spider}, ") and where in message.splitlines()[1], message


async def test_unsigned_submissions_are_refused_when_a_secret_is_set(service, shop, redis_url):
    service.start("coordinator", env={"SHOAL_SECRET": "s3cret"})
    service.start("worker", "--kind", "http", env={"SHOAL_SECRET": "s3cret"})
    spider = service.spider_file(SHOP_SPIDER)
    async with Client(redis_url, secret="") as unsigned, Client(redis_url, secret="wrong") as forged:
        for client in (unsigned, forged):
            with pytest.raises(SubmissionError, match="not signed with this cluster's secret"):
                await client.submit(spider, url=shop.url)
    async with Client(redis_url, secret="s3cret") as signed:
        crawl = await signed.submit(spider, url=shop.url)
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(shop)


async def test_a_killed_coordinators_crawl_is_taken_over_by_another_and_ends_with_the_same_items(
    service, slow_shop, redis_url
):
    first = service.start("coordinator")
    service.start("worker", "--kind", "http")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=slow_shop.url, download_delay=0.05)
        await wait_for(lambda: _pages_at_least(crawl, 10))
        owner = (await crawl.status()).owner
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        service.start("coordinator")
        await wait_for(lambda: _owned_by_other(crawl, owner), timeout=20)
        taken_over = time.monotonic() - killed
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(slow_shop)
        assert taken_over < 12  # the lease (6 s) ran out and the new coordinator's next round claimed it


async def _owned_by_other(crawl, owner: str) -> bool:
    status = await crawl.status()
    return status.owner not in ("", owner) or status.state == "finished"


async def test_status_and_metrics_show_a_queue_growing_for_a_sid_with_no_live_worker_and_draining_once_one_starts(
    service, slow_shop, redis_url, tmp_path
):
    metrics_port = _free_port()
    service.start("coordinator", "--metrics-port", str(metrics_port))
    service.start("worker", "--kind", "http", "--sid", "listings")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(TWO_SID_SPIDER), url=slow_shop.url)
        status = await wait_for(lambda: _backlog(crawl), timeout=30)
        assert status.sids["pages"].workers == 0 and status.sids["listings"].workers == 1
        shown = service.cli("status", crawl.id).stdout
        rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in shown.splitlines() if "│" in line]
        (frontier, queued, _, live), *_ = [row[3:7] for row in rows if row[1:3] == ["pages", "http"]]
        assert int(frontier) > 0 and int(queued) > 0 and live == "0"
        metrics = await wait_for(lambda: _metric(metrics_port, "shoal_queue_depth", crawl.id, "pages"), timeout=10)
        assert metrics > 0
        backlog = await _metric(metrics_port, "shoal_pool_backlog", "", "")
        assert backlog is not None and backlog >= metrics  # what deploy/k8s's autoscalers scale the pool on
        service.start("worker", "--kind", "http", "--sid", "pages")
        await crawl.wait(60)
        assert found([item async for item in crawl.items()]) == expected(slow_shop)
        assert await wait_for(lambda: _metric_is(metrics_port, "shoal_queue_depth", crawl.id, "pages", 0.0))


async def _backlog(crawl):
    """The status once the product pages wait for a worker: jobs queued and more in the frontier."""
    status = await crawl.status()
    pages = status.sids.get("pages")
    return status if pages and pages.queued > 0 and pages.frontier > 0 else None


async def _metric(port: int, name: str, crawl: str, sid: str) -> float | None:
    """A metric's value from the endpoint: the line with these crawl and sid labels (or, with both
    empty, the pool="http" line)."""
    wanted = {"crawl": crawl, "sid": sid} if crawl else {"pool": "http"}
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{label}="{value}"' in line for label, value in wanted.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _metric_is(port: int, name: str, crawl: str, sid: str, value: float) -> bool:
    return await _metric(port, name, crawl, sid) == value


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_workers_register_with_a_heartbeat_and_are_listed_dead_when_it_stops(service, redis_url):
    assert service.cli("health", "worker").returncode == 1  # what a container health check runs
    worker = service.start("worker", "--kind", "http", "--sid", "a", "--capacity", "7")
    async with Client(redis_url) as client:
        (listed,) = await wait_for(client.workers, timeout=20)
        assert service.cli("health", "worker").returncode == 0
        assert listed.alive and listed.info.pid == worker.pid
        assert (listed.info.kind, listed.info.sids, listed.info.capacity) == ("http", ["a"], 7)
        assert "live" in service.cli("workers").stdout
        worker.send_signal(signal.SIGKILL)
        await wait_for(lambda: _all_dead(client), timeout=20)
        assert "dead" in service.cli("workers").stdout
        assert service.cli("health", "worker").returncode == 1


def test_health_checks_redis_and_the_coordinators_heartbeat(service):
    assert service.cli("health", "coordinator").returncode == 1
    service.start("coordinator")
    deadline = time.monotonic() + 20
    while service.cli("health", "coordinator").returncode != 0:
        assert time.monotonic() < deadline, "the coordinator never reported healthy"
    unreachable = subprocess.run(
        [sys.executable, "-m", "shoal", "health", "coordinator", "--redis", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
    )
    assert unreachable.returncode == 1 and "cannot reach Redis" in unreachable.stderr


async def _all_dead(client) -> bool:
    return all(not worker.alive for worker in await client.workers())


SLOW_SPIDER = """
from shoal.spiders import Request, Response, Spider


class SlowSpider(Spider):
    name = "slow"
    concurrent_requests = 4
    logging_level = 30
    url = ""
    pages = 12
    seconds = 1.5

    async def start_requests(self):
        for n in range(self.pages):
            yield Request(f"{self.url}/slow?seconds={self.seconds}&n={n}")

    async def parse(self, response: Response):
        yield {"url": response.url}
"""


async def test_sigterm_makes_a_worker_finish_its_jobs_and_exit_0_and_a_coordinator_leave_the_crawl_resumable(
    service, shop, redis_url
):
    coordinator = service.start("coordinator")
    worker = service.start("worker", "--kind", "http")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(SLOW_SPIDER), url=shop.url)
        await wait_for(lambda: _held_at_least(client, 4))
        worker.send_signal(signal.SIGTERM)  # it holds 4 slow jobs
        assert await asyncio.to_thread(worker.wait, 15) == 0
        coordinator.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(coordinator.wait, 15) == 0
        status = await crawl.status()
        assert status.state == "running" and status.owner == ""  # resumable, and nobody holds it
        service.start("worker", "--kind", "http")
        service.start("coordinator")
        await crawl.wait(60)
        urls = [item["url"] async for item in crawl.items()]
        assert sorted(urls) == sorted(f"{shop.url}/slow?seconds=1.5&n={n}" for n in range(12))


async def _held_at_least(client, count: int) -> bool:
    """Whether a worker reported (in its heartbeat) holding ``count`` jobs: it is past start-up and working."""
    return any(worker.info.held >= count for worker in await client.workers())


async def test_a_worker_stopped_holding_jobs_it_cannot_finish_in_time_hands_them_back_to_complete_elsewhere(
    service, shop, redis_url
):
    service.start("coordinator")
    first = service.start("worker", "--kind", "http", "--drain", "0.5")
    async with Client(redis_url) as client:
        # pages long enough to outlast the heartbeat that shows them held, the second worker's start-up and
        # the first one's reaction to SIGTERM (its blocking read of new jobs lasts up to a second), also on a
        # machine so loaded that a worker takes seconds to start
        crawl = await client.submit(service.spider_file(SLOW_SPIDER), url=shop.url, pages=8, seconds=15)
        await wait_for(lambda: _held_at_least(client, 4))  # the first worker holds 4 fifteen-second pages
        service.start("worker", "--kind", "http")
        await wait_for(lambda: _live_workers(client, 2))
        first.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert await asyncio.to_thread(first.wait, 15) == 0
        assert time.monotonic() - stopping < 5  # it did not wait for its pages
        await crawl.wait(120)
        urls = [item["url"] async for item in crawl.items()]
        assert sorted(urls) == sorted(f"{shop.url}/slow?seconds=15&n={n}" for n in range(8))
        (fetched_by,) = (await crawl.stats()).workers_requests_count  # all 8, the handed-back 4 included
        assert not fetched_by.endswith(f"-{first.pid}")


async def _live_workers(client, count: int) -> bool:
    return sum(worker.alive for worker in await client.workers()) >= count


async def test_a_worker_rides_out_a_redis_restart_and_serves_the_next_crawl(shop, tmp_path):
    with RedisServer(appendonly=True) as server:
        service = Service(server.url, tmp_path)
        try:
            worker = service.start("worker", "--kind", "http")
            async with Client(server.url) as client:
                await wait_for(client.workers, timeout=20)
            server.restart()  # every connection drops; the AOF keeps the data
            restarted = time.time()
            async with Client(server.url) as client:
                await wait_for(lambda: _heartbeat_since(client, restarted), timeout=20)
                assert worker.poll() is None
                service.start("coordinator")
                crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=shop.url)
                await crawl.wait(60)
                assert found([item async for item in crawl.items()]) == expected(shop)
        finally:
            service.stop()


async def _heartbeat_since(client, moment: float) -> bool:
    return any(worker.info.seen > moment for worker in await client.workers())


async def test_a_quota_given_at_submit_stops_the_crawl_and_its_status_says_which(service, shop, redis_url):
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=shop.url, max_pages=9)
        status = await crawl.wait(60)
        assert status.state == "finished"
        assert status.stop_reason == "max_pages (9) reached"
        assert (await crawl.stats()).requests_dispatched == status.pages == 9
    shown = service.cli("status", crawl.id)
    assert "finished (max_pages (9) reached)" in shown.stdout


async def test_submit_o_waits_for_the_crawl_and_writes_its_items_where_the_user_runs_it(service, shop, tmp_path):
    service.start("coordinator", cwd=tmp_path / "coordinator")  # a working directory of its own
    service.start("worker", "--kind", "http")
    user = tmp_path / "user"
    user.mkdir()
    spider = service.spider_file(SHOP_SPIDER)
    done = service.cli("submit", str(spider), "-a", f"url={shop.url}", "-o", "out/items.jsonl", cwd=user)
    assert done.returncode == 0, done.stderr
    crawl_id = done.stdout.splitlines()[0]
    written = user / "out" / "items.jsonl"
    assert found(json.loads(line) for line in written.read_text().splitlines()) == expected(shop)
    assert "wrote 100 items to out/items.jsonl" in done.stderr
    assert not list((tmp_path / "coordinator").iterdir())  # the coordinator wrote nothing
    async with Client(service.redis_url) as client:
        assert (await client.crawl(crawl_id).status()).state == "finished"


async def test_a_crashed_worker_stays_listed_as_dead_with_why_and_says_so_once(service, redis_url, tmp_path):
    log = tmp_path / "worker.log"
    worker = service.start("worker", "--kind", "http", "--log-level", "INFO", log=log)
    r = redis.Redis.from_url(redis_url)
    async with Client(redis_url) as client:
        await wait_for(client.workers, timeout=20)
        r.set(keys.QUEUES, "not a hash")  # what the worker reads every second: it cannot go on
        assert await asyncio.to_thread(worker.wait, 20) == 1
        (listed,) = await client.workers()
    r.delete(keys.QUEUES)
    assert not listed.alive and listed.info.pid == worker.pid
    assert listed.info.stopped.startswith("crashed: ResponseError: WRONGTYPE")
    shown = service.cli("workers").stdout
    assert "dead" in shown and str(worker.pid) in shown
    said = log.read_text()
    assert said.count("stopped: crashed") == 1 and said.count("Traceback") == 1 and "WRONGTYPE" in said


async def test_a_killed_workers_jobs_held_fall_to_0_once_another_worker_took_them_over(service, shop, redis_url):
    service.start("coordinator")
    first = service.start("worker", "--kind", "http", "--capacity", "4")
    async with Client(redis_url) as client:
        await client.submit(service.spider_file(SLOW_SPIDER), url=shop.url, pages=4, seconds=30)
        await wait_for(lambda: _held_at_least(client, 4))
        first.send_signal(signal.SIGKILL)
        second = service.start("worker", "--kind", "http", "--capacity", "4")
        await wait_for(lambda: _taken_over(client, first.pid, second.pid), timeout=40)
    assert "dead" in service.cli("workers").stdout


async def _taken_over(client, dead_pid: int, live_pid: int) -> bool:
    """Whether the dead worker is listed dead holding nothing, and the live one holds its 4 jobs."""
    workers = {worker.info.pid: worker for worker in await client.workers()}
    dead, live = workers.get(dead_pid), workers.get(live_pid)
    return bool(dead and live and not dead.alive and dead.info.held == 0 and live.alive and live.info.held == 4)


async def test_each_process_says_once_why_it_stops(service, shop, redis_url, tmp_path):
    coordinator_log, worker_log = tmp_path / "coordinator.log", tmp_path / "worker.log"
    coordinator = service.start("coordinator", "--log-level", "INFO", log=coordinator_log)
    worker = service.start("worker", "--kind", "http", "--log-level", "INFO", log=worker_log)
    async with Client(redis_url) as client:
        crawl = await client.submit(service.spider_file(SLOW_SPIDER), url=shop.url, pages=40, seconds=1)
        await wait_for(lambda: _has_items(crawl))
    for sig, code, why in ((signal.SIGINT, 130, "Ctrl+C"), (signal.SIGTERM, 143, "SIGTERM")):
        command = [sys.executable, "-m", "shoal", "items", crawl.id, "--follow", "--redis", redis_url]
        follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert await asyncio.to_thread(follower.stdout.readline)  # it is following the crawl's items
        follower.send_signal(sig)
        _, err = await asyncio.to_thread(follower.communicate, timeout=20)
        assert follower.returncode == code and err.count(f"shoal: stopped ({why})") == 1 and "Traceback" not in err
    for process in (worker, coordinator):
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    worker_said, coordinator_said = worker_log.read_text(), coordinator_log.read_text()
    assert worker_said.count("stopping: SIGTERM received") == 1
    assert f"worker http-{socket.gethostname()}-{worker.pid} stopped" in worker_said
    assert coordinator_said.count("stopping: SIGTERM received") == 1
    assert f"handing back crawls {crawl.id}: any coordinator resumes them" in coordinator_said
    assert re.search(r"coordinator \S+ stopped$", coordinator_said.splitlines()[-1])
    assert "SIGUSR1" not in coordinator_said and "Traceback" not in coordinator_said + worker_said


async def _has_items(crawl) -> bool:
    return (await crawl.status()).items > 0
