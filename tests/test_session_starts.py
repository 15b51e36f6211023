"""Sessions start before the crawl, as in Scrapling: a session that cannot start stops the crawl, with
Scrapling's error type and the worker's reason, and fetches nothing."""

import subprocess
import sys

import pytest
import redis

from shoal.client import Client, CrawlFailed
from shoal.fetchers import AsyncStealthySession, FetcherSession
from shoal.spiders import Response, SessionConfigurationError, Spider
from shoal.workers.chromium import find_chromium
from tests.test_service import Service

try:
    find_chromium()
except FileNotFoundError as e:
    pytest.skip(f"no Chromium: {e}", allow_module_level=True)

NO_CHROME = "executable_path names /nonexistent/chrome, which is not an executable file"

SPIDER = """
from shoal.fetchers import AsyncStealthySession, FetcherSession
from shoal.spiders import Spider


class NoChrome(Spider):
    name = "no-chrome"
    start_urls = ["{url}"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(executable_path="/nonexistent/chrome"), lazy={lazy})

    async def parse(self, response):
        yield {{"url": response.url}}
        yield response.follow("/product/2", sid="stealth", callback=self.parse)
"""


class NoChrome(Spider):
    name = "no-chrome"
    logging_level = 50
    lazy = False

    def __init__(self, base: str):
        self.start_urls = [f"{base}/product/1?case={self.lazy}"]
        self.started = False
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(executable_path="/nonexistent/chrome"), lazy=self.lazy)

    async def on_start(self, resuming: bool = False):
        self.started = True

    async def parse(self, response: Response):
        yield {"url": response.url}
        yield response.follow(f"/product/2?case={self.lazy}", sid="stealth", callback=self.parse)


class Warm(Spider):
    name = "warm"
    logging_level = 50

    def __init__(self, base: str):
        self.start_urls = [f"{base}/product/3?case=warm"]
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession())

    async def parse(self, response: Response):
        yield {"url": response.url}


def test_non_lazy_browser_sessions_are_started_by_a_worker_before_the_first_request(shop, redis_url):
    result = Warm(shop.url).start(redis_url=redis_url)
    assert len(result.items) == 1
    client = redis.Redis.from_url(redis_url)
    (entry_id, fields), *_ = client.xrange(f"shoal:{{{result.crawl_id}}}:session_starts")
    assert fields[b"sid"] == b"stealth" and fields[b"error"] == b""
    started = int(entry_id.split(b"-")[0]) / 1000  # when the worker reported the browser session started
    (first,) = [when for when, _, path in shop.log if path == "/product/3?case=warm"]
    assert started <= first


def test_a_non_lazy_session_that_cannot_start_stops_start_before_any_request(shop, redis_url):
    spider = NoChrome(shop.url)
    with pytest.raises(SessionConfigurationError, match="AsyncStealthySession 'stealth' could not start on worker"):
        spider.start(redis_url=redis_url)
    assert shop.hits("/product/1?case=False") == 0  # nothing was fetched, not even by the HTTP session
    assert not spider.started  # as in Scrapling, sessions start before on_start


def test_a_lazy_session_that_cannot_start_stops_the_crawl_when_first_used(shop, redis_url):
    spider = NoChrome.__new__(NoChrome)
    spider.lazy = True
    spider.__init__(shop.url)
    with pytest.raises(SessionConfigurationError, match=NO_CHROME):
        spider.start(redis_url=redis_url)
    assert shop.hits("/product/1?case=True") == 1  # the HTTP page came first: the stealth session was lazy


def test_shoal_run_says_why_the_session_could_not_start_and_exits_1(shop, tmp_path):
    spider_file = tmp_path / "spider.py"
    spider_file.write_text(SPIDER.format(url=f"{shop.url}/product/1?case=run", lazy=False))
    done = subprocess.run(
        [sys.executable, "-m", "shoal", "run", str(spider_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert "SessionConfigurationError: AsyncStealthySession 'stealth' could not start" in said, done.stderr
    assert NO_CHROME in said
    assert shop.hits("/product/1?case=run") == 0


async def test_a_submitted_crawl_whose_session_cannot_start_fails_with_the_workers_reason(shop, redis_url, tmp_path):
    service = Service(redis_url, tmp_path)
    try:
        service.start("coordinator")
        service.start("worker", "--kind", "http")
        service.start("worker", "--kind", "stealth")
        async with Client(redis_url) as client:
            source = SPIDER.format(url=f"{shop.url}/product/1?case=service", lazy=False)
            crawl = await client.submit(service.spider_file(source))
            with pytest.raises(CrawlFailed) as failure:
                await crawl.wait(timeout=60)
            status = await crawl.status()
    finally:
        service.stop()
    assert status.state == "failed"
    assert status.error.startswith("SessionConfigurationError: AsyncStealthySession 'stealth' could not start")
    assert NO_CHROME in status.error and "Traceback" not in status.error
    assert NO_CHROME in str(failure.value)
    assert shop.hits("/product/1?case=service") == 0
