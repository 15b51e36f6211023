"""development_mode: responses cached on the coordinator's disk by fingerprint and replayed without workers."""

import msgspec

from shoal.spiders import Response, Spider


class CachedShop(Spider):
    name = "cached-shop"
    concurrent_requests = 8
    logging_level = 30
    development_mode = True

    def __init__(self, base: str, cache_dir: str, blocked: str = ""):
        self.start_urls = [f"{base}/products", f"{base}/status/503?{blocked}"]
        self.development_cache_dir = cache_dir
        self.max_blocked_retries = 1
        super().__init__()

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall()[:5]:
            yield response.follow(link, callback=self.parse_product)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}


def test_a_second_run_replays_every_page_from_the_cache_without_fetching(shop, redis_url, tmp_path):
    cache_dir = tmp_path / "cache"
    first = CachedShop(shop.url, str(cache_dir)).start(redis_url=redis_url)
    assert len(first.items) == 5
    assert (first.stats.cache_hits, first.stats.cache_misses) == (0, 8)  # 6 pages; the 503 and its retry
    fetched = len(shop.log)

    second = CachedShop(shop.url, str(cache_dir)).start(redis_url=redis_url)
    assert sorted(map(str, second.items)) == sorted(map(str, first.items))
    assert second.stats.cache_hits == 6  # the listing and five products; a blocked page is never cached
    assert second.stats.cache_misses == 2
    assert len(shop.log) - fetched == 2  # only the blocked page and its retry reached the site
    assert second.stats.workers_requests_count["cache"] == 6
    assert second.stats.requests_count == first.stats.requests_count


def test_an_unreadable_cache_file_fails_that_request_only(shop, redis_url, tmp_path):
    cache_dir = tmp_path / "cache"
    CachedShop(shop.url, str(cache_dir)).start(redis_url=redis_url)
    product_files = [
        f for f in cache_dir.glob("*.msgpack") if "/product/" in msgspec.msgpack.decode(f.read_bytes())["url"]
    ]
    assert len(product_files) == 5
    product_files[0].write_bytes(b"not msgpack")
    result = CachedShop(shop.url, str(cache_dir)).start(redis_url=redis_url)
    assert len(result.items) == 4
    assert result.stats.failed_requests_by_kind == {"cache": 1, "blocked": 1}  # the 503 is blocked for good
