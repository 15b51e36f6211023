"""Adaptive selection across coordinators: the saved elements of a spider live in Redis, per site.

Scrapling's Selector reads and writes its storage synchronously, inside a callback. The coordinator
therefore loads the site's saved elements (one HGETALL) before building a Response whose selector_config
turns ``adaptive`` on, and writes back what the callback saved (one HSET, only when something changed)
right after it: a later response, on this coordinator or another, sees it. Nothing is unpickled: the
elements are JSON.
"""

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.adaptive import ElementStorage, SavedElements, adaptive_scope
from shoal.common.request import Request

if TYPE_CHECKING:
    from shoal.spiders import Spider


class AdaptiveStore:
    """The parser arguments of each response, with adaptive selection backed by Redis (keys.adaptive)."""

    def __init__(self, redis: Redis, spider: "Spider") -> None:
        self.redis = redis
        self.spider = spider

    def selector_config(self, request: Request) -> dict[str, Any]:
        """The session's ``selector_config`` updated with the request's own."""
        session_config = self.spider.session_manager.get(request.sid).kwargs.get("selector_config")
        return {**(session_config or {}), **(request.session_kwargs.get("selector_config") or {})}

    async def parser_args(self, request: Request, url: str) -> tuple[dict[str, Any], SavedElements | None]:
        """The Response's parser arguments for ``request`` fetched from ``url``, and, when adaptive selection
        is on, the elements saved for the site (loaded from Redis) that its storage reads and writes."""
        config = self.selector_config(request)
        if not config.get("adaptive"):
            return config, None
        scope_url = config.get("adaptive_domain") or url
        scope = adaptive_scope(scope_url)
        elements = SavedElements(scope, await self.redis.hgetall(self._key(scope)))
        return {**config, "storage": ElementStorage, "storage_args": {"url": scope_url, "elements": elements}}, elements

    async def save(self, elements: SavedElements | None) -> None:
        """Write back the elements a callback saved (``auto_save``), if any changed."""
        if elements is not None and elements.changed:
            await self.redis.hset(self._key(elements.scope), mapping=elements.changed)
            elements.changed = {}

    def _key(self, scope: str) -> str:
        return keys.adaptive(self.spider.name or "", scope)
