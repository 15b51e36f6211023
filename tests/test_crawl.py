"""A real distributed crawl: private Redis, coordinator in-process, worker processes, local HTTP site."""

import asyncio

import pytest

from shoal.fetchers import FetcherSession
from shoal.spiders import Request, Response, Spider


def run(spider: Spider, redis_url: str, **options):
    return spider.start(redis_url=redis_url, **options)


class ShopSpider(Spider):
    name = "shop"
    concurrent_requests = 16
    logging_level = 30

    def __init__(self, base: str, **kwargs):
        self.start_urls = [f"{base}/products"]
        super().__init__(**kwargs)

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}


def as_set(items):
    return sorted((item["name"], item["price"]) for item in items)


def test_shop_crawl_returns_exactly_the_sites_items_and_ends_by_itself(shop, redis_url, tmp_path):
    result = run(ShopSpider(shop.url), redis_url, output=tmp_path / "items.jsonl")
    assert as_set(result.items) == as_set(shop.site.expected_items())
    assert len(result.items) == len(shop.site.expected_items())
    assert result.completed
    assert result.stats.items_scraped == len(result.items)
    assert result.stats.requests_count == result.stats.response_status_count["status_200"]
    assert (tmp_path / "items.jsonl").read_text().count("\n") == len(result.items)


class PrioritySpider(Spider):
    name = "priority"
    concurrent_requests = 1
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    async def start_requests(self):
        yield Request(f"{self.base}/echo?start", callback=self.fan_out)

    async def fan_out(self, response: Response):
        for n, priority in enumerate([0, 5, 1, 5, 0, 9]):
            yield Request(f"{self.base}/echo?n={n}", priority=priority, meta={"n": n})

    async def parse(self, response: Response):
        yield {"n": response.meta["n"]}


def test_higher_priority_is_fetched_first_and_fifo_within_a_priority(shop, redis_url):
    result = run(PrioritySpider(shop.url), redis_url)
    assert [item["n"] for item in result.items] == [5, 1, 3, 2, 0, 4]


class DedupSpider(Spider):
    name = "dedup"
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    async def start_requests(self):
        yield Request(f"{self.base}/echo?a=1&b=2", meta={"copy": "first"})
        yield Request(f"{self.base}/echo?b=2&a=1", meta={"copy": "same url, other query order"})
        yield Request(f"{self.base}/echo?a=1&b=2#frag", meta={"copy": "fragment"})
        yield Request(f"{self.base}/echo?a=1&b=2", dont_filter=True, meta={"copy": "dont_filter"})
        yield Request(f"{self.base}/echo?a=1&b=2", method="POST", meta={"copy": "post"})

    async def parse(self, response: Response):
        yield {"copy": response.meta["copy"]}


def test_duplicates_are_fetched_once_unless_dont_filter(shop, redis_url):
    result = run(DedupSpider(shop.url), redis_url)
    assert sorted(item["copy"] for item in result.items) == ["dont_filter", "first", "post"]


class MetaAndKwargsSpider(Spider):
    name = "inherit"
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession(headers={"X-Session": "s"}))

    async def start_requests(self):
        yield Request(
            f"{self.base}/echo?page=1", headers={"X-Token": "t1"}, meta={"from": "start", "keep": 1}, method="POST"
        )

    async def parse(self, response: Response):
        if response.meta.get("from") == "start":
            yield response.follow("/echo?page=2", meta={"from": "follow"}, cookies={"c": "1"})
        yield {"meta": response.meta, "seen": response.json(), "sid": response.request.sid}


def test_meta_merges_and_session_kwargs_are_inherited_up_to_the_server(shop, redis_url):
    result = run(MetaAndKwargsSpider(shop.url), redis_url)
    first, second = sorted(result.items, key=lambda item: item["seen"]["query"])
    assert first["seen"]["method"] == "POST"
    assert second["meta"] == {"from": "follow", "keep": 1}
    headers = second["seen"]["headers"]
    assert headers["x-token"] == "t1" and headers["x-session"] == "s"
    assert second["seen"]["cookies"] == {"c": "1"}
    assert headers["referer"].endswith("/echo?page=1")
    assert second["seen"]["method"] == "GET"  # a followed link is a GET unless given again
    assert second["sid"] == "http"


class BlockedSpider(Spider):
    name = "blocked"
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        self.retried: list[int] = []
        super().__init__()

    async def start_requests(self):
        yield Request(f"{self.base}/blocked-once?key=k1")
        yield Request(f"{self.base}/status/503", callback=self.never)

    async def retry_blocked_request(self, request: Request, response: Response) -> Request:
        self.retried.append(response.status)
        return request

    async def parse(self, response: Response):
        yield {"h1": response.css("h1::text").get()}

    async def never(self, response: Response):
        yield {"unexpected": response.status}


def test_blocked_responses_are_retried_up_to_max_blocked_retries_and_then_fail_for_good(shop, redis_url):
    spider = BlockedSpider(shop.url)
    result = run(spider, redis_url)
    assert result.items == [{"h1": "ok k1"}]
    assert result.stats.blocked_requests_count == 1 + 4  # blocked-once once; 503 on every one of 1 + 3 tries
    assert sorted(spider.retried) == [403, 503, 503, 503]
    (failed,) = result.failed  # still blocked after its retries: failed for good, listed, and retryable
    assert (failed.kind, failed.request.url) == ("blocked", f"{shop.url}/status/503")
    assert failed.message == "still blocked (status 503) after 3 retries"
    assert result.stats.failed_requests_by_kind == {"blocked": 1}


class OffsiteSpider(Spider):
    name = "offsite"
    allowed_domains = {"127.0.0.1"}
    logging_level = 30

    def __init__(self, base: str):
        self.start_urls = [f"{base}/offsite"]
        super().__init__()

    async def parse(self, response: Response):
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_product)

    async def parse_product(self, response: Response):
        yield {"url": response.url}


def test_offsite_requests_are_counted_and_dropped(shop, redis_url):
    result = run(OffsiteSpider(shop.url), redis_url)
    assert [item["url"] for item in result.items] == [f"{shop.url}/product/1"]
    assert result.stats.offsite_requests_count == 1


class TwoSidSpider(Spider):
    name = "two-sids"
    concurrent_requests = 2
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("fast", FetcherSession())
        manager.add("stalled", FetcherSession())

    async def start_requests(self):
        for n in range(4):
            yield Request(f"{self.base}/echo?stalled={n}", sid="stalled")
        for n in range(30):
            yield Request(f"{self.base}/product/{n + 1}", sid="fast")

    async def parse(self, response: Response):
        yield {"sid": response.request.sid}


async def test_a_sid_without_live_workers_does_not_slow_another_sid(shop, redis_url):
    spider = TwoSidSpider(shop.url)
    items = []

    async def collect():
        async for item in spider.stream(redis_url=redis_url, workers={"stalled": 0}):
            items.append(item)
            if len(items) == 30:
                return

    await asyncio.wait_for(collect(), timeout=60)
    assert {item["sid"] for item in items} == {"fast"}


class SlowPagesSpider(Spider):
    """``pages`` pages that each take ``seconds`` to serve."""

    name = "slow-pages"
    concurrent_requests = 8
    logging_level = 40

    def __init__(self, base: str, pages: int = 24, seconds: float = 0.2):
        self.start_urls = [f"{base}/slow?seconds={seconds}&n={n}" for n in range(pages)]
        super().__init__()

    async def parse(self, response: Response):
        yield {"url": response.url}


def test_two_workers_on_one_sid_share_the_load(shop, redis_url):
    result = run(SlowPagesSpider(shop.url), redis_url, workers={"default": 2}, capacity=4)
    assert len(result.items) == 24
    per_worker = result.stats.workers_requests_count
    assert len(per_worker) == 2 and min(per_worker.values()) >= 6, per_worker


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/file", "not a url"])
def test_invalid_urls_yielded_by_a_callback_are_errors_not_crashes(shop, redis_url, bad):
    class BadUrls(Spider):
        name = "bad-urls"
        logging_level = 50
        start_urls = [f"{shop.url}/echo"]
        errors: list[str] = []

        async def parse(self, response: Response):
            yield Request(bad)
            yield {"ok": True}

        async def on_error(self, request, error):
            self.errors.append(str(error))

    spider = BadUrls()
    result = run(spider, redis_url)
    assert result.items == [{"ok": True}]
    assert "http:// and https://" in spider.errors[0]


class TwoPoolsSlowSpider(Spider):
    name = "two-pools"
    concurrent_requests = 3
    logging_level = 30

    def __init__(self, base: str):
        self.base = base
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("a", FetcherSession())
        manager.add("b", FetcherSession())

    async def start_requests(self):
        for n in range(12):
            yield Request(f"{self.base}/slow?seconds=0.3&pool=a&n={n}", sid="a")
            yield Request(f"{self.base}/slow?seconds=0.3&pool=b&n={n}", sid="b")

    async def parse(self, response: Response):
        yield {"url": response.url}


def test_concurrent_requests_bounds_the_requests_in_flight_across_all_sids(shop, redis_url):
    first = len(shop.log)
    result = run(TwoPoolsSlowSpider(shop.url), redis_url)
    assert len(result.items) == 24
    arrivals = sorted(t for t, _, path in shop.log[first:] if "pool=" in path)
    # A slow page is answered 0.3 s after it arrives, and stays in flight until its response is processed:
    # a fourth request can only be dispatched, and so arrive, more than 0.3 s after the arrival of one of
    # any three before it, however loaded the machine.
    busiest = max(sum(1 for other in arrivals if start <= other < start + 0.28) for start in arrivals)
    assert 2 <= busiest <= 3
    assert {"a", "b"} == {key for key in result.stats.sessions_requests_count}


def test_a_worker_that_dies_ends_the_crawl_with_its_reason_instead_of_a_hang(shop, redis_url):
    with pytest.raises(RuntimeError, match=r"a worker \(.*--kind http --sid default.*\) exited with code 2"):
        run(ShopSpider(shop.url), redis_url, capacity="not-a-number")


class CountingSpider(ShopSpider):
    name = "counting"
    seen_counts: list[int] = []

    async def parse_product(self, response: Response):
        self.seen_counts.append(self.stats.requests_count)
        self.stats.custom_stats["products"] = self.stats.custom_stats.get("products", 0) + 1
        self.stats.custom_stats["last"] = {"name": response.css("h1::text").get("")}
        async for item in super().parse_product(response):
            yield item


def test_callbacks_see_live_stats_and_the_custom_stats_they_set_are_kept(shop, redis_url):
    spider = CountingSpider(shop.url)
    result = run(spider, redis_url)
    assert result.stats.custom_stats["products"] == 100
    assert result.stats.custom_stats["last"]["name"].startswith("Product ")
    assert max(spider.seen_counts) > 0  # the counters moved while the crawl ran
    assert spider.seen_counts == sorted(spider.seen_counts)


class ProductPages(Spider):
    name = "product-pages"
    concurrent_requests = 8
    logging_level = 30

    def __init__(self, base: str, pages: int = 40):
        self.start_urls = [f"{base}/product/{n}" for n in range(1, pages + 1)]
        super().__init__()

    async def parse(self, response: Response):
        yield {"name": response.css("h1::text").get()}


async def test_while_streaming_each_item_is_counted_in_the_stats_before_it_arrives(shop, redis_url):
    spider = ProductPages(shop.url)
    counts = [spider.stats.items_scraped async for _ in spider.stream(redis_url=redis_url)]
    assert len(counts) == 40
    assert [count >= n for n, count in enumerate(counts, 1)] == [True] * 40, counts


class PausingSpider(ProductPages):
    name = "pausing"
    concurrent_requests = 1

    async def parse(self, response: Response):
        if self.stats.items_scraped >= 3:
            self.pause()
        async for item in super().parse(response):
            yield item


def test_spider_pause_ends_the_crawl_paused_with_the_items_so_far(shop, redis_url):
    spider = PausingSpider(shop.url)
    result = run(spider, redis_url)
    assert result.paused and not result.completed
    assert 4 <= len(result.items) < 40
    with pytest.raises(RuntimeError, match="No active crawl to stop"):
        spider.pause()


class SelectedValuesSpider(Spider):
    """Puts Scrapling's selector results (TextHandler, TextHandlers, AttributesHandler) as they are into meta
    and items; the callback that reads the meta gets them back as they were."""

    name = "selected-values"
    logging_level = 30

    def __init__(self, base: str):
        self.start_urls = [f"{base}/products"]
        super().__init__()

    async def parse(self, response: Response):
        link = response.css("a.product").first
        meta = {"listed": link.text, "texts": response.css("a.product::text")[:2].getall(), "attrib": link.attrib}
        yield response.follow(link.attrib["href"], callback=self.parse_product, meta=meta)

    async def parse_product(self, response: Response):
        meta = response.meta
        kinds = (type(meta["listed"]), type(meta["texts"]), type(meta["texts"][0]), type(meta["attrib"]))
        yield {
            "meta_types": [kind.__name__ for kind in kinds],
            "attrib_href": meta["attrib"]["href"],
            "listed": response.meta["listed"],
            "name": response.css("h1::text").get(),
            "h1": response.css("h1")[0].attrib,
        }


def test_selector_results_travel_in_meta_as_they_were_and_into_items_as_plain_values(shop, redis_url):
    result = run(SelectedValuesSpider(shop.url), redis_url)
    assert result.stats.failed_requests_count == 0
    (item,) = result.items
    assert item["name"] == "Product 1" and item["listed"] == "Product 1"
    assert isinstance(item["h1"], dict)
    assert item["meta_types"] == ["TextHandler", "TextHandlers", "TextHandler", "AttributesHandler"]
    assert item["attrib_href"].startswith("/product/")


class OddItemsSpider(Spider):
    """Yields items with values JSON has a form for (datetime, Decimal, tuple) and one it has none for."""

    name = "odd-items"
    logging_level = 40

    def __init__(self, base: str):
        self.start_urls = [f"{base}/product/1"]
        super().__init__()

    async def parse(self, response: Response):
        import datetime
        from decimal import Decimal

        yield {"when": datetime.date(2026, 11, 28), "price": Decimal("9.90"), "pair": (1, 2)}
        yield {"name": "kept?", "handle": object()}
        self.stats.custom_stats["opened"] = object()
        self.stats.custom_stats["seen"] = 1


def test_an_item_value_json_cannot_hold_is_an_error_naming_its_key_never_its_str(shop, redis_url, capsys):
    result = run(OddItemsSpider(shop.url), redis_url)
    assert list(result.items) == [{"when": "2026-11-28", "price": "9.90", "pair": [1, 2]}]
    assert result.stats.custom_stats.get("callback_errors") == 1
    logged = capsys.readouterr().err
    assert "Dropped an item from" in logged and "its key 'handle' holds a value that cannot be written" in logged
    assert "builtins.object cannot travel" in logged and "custom stat 'opened' is not stored" in logged
    assert result.stats.custom_stats["seen"] == 1
