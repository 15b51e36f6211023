"""Escalation by cost: a blocked request moves to the next sid of the spider's order, and the crawl
learns per domain where to start."""

import pytest

from shoal.demo.site import ShopSite, start_site
from shoal.fetchers import FetcherSession
from shoal.spiders import Response, Spider

CHEAP_AGENT = "cheap-bot/1.0"


@pytest.fixture
def guarded():
    """A shop that blocks the cheap session (by its User-Agent)."""
    with start_site(ShopSite(products=10, blocked_agent=CHEAP_AGENT)) as running:
        yield running


@pytest.fixture
def open_shop():
    with start_site(ShopSite(products=10)) as running:
        yield running


class TieredSpider(Spider):
    name = "tiered"
    concurrent_requests = 1  # one page at a time, so the test can count attempts exactly
    logging_level = 30
    escalation = ("cheap", "pricey")

    def __init__(self, *bases: str):
        self.start_urls = [f"{base}/products" for base in bases]
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("cheap", FetcherSession(headers={"User-Agent": CHEAP_AGENT}))
        manager.add("pricey", FetcherSession(headers={"User-Agent": "Mozilla/5.0 pricey"}))

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "site": response.url.split("/product")[0]}


def test_a_blocked_request_moves_to_the_next_sid_and_its_domain_starts_there_after(guarded, open_shop, redis_url):
    result = TieredSpider(guarded.url, open_shop.url).start(redis_url=redis_url)

    assert sorted(item["name"] for item in result.items if item["site"] == guarded.url) == sorted(
        item["name"] for item in guarded.site.expected_items()
    )
    assert len([item for item in result.items if item["site"] == open_shop.url]) == 10
    # The guarded shop blocked the cheap session once; every later request to it started on "pricey".
    assert result.stats.blocked_requests_count == 1
    assert result.stats.escalations_count == 1
    domain = guarded.url.removeprefix("http://")
    assert result.stats.escalation_routes == {domain: "pricey"}
    assert result.stats.sessions_requests_count == {"cheap": 1 + 11, "pricey": 11}


class OwnRetrySpider(TieredSpider):
    name = "own-retry"
    max_blocked_retries = 2

    async def retry_blocked_request(self, request, response):
        return request  # the spider's own hook decides: same sid


def test_a_spiders_own_retry_hook_wins_over_escalation(guarded, redis_url):
    result = OwnRetrySpider(guarded.url).start(redis_url=redis_url)
    assert result.stats.escalations_count == 0
    assert result.stats.sessions_requests_count == {"cheap": 3}  # the first try and two retries, all blocked
    assert result.items == []


def test_an_escalation_order_naming_an_unknown_sid_is_a_clear_error(guarded, redis_url):
    class Wrong(TieredSpider):
        escalation = ("cheap", "stealth")

    with pytest.raises(ValueError, match=r"escalation names sids \['stealth'\] that no session has"):
        Wrong(guarded.url).start(redis_url=redis_url)
