"""Escalation by cost: a blocked request is retried on the next, costlier sid of the spider's order.

A spider declares ``escalation = ("http", "dynamic", "stealth")``. When a request on one of those
sids is judged blocked (``is_blocked``), its retry goes to the next sid that can take it (a browser
sid only GETs). When an escalated request gets through, the crawl learns that route for the
request's domain (kept in Redis, so it survives a coordinator restart), and later requests to that
domain on a cheaper sid of the order start on the learned sid. Off when the order is empty; a spider
that defines ``retry_blocked_request`` decides its retries itself.
"""

from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.request import Request
from shoal.common.sessions import portable_request_kwargs
from shoal.spiders import SessionManager, Spider


class Escalation:
    """One crawl's escalation order and the routes it learned per domain."""

    def __init__(self, redis: Redis, crawl: str, spider: Spider) -> None:
        self.redis = redis
        self.crawl = crawl
        self.sessions: SessionManager = spider.session_manager
        self.order = list(spider.escalation)
        unknown = [sid for sid in self.order if sid not in self.sessions]
        if unknown:
            sessions = ", ".join(self.sessions.session_ids)
            raise ValueError(f"escalation names sids {unknown} that no session has (sessions: {sessions})")
        self.rank = {sid: i for i, sid in enumerate(self.order)}
        self.routes: dict[str, str] = {}

    async def load(self) -> None:
        """Read the routes learned so far (by this coordinator or one before it)."""
        learned = await self.redis.hgetall(keys.routes(self.crawl))
        self.routes = {domain.decode(): sid.decode() for domain, sid in learned.items()}

    def route(self, request: Request) -> None:
        """Move ``request`` to the sid learned for its domain when that sid is costlier than its own."""
        learned = self.routes.get(request.domain)
        if learned and request.sid in self.rank and self.rank[learned] > self.rank[request.sid]:
            self._move(request, learned)

    def escalate(self, request: Request) -> bool:
        """Move ``request`` (a retry of a blocked one) to the next sid that can take it; False at the top."""
        for sid in self.order[self.rank[request.sid] + 1 :] if request.sid in self.rank else ():
            if self._move(request, sid):
                return True
        return False

    async def learn(self, domain: str, sid: str) -> None:
        """An escalated request to ``domain`` got through on ``sid``: start that domain's requests there."""
        current = self.routes.get(domain)
        if current is None or self.rank[sid] > self.rank[current]:
            self.routes[domain] = sid
            await self.redis.hset(keys.routes(self.crawl), domain, sid)

    def _move(self, request: Request, sid: str) -> bool:
        kwargs = portable_request_kwargs(self.sessions.get(sid).kind, request.session_kwargs)
        if kwargs is None:
            return False
        request.sid = sid
        request.session_kwargs.clear()
        request.session_kwargs.update(kwargs)
        return True
