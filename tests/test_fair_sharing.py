"""Fair sharing: crawls that reach the same site share its per-domain limits, so the site sees each
limit once, not once per crawl (counted at the server)."""

import asyncio
from itertools import pairwise

import pytest

from shoal.client import Client
from shoal.demo.site import ShopSite, start_site
from tests.test_service import SHOP_SPIDER, Service, expected, found


@pytest.fixture
def service(redis_url, tmp_path):
    running = Service(redis_url, tmp_path)
    yield running
    running.stop()


async def run_two_crawls(service: Service, site, **politeness) -> None:
    service.start("coordinator")
    service.start("worker", "--kind", "http")
    spider = service.spider_file(SHOP_SPIDER)
    async with Client(service.redis_url) as client:
        crawls = await asyncio.gather(*(client.submit(spider, url=site.url, **politeness) for _ in range(2)))
        await asyncio.gather(*(crawl.wait(90) for crawl in crawls))
        for crawl in crawls:
            assert found([item async for item in crawl.items()]) == expected(site)


async def test_two_crawls_of_one_site_share_its_per_domain_concurrency(service):
    with start_site(ShopSite(products=30, delay=0.2)) as site:
        await run_two_crawls(service, site, concurrent_requests=8, concurrent_requests_per_domain=2)
        assert len(site.log) == 2 * 32
        assert site.peak == 2  # each crawl allows 2 at once; together they still sent 2 at a time


async def test_two_crawls_of_one_site_share_its_download_delay(service):
    with start_site(ShopSite(products=10)) as site:
        await run_two_crawls(service, site, concurrent_requests=8, download_delay=0.15)
        times = sorted(when for when, _, _ in site.log)
        assert len(times) == 2 * 11
        gaps = sorted(later - earlier for earlier, later in pairwise(times))
        # One request every 0.15 s over both crawls, not two; a gap can look shorter when the request
        # before it took longer to reach the site (a worker's first fetch starts its session).
        assert gaps[len(gaps) // 2] > 0.14
        assert times[-1] - times[0] > 0.9 * 0.15 * (len(times) - 1)
