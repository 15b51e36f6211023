"""Crawl specs in Redis: stored with their signature when a shared secret is set, read back verified.

Every process that executes a crawl's spider source (the coordinator that takes a crawl over, a
worker running a page action) reads it through :func:`load_spec`, so with ``SHOAL_SECRET`` set no
process runs code that a holder of the secret did not submit.
"""

import os

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import CrawlSpec, decode, encode
from shoal.common.signing import sign, verify


class SpecError(Exception):
    """A crawl whose spec is missing, malformed or not signed with this cluster's secret."""


def shared_secret() -> str | None:
    """The cluster's shared secret (``$SHOAL_SECRET``), or None when submissions are not signed."""
    return os.environ.get("SHOAL_SECRET") or None


async def store_spec(redis: Redis, spec: CrawlSpec, secret: str | None) -> None:
    """Store ``spec`` (and its signature under ``secret``)."""
    payload = encode(spec)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.spec(spec.crawl), payload)
        if secret:
            pipe.hset(keys.state(spec.crawl), "signature", sign(payload, secret))
        await pipe.execute()


async def load_spec(redis: Redis, crawl: str, secret: str | None) -> CrawlSpec:
    """The spec of ``crawl``; raises SpecError when it is missing, malformed or, with a secret, unsigned."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.spec(crawl))
        pipe.hget(keys.state(crawl), "signature")
        payload, signature = await pipe.execute()
    if payload is None:
        raise SpecError(f"crawl {crawl!r} has no spec in Redis")
    if secret and not (signature and verify(payload, signature.decode(), secret)):
        raise SpecError(f"crawl {crawl!r}: its spec is not signed with this cluster's secret; refusing to run it")
    try:
        return decode(payload, CrawlSpec)
    except ValueError as e:
        raise SpecError(f"crawl {crawl!r}: {e}") from None
