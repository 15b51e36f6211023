"""Requests whose fetch fails are recorded with why, listed, and retried: the retry fetches exactly
what was missing and repeats nothing."""

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from shoal.client import Client
from shoal.common import keys
from shoal.common.messages import FailedRequest, FetchJob, RequestRecord, encode
from shoal.coordinator.frontier import Commit, Scheduled, frontier_member
from shoal.coordinator.queues import CrawlQueues
from tests.faulty_site import FaultySite, closed_port
from tests.test_service import Service, wait_for

FLAKY_SPIDER = """
from shoal.spiders import Request, Response, Spider


class FlakySpider(Spider):
    name = "flaky"
    logging_level = 50
    url = slow = refused = ""

    async def start_requests(self):
        links = [f"{self.url}/page/{name}" for name in ("a", "b", "c")]
        links += [f"{self.slow}/page/{name}" for name in ("s1", "s2")]
        links.append(f"http://127.0.0.1:{self.refused}/page/r1")
        yield Request(f"{self.url}/links?" + "&".join(f"to={link}" for link in links))

    async def parse(self, response: Response):
        for link in response.css("a::attr(href)").getall():
            yield response.follow(link, callback=self.parse_page, meta={"via": "links"}, timeout=1, retries=1)

    async def parse_page(self, response: Response):
        yield {"h1": response.css("h1::text").get(), "via": response.meta["via"]}
"""


@pytest.fixture
def service(redis_url, tmp_path):
    running = Service(redis_url, tmp_path)
    yield running
    running.stop()


async def test_failed_fetches_are_listed_with_their_kind_and_a_retry_fetches_exactly_the_missing_items(
    service: Service, redis_url
):
    refused = closed_port()
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    with FaultySite() as site:
        async with Client(redis_url) as client:
            args = {"url": site.url, "slow": site.slow_url, "refused": str(refused)}
            crawl = await client.submit(service.spider_file(FLAKY_SPIDER), **args)
            await crawl.wait(60)
            assert sorted([item["h1"] async for item in crawl.items()]) == ["a", "b", "c"]

            failed = await crawl.failed()
            by_url = {entry.request.url.rsplit("/", 1)[1]: entry for entry in failed}
            assert sorted(by_url) == ["r1", "s1", "s2"]
            assert (by_url["s1"].kind, by_url["s2"].kind, by_url["r1"].kind) == ("timeout", "timeout", "connection")
            assert f"127.0.0.1:{refused}" in by_url["r1"].message
            assert by_url["s1"].request.callback == "parse_page" and by_url["s1"].request.meta == {"via": "links"}
            stats = await crawl.stats()
            assert stats.failed_requests_count == 3
            assert stats.failed_requests_by_kind == {"timeout": 2, "connection": 1}

            async def slowloris_closed() -> bool:  # the worker gave up on those connections and closed them
                return site.dribbling == 0

            await wait_for(slowloris_closed, 10)  # the site notices a closed connection at its next byte
            errors = await crawl.errors()  # what the dashboard's errors panel lists
            assert sorted(error.url.rsplit("/", 1)[1] for error in errors) == ["r1", "s1", "s2"]
            assert all(error.reason.startswith(("timeout: ", "connection: ")) for error in errors)

            listed = service.cli("failed", crawl.id)
            assert listed.returncode == 0, listed.stderr
            assert "failed requests (3)" in listed.stdout
            assert listed.stdout.count("timeout") == 2 and f"{refused}/page/r1" in listed.stdout

            site.heal()
            with FaultySite(port=refused):
                retried = service.cli("retry", crawl.id)
                assert retried.returncode == 0, retried.stderr
                assert "re-queued 3 failed requests" in retried.stderr
                await crawl.wait(60)
            items = [item async for item in crawl.items()]
            assert Counter(item["h1"] for item in items) == dict.fromkeys(["a", "b", "c", "s1", "s2", "r1"], 1)
            assert {item["via"] for item in items} == {"links"}
            assert await crawl.failed() == []
            assert (await crawl.stats()).requests_count == 1 + 6
            assert redis.Redis.from_url(redis_url).ttl(keys.items(crawl.id)) > 0  # ended again: kept, then expires


FAILING_SPIDER = """
from shoal.spiders import Request, Spider


class Failing(Spider):
    name = "failing"
    logging_level = 50
    refused = ""

    async def start_requests(self):
        yield Request("http://shoal-test.invalid/", retries=1)
        yield Request(f"http://127.0.0.1:{self.refused}/", retries=1)

    async def parse(self, response):
        yield {"url": response.url}
"""


def _shoal_run(spider: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # a private Redis
    command = [sys.executable, "-m", "shoal", "run", str(spider), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**env, "COLUMNS": "200"})


def test_shoal_run_reports_how_many_requests_failed_lists_them_and_exits_1_unless_failures_are_allowed(tmp_path):
    spider = tmp_path / "failing.py"
    spider.write_text(FAILING_SPIDER)
    done = _shoal_run(spider, "-a", f"refused={closed_port()}")
    assert done.returncode == 1, done.stderr
    assert "2 requests failed (connection: 1, dns: 1)" in done.stderr
    assert "shoal-test.invalid" in done.stderr
    assert "shoal: exit 1: 2 requests failed (--allow-failures to exit 0 all the same)" in done.stderr
    assert _shoal_run(spider, "-a", f"refused={closed_port()}", "--allow-failures").returncode == 0


SPIDER_ERRORS = """
from shoal.spiders import Request, Spider


class Careless(Spider):
    name = "careless"
    logging_level = 50
    url = ""
    mistake = ""

    async def start_requests(self):
        yield Request(self.url + "/products")

    async def parse(self, response):
        if self.mistake == "sid":
            yield response.follow("/product/1", sid="no-such-sid")
        elif self.mistake == "meta":
            yield response.follow("/product/1", meta={"handle": open})
        elif self.mistake == "raise":
            raise ValueError("a bug in parse")
        yield {"url": response.url}
"""


@pytest.mark.parametrize(("mistake", "code"), [("none", 0), ("sid", 1), ("meta", 1), ("raise", 1)])
def test_shoal_run_exits_1_when_a_spider_error_dropped_a_request_or_a_callback_raised(tmp_path, shop, mistake, code):
    spider = tmp_path / "careless.py"
    spider.write_text(SPIDER_ERRORS)
    done = _shoal_run(spider, "-a", f"url={shop.url}", "-a", f"mistake={mistake}")
    assert done.returncode == code, done.stderr
    assert ("shoal: exit 1: " in done.stderr) == bool(code)


async def test_a_failed_request_is_recorded_once_however_often_its_commit_runs_and_requeued_once(redis_url):
    client = Redis.from_url(redis_url)
    queues = CrawlQueues(client, "c1")
    await queues.create({"default": "http"})
    entry = (await client.xadd(keys.responses("c1"), {"r": b"x"})).decode()
    await queues.read_responses(10, None)
    record = RequestRecord(url="https://e.test/1", sid="default", fp=b"f" * 20)
    failed = encode(FailedRequest(request=record, kind="timeout", message="slow", time=1.0))
    commit = Commit(response_id=entry, sid="default", domain="e.test", failed=failed)
    assert await queues.commit([commit]) == [0]
    assert await queues.commit([commit]) == [-1]  # a coordinator that died after committing, done again
    [(field, stored)] = await queues.failed()
    assert stored.request == record and stored.kind == "timeout"
    job = encode(FetchJob(crawl="c1", request=record))
    prefix, tail = frontier_member(0, "e.test", job)
    again = (field, Scheduled("default", record.fp, True, prefix, tail))
    assert await asyncio.gather(queues.requeue([again]), queues.requeue([again])) in ([1, 0], [0, 1])
    assert await client.zcard(keys.frontier("c1", "default")) == 1 and await queues.failed() == []
    await client.aclose()
