"""How fast a crawl answers its client: submit, pause, resume and cancel latencies against a running service.

    uv run python bench/events.py [--rounds 5]

Starts a private redis-server, a demo shop, ``shoal coordinator`` and one ``shoal worker --kind http``, then per
round submits a slow crawl of the shop (a delay between requests keeps it running) and measures, from the
client's call: ``Client.submit`` returning (the crawl accepted), ``Crawl.pause`` to the state saying paused,
``Crawl.resume`` to running, ``Crawl.cancel`` to cancelled. The state is read every millisecond, so the
figures are within 1 ms plus one Redis round trip. Prints the median and range of each over the rounds.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from shoal import Client
from shoal.common import keys
from shoal.demo.site import ShopSite, start_site
from shoal.spiders import Spider
from shoal.store.server import RedisServer


class SlowShop(Spider):
    name = "slow-shop"
    download_delay = 0.2
    logging_level = 40

    def __init__(self, url: str, **kwargs) -> None:
        self.start_urls = [url]
        super().__init__(**kwargs)

    async def parse(self, response):
        for link in response.css("a::attr(href)").getall():
            yield response.follow(link)


async def _until_state(client: Client, crawl: str, state: str, since: float) -> float:
    while (await client.redis.hget(keys.state(crawl), "state") or b"").decode() != state:
        await asyncio.sleep(0.001)
    return time.perf_counter() - since


async def measure(redis_url: str, shop_url: str, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"submit": [], "pause": [], "resume": [], "cancel": []}
    async with Client(redis_url) as client:
        for _ in range(rounds):
            since = time.perf_counter()
            crawl = await client.submit(SlowShop, url=f"{shop_url}/products")
            found["submit"].append(time.perf_counter() - since)
            await _until_state(client, crawl.id, "running", since)
            await asyncio.sleep(0.7)  # well into the crawl, between two of its control reads
            for action, state in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
                since = time.perf_counter()
                await getattr(crawl, action)()
                found[action].append(await _until_state(client, crawl.id, state, since))
                await asyncio.sleep(0.7)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with RedisServer() as redis, start_site(ShopSite(products=2000)) as shop:
        env = {**os.environ, "REDIS_URL": redis.url}
        shoal = [sys.executable, "-m", "shoal"]
        processes = [
            subprocess.Popen([*shoal, "coordinator", "--log-level", "WARNING"], env=env),
            subprocess.Popen([*shoal, "worker", "--kind", "http", "--log-level", "WARNING"], env=env),
        ]
        try:
            found = asyncio.run(measure(redis.url, shop.url, args.rounds))
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    for name, times in found.items():
        ms = sorted(t * 1000 for t in times)
        print(f"{name:>7}: median {statistics.median(ms):7.1f} ms  (range {ms[0]:.1f} to {ms[-1]:.1f} ms)")


if __name__ == "__main__":
    main()
