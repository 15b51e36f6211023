"""Crawl ownership: a lease is a Redis key with a TTL holding its owner's id, renewed by heartbeat.

Whoever holds a crawl's lease runs its engine; when the owner dies the key expires and any
coordinator may claim the crawl and resume it.
"""

import asyncio
import logging

from redis.asyncio import Redis

from shoal.common import keys
from shoal.store import scripts
from shoal.store.connection import REDIS_DOWN

log = logging.getLogger("shoal.lease")

#: A lease lives this long unless renewed; its owner renews it every RENEW_S seconds.
LEASE_MS = 6000
RENEW_S = 2.0


class Leases:
    """The leases held by one owner."""

    def __init__(self, redis: Redis, owner: str) -> None:
        self.redis = redis
        self.owner = owner
        self._renew = scripts.register(redis, "lease_renew")
        self._release = scripts.register(redis, "lease_release")

    async def claim(self, crawl: str) -> bool:
        """Take ``crawl`` if nobody holds it."""
        return bool(await self.redis.set(keys.lease(crawl), self.owner, nx=True, px=LEASE_MS))

    async def renew(self, crawl: str) -> bool:
        """Extend our lease on ``crawl``, taking it again if it lapsed (Redis was unreachable for longer
        than LEASE_MS) and nobody claimed it since; False when another owner holds it."""
        return bool(await self._renew(keys=[keys.lease(crawl)], args=[self.owner, LEASE_MS]))

    async def release(self, crawl: str) -> None:
        """Give ``crawl`` up at once (if it is still ours), so another owner need not wait for expiry."""
        await self._release(keys=[keys.lease(crawl)], args=[self.owner])

    async def hold(self, crawl: str) -> None:
        """Renew the lease on ``crawl`` every RENEW_S seconds until cancelled (also while Redis is
        unreachable: it renews once Redis answers again); raises if another owner took it."""
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                renewed = await self.renew(crawl)
            except REDIS_DOWN as e:
                log.warning("cannot renew the lease of crawl %s: Redis unreachable (%s)", crawl, e)
                continue
            if not renewed:
                raise RuntimeError(f"lost the lease of crawl {crawl}: another coordinator owns it now")
