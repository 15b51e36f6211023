"""ProxyRotation: a session's ProxyRotator in a worker, its position kept in Redis so that every worker of
the sid takes the proxies in one shared turn."""

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from shoal.common import keys
from shoal.common.proxy import CYCLIC, Proxy


class ProxyRotation:
    """Picks the proxy of each fetch of a (crawl, sid): the next in the list, or what ``strategy`` (the
    spider method, resolved by name) returns for the shared index."""

    def __init__(
        self,
        redis: Redis,
        crawl: str,
        sid: str,
        wire: dict[str, Any],
        resolve: Callable[[str], Callable[..., Any]],
    ) -> None:
        self.redis = redis
        self.key = keys.proxy_rotation(crawl, sid)
        self.proxies: list[Proxy] = list(wire["proxies"])
        self.name = wire.get("strategy") or CYCLIC
        self.strategy = None if self.name == CYCLIC else resolve(self.name)
        self._lock = asyncio.Lock()  # this worker's fetches take their turn one at a time

    async def next(self) -> Proxy:
        """The proxy for the next fetch."""
        if self.strategy is None:
            turn = await self.redis.incr(self.key)
            return self.proxies[(turn - 1) % len(self.proxies)]
        async with self._lock, self.redis.pipeline(transaction=True) as pipe:
            while True:  # optimistic: another worker moving the index in between makes us read it again
                try:
                    await pipe.watch(self.key)
                    proxy, index = await self._pick(int(await pipe.get(self.key) or 0))
                    pipe.multi()
                    pipe.set(self.key, index)
                    await pipe.execute()
                    return proxy
                except WatchError:
                    continue

    async def _pick(self, index: int) -> tuple[Proxy, int]:
        picked = self.strategy(list(self.proxies), index)  # type: ignore[misc]
        if inspect.isawaitable(picked):
            picked = await picked
        if not (isinstance(picked, tuple | list) and len(picked) == 2 and isinstance(picked[1], int)):
            raise TypeError(f"ProxyRotator strategy '{self.name}' must return (proxy, next_index), got {picked!r}")
        proxy, index = picked
        if not (isinstance(proxy, str) or (isinstance(proxy, dict) and "server" in proxy)):
            raise TypeError(f"ProxyRotator strategy '{self.name}' returned {proxy!r}, not a proxy URL or dict")
        return proxy, index
