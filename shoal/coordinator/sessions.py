"""Session starts: a crawl waits for its non-lazy sessions, and ends when a session cannot start.

Workers start the sessions (a non-lazy one as soon as they see its crawl, a lazy one with its first
job) and report each start in the crawl's ``session_starts`` stream. As Scrapling's ``start()`` starts
every non-lazy session before ``on_start`` and the first request, the engine waits until a worker has
started each non-lazy browser session (an HTTP session has nothing that can fail to start). A session
that a worker could not start, lazy or not, ends the crawl with SessionConfigurationError and the
worker's reason, whenever it is reported.
"""

from redis.asyncio import Redis

from shoal.common import keys
from shoal.spiders import SessionConfigurationError
from shoal.spiders.session import SessionManager


class SessionStarts:
    """What the workers reported about starting one crawl's sessions, read as it arrives."""

    def __init__(self, redis: Redis, crawl: str, sessions: SessionManager) -> None:
        self.redis = redis
        self.crawl = crawl
        self.sessions = sessions
        self._last = "0"

    def non_lazy(self) -> set[str]:
        """The sids the crawl waits for before its first request."""
        manager = self.sessions
        return {sid for sid in manager.session_ids if not manager.is_lazy(sid) and manager.get(sid).kind != "http"}

    async def read(self, block_ms: int | None = None) -> set[str]:
        """The sids reported started since the last read (waiting up to ``block_ms`` for one when given);
        raises SessionConfigurationError, with the worker's reason, if a worker could not start one."""
        reply = await self.redis.xread({keys.session_starts(self.crawl): self._last}, block=block_ms)
        started = set()
        for _, entries in reply or ():
            for entry_id, fields in entries:
                self._last = entry_id
                sid, worker, error = (fields.get(name, b"").decode() for name in (b"sid", b"worker", b"error"))
                if error:
                    kind = type(self.sessions.get(sid)).__name__ if sid in self.sessions else "session"
                    raise SessionConfigurationError(f"{kind} '{sid}' could not start on worker {worker}: {error}")
                started.add(sid)
        return started
