"""Deduplication: an exact set of request fingerprints (the default), or a Bloom filter in plain Redis.

``Spider.dedup = "exact"`` keeps every request's 20-byte fingerprint in the set ``keys.seen``: no request is
ever taken for another, at about 58 bytes a request in Redis (bench/load.py), 5.8 GB for 100 million.

``"bloom"`` keeps a Bloom filter instead: bit strings (``keys.bloom``) of m = -n ln p / (ln 2)^2 bits for
``bloom_capacity`` n requests at ``bloom_error_rate`` p, each request setting k = m/n ln 2 of them: 28.8 bits
(3.6 bytes) a request at p = 1e-6, allocated whole when the crawl makes its first commit. A new request whose
k bits are all set already is taken for a seen one, so its page is silently never fetched: that happens to
a fraction p of new requests once the filter holds n, less before. Past n the rate climbs; the crawl warns
once. No Redis module is needed: commit.lua computes the bit positions from the fingerprint and checks and
sets them with GETBIT and SETBIT, in the same step as it schedules the request.

A crawl's dedup is fixed on its first commit (``keys.dedup``): a resumed crawl keeps the filter it has,
whatever its spider asks for now.
"""

import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis

from shoal.common import keys
from shoal.spiders import Spider
from shoal.spiders.result import CrawlStats
from shoal.spiders.spider import check_dedup
from shoal.store import scripts

log = logging.getLogger("shoal.dedup")

#: A Bloom filter's bits per Redis string (128 MiB; a string holds at most 2**32 bits).
BLOCK_BITS = 2**30


@dataclass(frozen=True)
class Bloom:
    """A Bloom filter's size: ``bits`` bits, ``hashes`` of them set per request, in blocks of ``block_bits``."""

    capacity: int
    error_rate: float
    bits: int
    hashes: int
    block_bits: int = BLOCK_BITS

    @classmethod
    def sized(cls, capacity: int, error_rate: float) -> "Bloom":
        """The smallest filter that holds ``capacity`` requests at false-positive rate ``error_rate``."""
        bits = math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2)
        return cls(capacity, error_rate, bits, max(1, round(bits / capacity * math.log(2))))

    @property
    def block_sizes(self) -> list[int]:
        """Each block's size in bits (the last one holds the rest)."""
        full, rest = divmod(self.bits, self.block_bits)
        return [self.block_bits] * full + ([rest] if rest else [])

    def error_rate_at(self, added: int) -> float:
        """The expected false-positive rate once the filter holds ``added`` requests."""
        return (1 - math.exp(-self.hashes * added / self.bits)) ** self.hashes

    def record(self) -> dict[str, str | int | float]:
        """The filter as ``keys.dedup`` holds it."""
        return {"mode": "bloom", "capacity": self.capacity, "error_rate": self.error_rate, "bits": self.bits,
                "hashes": self.hashes, "block_bits": self.block_bits}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[bytes, bytes]) -> "Bloom | None":
        """The filter a ``keys.dedup`` record describes; None for exact dedup (or no record)."""
        if record.get(b"mode") != b"bloom":
            return None
        return cls(
            capacity=int(record[b"capacity"]),
            error_rate=float(record[b"error_rate"]),
            bits=int(record[b"bits"]),
            hashes=int(record[b"hashes"]),
            block_bits=int(record[b"block_bits"]),
        )


class Dedup:
    """One crawl's deduplication as its coordinator does it: what commit.lua gets, and the capacity warning."""

    def __init__(self, bloom: Bloom | None = None, logger: logging.Logger = log) -> None:
        self.bloom = bloom
        self.log = logger
        self._ready = False
        self._warned = False

    @classmethod
    def of(cls, spider: Spider) -> "Dedup":
        """The dedup ``spider`` asks for; ValueError naming the attribute if it is not valid."""
        check_dedup(spider)
        if spider.dedup == "bloom":
            return cls(Bloom.sized(spider.bloom_capacity, spider.bloom_error_rate), spider.logger)
        return cls(None, spider.logger)

    async def ready(self, redis: Redis, crawl: str) -> None:
        """Fix the crawl's dedup if this is its first commit (making the Bloom filter), else adopt the one it has."""
        if self._ready:
            return
        wanted = self.bloom
        record = wanted.record() if wanted else {"mode": "exact"}
        sizes = wanted.block_sizes if wanted else []
        reply = await scripts.register(redis, "dedup_create")(
            keys=[keys.dedup(crawl), *(keys.bloom(crawl, block) for block in range(len(sizes)))],
            args=[len(record), *(x for pair in record.items() for x in pair), *sizes],
        )
        self.bloom = Bloom.from_record(dict(zip(reply[::2], reply[1::2], strict=True)))
        if self.bloom != wanted:
            self.log.warning(
                "crawl %s keeps the dedup it started with (%s), not the spider's (%s)",
                crawl,
                describe(self.bloom),
                describe(wanted),
            )
        self._ready = True

    def keys(self, crawl: str) -> list[str]:
        """commit.lua's dedup keys: the seen set, or the Bloom filter's blocks."""
        if self.bloom is None:
            return [keys.seen(crawl)]
        return [keys.bloom(crawl, block) for block in range(len(self.bloom.block_sizes))]

    def args(self) -> list[int]:
        """commit.lua's dedup arguments: the filter's bits (0 for the seen set), hashes and block bits."""
        bloom = self.bloom
        return [bloom.bits, bloom.hashes, bloom.block_bits] if bloom else [0, 0, 0]

    @property
    def watching(self) -> bool:
        """Whether the crawl's count of requests in its Bloom filter is wanted (until it passed the capacity)."""
        return self.bloom is not None and not self._warned

    def check(self, crawl: str, added: int) -> None:
        """Warn once when the Bloom filter holds ``added`` requests, more than it was sized for."""
        bloom = self.bloom
        if bloom and added > bloom.capacity and not self._warned:
            self._warned = True
            self.log.warning(
                "crawl %s has more distinct requests (%d) than its Bloom filter was sized for (bloom_capacity %d): "
                "its false-positive rate, %g at capacity, is %.2g now and climbs, so more new pages are taken for "
                "seen ones and not fetched; give the next crawl a larger bloom_capacity",
                crawl,
                added,
                bloom.capacity,
                bloom.error_rate,
                bloom.error_rate_at(added),
            )


def describe(bloom: Bloom | None) -> str:
    """A dedup in a few words: ``exact``, or the Bloom filter's capacity, error rate and size."""
    if bloom is None:
        return "exact"
    return f"bloom for {bloom.capacity} requests at {bloom.error_rate:g}, {bloom.bits / 8 / 2**20:.1f} MiB"


def report(stats: CrawlStats, record: dict[bytes, bytes]) -> None:
    """Set the dedup fields of ``stats`` from the crawl's ``keys.dedup`` record."""
    bloom = Bloom.from_record(record)
    if bloom:
        stats.dedup = "bloom"
        stats.bloom_capacity, stats.bloom_error_rate = bloom.capacity, bloom.error_rate
        stats.bloom_bits, stats.bloom_hashes = bloom.bits, bloom.hashes
