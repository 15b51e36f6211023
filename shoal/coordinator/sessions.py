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
        #: The sids a worker has started so far.
        self.started: set[str] = set()
        self._last = "0"

    def pending(self) -> set[str]:
        """The non-lazy browser sessions no worker has started yet: the crawl waits for them before its first
        request."""
        manager = self.sessions
        return {
            sid
            for sid in manager.session_ids
            if not manager.is_lazy(sid) and manager.get(sid).kind != "http" and sid not in self.started
        }

    async def read(self, block_ms: int | None = None) -> None:
        """Take in what the workers reported since the last read (waiting up to ``block_ms`` for it when
        given); raises SessionConfigurationError, with the worker's reason, if one could not start a session."""
        reply = await self.redis.xread({keys.session_starts(self.crawl): self._last}, block=block_ms)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                self._last = entry_id
                sid, worker, error = (fields.get(name, b"").decode() for name in (b"sid", b"worker", b"error"))
                if error:
                    kind = type(self.sessions.get(sid)).__name__ if sid in self.sessions else "session"
                    raise SessionConfigurationError(f"{kind} '{sid}' could not start on worker {worker}: {error}")
                self.started.add(sid)
