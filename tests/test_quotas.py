"""Per-crawl quotas: a crawl stops cleanly after so many pages, items or seconds, and says which."""

import subprocess
import sys

import pytest

from shoal.fetchers import FetcherSession
from shoal.spiders import Request, Response, Spider
from tests.test_crawl import ShopSpider


def test_max_pages_caps_the_requests_fetched_exactly(shop, redis_url):
    spider = ShopSpider(shop.url)
    spider.max_pages = 12
    fetched_before = len(shop.log)
    result = spider.start(redis_url=redis_url)
    assert result.stop_reason == "max_pages (12) reached"
    assert result.stats.requests_dispatched == result.stats.requests_count == 12
    assert len(shop.log) - fetched_before == 12  # what the site saw
    assert 0 < len(result.items) < 12


def test_max_items_keeps_exactly_that_many_items(shop, redis_url):
    spider = ShopSpider(shop.url)
    spider.max_items = 7
    result = spider.start(redis_url=redis_url)
    assert result.stop_reason == "max_items (7) reached"
    assert len(result.items) == result.stats.items_scraped == 7
    assert result.stats.requests_count < 105  # it stopped before crawling the whole shop


class SlowSpider(Spider):
    name = "slow"
    concurrent_requests = 2
    logging_level = 30
    max_duration = 1.0

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    async def start_requests(self):
        for n in range(40):
            yield Request(f"{self.base}/slow?seconds=0.2&n={n}")

    async def parse(self, response: Response):
        yield {"n": response.url}


def test_max_duration_stops_dispatching_and_lets_in_flight_pages_finish(shop, redis_url):
    result = SlowSpider(shop.url).start(redis_url=redis_url)
    assert result.stop_reason == "max_duration (1 s) reached"
    assert 0 < len(result.items) < 40
    assert result.stats.requests_count == result.stats.requests_dispatched  # nothing in flight was lost


def test_a_quota_that_is_not_a_number_is_a_clear_error(shop, redis_url):
    spider = ShopSpider(shop.url)
    spider.max_pages = "lots"
    with pytest.raises(ValueError, match="max_pages must be a number >= 0"):
        spider.start(redis_url=redis_url)


def test_shoal_run_takes_quotas_on_the_command_line(shop, redis_url, tmp_path):
    spider_file = tmp_path / "spider.py"
    spider_file.write_text(
        "from shoal.spiders import Spider\n"
        "class Shop(Spider):\n"
        "    name = 'shop'\n"
        "    logging_level = 30\n"
        f"    start_urls = ['{shop.url}/products']\n"
        "    async def parse(self, response):\n"
        "        for link in response.css('a.product::attr(href)').getall():\n"
        "            yield response.follow(link, callback=self.parse_product)\n"
        "    async def parse_product(self, response):\n"
        "        yield {'name': response.css('h1::text').get('')}\n"
    )
    output = tmp_path / "items.jsonl"
    command = [sys.executable, "-m", "shoal", "run", str(spider_file), "--redis", redis_url]
    done = subprocess.run(
        [*command, "--max-items", "3", "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "stopped: max_items (3) reached" in done.stderr
    assert len(output.read_text().splitlines()) == 3


def test_quotas_given_as_arguments_win_over_the_spiders_own(shop):
    from shoal.spiders.loader import create_spider

    class Limited(ShopSpider):
        max_pages = 100

    spider = create_spider(Limited, {"base": shop.url, "max_pages": 5})
    assert spider.max_pages == 5
    assert isinstance(spider.session_manager.get("default"), FetcherSession)
