"""Crawl control: what the crawl's client asks (run, pause, cancel), and the crawl's state in Redis."""

import time

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.state import CrawlState
from shoal.coordinator.sessions import SessionStarts
from shoal.store import events

#: How often the engine looks at what the crawl's client asks (run, pause, cancel) when no event says it changed,
#: and checks that Redis still holds the crawl and that its sessions started.
CONTROL_EVERY_S = 0.5


class CrawlCancelled(Exception):
    """The crawl's client asked to cancel it."""


class CrawlStateLost(RuntimeError):
    """Redis no longer holds the crawl: it restarted without persistence, or someone deleted the keys."""

    def __init__(self, crawl: str) -> None:
        super().__init__(f"Redis lost crawl {crawl}'s state (restarted without persistence?)")


class Control:
    """One crawl's control and state, as its engine reads and writes them."""

    def __init__(self, redis: Redis, crawl: str, session_starts: SessionStarts) -> None:
        self.redis = redis
        self.crawl = crawl
        self.session_starts = session_starts
        #: What the client asked at the last read: b"run", b"pause" or b"cancel".
        self.asked = b"run"
        self._read_at = 0.0
        self._state = ""

    async def read(self) -> bool:
        """Read what the client asks into ``asked`` if CONTROL_EVERY_S seconds passed since the last read
        (True then), with a check that Redis still holds the crawl (raises CrawlStateLost when it does not)
        and that no session failed to start (raises SessionConfigurationError)."""
        if time.monotonic() - self._read_at < CONTROL_EVERY_S:
            return False
        self._read_at = time.monotonic()
        await self.check_state()
        await self.session_starts.read()  # a session that could not start ends the crawl
        self.asked = await self.redis.hget(keys.state(self.crawl), "control") or b"run"
        return True

    def changed(self) -> None:
        """The crawl's events stream says its control or state changed: the next ``read`` reads at once."""
        self._read_at = 0.0

    async def check_state(self) -> None:
        """Raise CrawlStateLost if Redis no longer holds the crawl's spec (the engine never writes it)."""
        if not await self.redis.exists(keys.spec(self.crawl)):
            raise CrawlStateLost(self.crawl)

    async def set_state(self, state: CrawlState, **fields: float | str) -> None:
        """Write the crawl's state (and ``fields``) unless it is already so."""
        if state != self._state or fields:
            await events.set_state(self.redis, self.crawl, state=state, **fields)
            self._state = state
