"""Deduplication by a Bloom filter (``Spider.dedup = "bloom"``): its size, no false negatives, a false-positive
rate near its target, a crawl's dedup fixed on its first commit, and crawls that give the exact mode's items."""

import hashlib
import logging
import math

import pytest
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import FetchJob, RequestRecord, encode
from shoal.coordinator.dedup import BLOCK_BITS, Bloom, Dedup
from shoal.coordinator.frontier import Commit, Scheduled, frontier_member
from shoal.coordinator.queues import CrawlQueues
from shoal.spiders import Request, Response, Spider
from shoal.spiders.loader import create_spider
from shoal.store.server import RedisServer
from tests.conftest import redis_binaries
from tests.test_crawl import DedupSpider, ShopSpider, as_set

JOB = encode(FetchJob(crawl="c", request=RequestRecord(url="https://e.test/", sid="default")))


def request(n: int, salt: str = "") -> Scheduled:
    """A request with a fingerprint of its own (a SHA-1 digest, as shoal's are)."""
    fp = hashlib.sha1(f"{salt}https://e.test/{n}".encode()).digest()
    prefix, tail = frontier_member(0, "e.test", JOB)
    return Scheduled("default", fp, False, prefix, tail)


async def commit(queues: CrawlQueues, requests: list[Scheduled], batch: int = 1000) -> int:
    """Commit ``requests`` in batches; the number of them the dedup let through."""
    added = 0
    for at in range(0, len(requests), batch):
        added += sum(await queues.commit([Commit(requests=requests[at : at + batch])]))
    return added


# -- sizing ------------------------------------------------------------------------------------------------------


def test_bloom_size_follows_the_formula():
    bloom = Bloom.sized(10_000_000, 1e-6)
    assert bloom.bits == math.ceil(-10_000_000 * math.log(1e-6) / math.log(2) ** 2) == 287_551_752
    assert bloom.hashes == round(bloom.bits / 10_000_000 * math.log(2)) == 20
    assert bloom.bits / 8 / bloom.capacity < 4  # bytes per URL
    assert bloom.error_rate_at(bloom.capacity) == pytest.approx(1e-6, rel=0.05)
    assert bloom.block_sizes == [bloom.bits]
    small = Bloom.sized(10_000, 1e-2)
    assert (small.bits, small.hashes) == (95_851, 7)


def test_a_large_bloom_filter_is_split_into_strings_redis_can_hold():
    bloom = Bloom.sized(100_000_000, 1e-6)
    assert bloom.block_sizes[:-1] == [BLOCK_BITS] * (len(bloom.block_sizes) - 1)
    assert sum(bloom.block_sizes) == bloom.bits and len(bloom.block_sizes) == 3
    assert all(size <= 2**32 for size in bloom.block_sizes)


# -- the filter in Redis 6.2 and 7 ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=redis_binaries())
def server(request):
    with RedisServer(binary=request.param) as running:
        yield running


@pytest.fixture
async def redis(server):
    client = Redis.from_url(server.url)
    await client.flushall()
    yield client
    await client.aclose()


async def test_every_request_in_a_bloom_filter_is_found_again(redis):
    queues = CrawlQueues(redis, "c", dedup=Dedup(Bloom.sized(100_000, 1e-3)))
    requests = [request(n) for n in range(100_000)]
    first = await commit(queues, requests)
    assert first >= 100_000 * (1 - 1e-3)  # a few may be taken for seen ones already, never more than that
    assert int(await redis.hget(keys.stats("c"), "bloom_added")) == first
    assert await commit(queues, requests) == 0  # no false negatives
    assert not await redis.exists(keys.seen("c"))


async def test_bloom_filter_spread_over_blocks_finds_every_request(redis):
    bloom = Bloom(capacity=2_000, error_rate=1e-3, bits=28_756, hashes=10, block_bits=4_096)  # 8 strings
    queues = CrawlQueues(redis, "c", dedup=Dedup(bloom))
    requests = [request(n) for n in range(2_000)]
    assert await commit(queues, requests) >= 1_990
    assert await commit(queues, requests) == 0
    assert [await redis.strlen(keys.bloom("c", block)) for block in range(8)] == [512] * 7 + [11]


async def test_false_positive_rate_at_capacity_is_near_the_target(redis):
    """10,000 requests in a filter sized for them at 1e-2, then 20,000 new ones, each batch of 100 against a
    copy of the full filter (so that the probes themselves fill it by at most 1%). Expected: about 200 taken
    for seen ones (2% more for that 1%); the bounds are more than 6 standard deviations away."""
    bloom = Bloom.sized(10_000, 1e-2)
    full = CrawlQueues(redis, "full", dedup=Dedup(bloom))
    await commit(full, [request(n) for n in range(10_000)])
    false_positives = 0
    for at in range(0, 20_000, 100):
        await redis.copy(keys.dedup("full"), keys.dedup("probe"), replace=True)
        await redis.copy(keys.bloom("full", 0), keys.bloom("probe", 0), replace=True)
        probe = CrawlQueues(redis, "probe", dedup=Dedup(bloom))
        false_positives += 100 - await commit(probe, [request(n, "probe") for n in range(at, at + 100)])
    assert 0.5e-2 <= false_positives / 20_000 <= 2e-2


async def test_a_crawl_keeps_the_dedup_it_started_with(redis, caplog):
    first = CrawlQueues(redis, "c", dedup=Dedup(Bloom.sized(1_000, 1e-3)))
    assert await commit(first, [request(n) for n in range(10)]) == 10
    resumed = CrawlQueues(redis, "c", dedup=Dedup(None, logging.getLogger("test.dedup")))
    assert await commit(resumed, [request(n) for n in range(10)]) == 0
    assert resumed.dedup.bloom == Bloom.sized(1_000, 1e-3)
    assert "keeps the dedup it started with (bloom for 1000 requests at 0.001" in caplog.text


async def test_a_bloom_filter_past_its_capacity_warns_once(redis, caplog):
    queues = CrawlQueues(redis, "c", dedup=Dedup(Bloom.sized(100, 1e-3), logging.getLogger("test.dedup")))
    await commit(queues, [request(n) for n in range(100)])
    assert "more distinct requests" not in caplog.text
    for n in range(100, 400, 50):
        await commit(queues, [request(k) for k in range(n, n + 50)])
    assert caplog.text.count("more distinct requests") == 1
    assert "than its Bloom filter was sized for (bloom_capacity 100)" in caplog.text


# -- crawls ------------------------------------------------------------------------------------------------------


class RelatedShopSpider(ShopSpider):
    """The shop, following each product's related links too: every product is linked four times or more."""

    name = "related"

    async def parse_product(self, response: Response):
        for link in response.css("a.related::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        async for item in super().parse_product(response):
            yield item


def test_a_bloom_crawl_gives_exactly_the_items_of_an_exact_one(shop, redis_url):
    exact = RelatedShopSpider(shop.url).start(redis_url=redis_url)
    spider = RelatedShopSpider(shop.url)
    spider.dedup, spider.bloom_capacity = "bloom", 1_000
    bloom = spider.start(redis_url=redis_url)
    assert as_set(bloom.items) == as_set(exact.items) == as_set(shop.site.expected_items())
    assert len(bloom.items) == len(exact.items)
    assert bloom.stats.requests_count == exact.stats.requests_count == shop.site.pages + shop.site.products
    assert (exact.stats.dedup, bloom.stats.dedup) == ("exact", "bloom")
    assert bloom.stats.bloom_added == bloom.stats.requests_count
    sized = Bloom.sized(1_000, 1e-6)
    assert (bloom.stats.bloom_capacity, bloom.stats.bloom_error_rate) == (1_000, 1e-6)
    assert (bloom.stats.bloom_bits, bloom.stats.bloom_hashes) == (sized.bits, sized.hashes)
    assert bloom.stats.to_dict()["bloom_fill"] == round(bloom.stats.bloom_added / 1_000, 4)
    assert "bloom_bits" not in exact.stats.to_dict()


def test_bloom_dedup_lets_dont_filter_through_as_exact_does(shop, redis_url):
    spider = DedupSpider(shop.url)
    spider.dedup = "bloom"
    result = spider.start(redis_url=redis_url)
    assert sorted(item["copy"] for item in result.items) == ["dont_filter", "first", "post"]


class EchoSpider(Spider):
    name = "echo"
    logging_level = 30
    start_urls = ["http://127.0.0.1:9/"]

    async def parse(self, response: Response):
        yield Request(response.url)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"dedup": "blom"}, "dedup must be one of 'exact', 'bloom', got 'blom'"),
        ({"dedup": "bloom", "bloom_capacity": 0}, "bloom_capacity must be a positive integer"),
        ({"dedup": "bloom", "bloom_capacity": 1.5e6}, "bloom_capacity must be a positive integer"),
        ({"dedup": "bloom", "bloom_capacity": True}, "bloom_capacity must be a positive integer"),
        ({"dedup": "bloom", "bloom_error_rate": 0}, r"bloom_error_rate must be a number in \(0, 0.1\]"),
        ({"dedup": "bloom", "bloom_error_rate": 0.5}, r"bloom_error_rate must be a number in \(0, 0.1\]"),
        ({"dedup": "bloom", "bloom_error_rate": "1e-6"}, r"bloom_error_rate must be a number in \(0, 0.1\]"),
    ],
)
def test_bad_dedup_attributes_are_an_error_naming_them_when_the_spider_loads(attributes, message):
    with pytest.raises(ValueError, match=message):
        type("Bad", (EchoSpider,), attributes)()
    with pytest.raises(ValueError, match=message):
        create_spider(EchoSpider, attributes)


def test_bloom_attributes_are_not_checked_for_exact_dedup():
    spider = create_spider(EchoSpider, {"bloom_capacity": 0})
    assert Dedup.of(spider).bloom is None
