"""Scheduling: a Request a spider yields becomes one crawl's frontier entry, or is refused with why.

The request gets its sid (the default one when it names none, or the one escalation picked for its
domain), is checked (its sid, session arguments and URL), fingerprinted and encoded once; then it goes
to its sid's frontier, to the replay set when the response cache holds its response (development
mode), or, when robots.txt is obeyed, is held until the domain's robots.txt is known, or disallowed.
"""

from typing import TYPE_CHECKING

from shoal.common import keys
from shoal.common.request import Request
from shoal.common.sessions import check_request_kwargs
from shoal.coordinator.cache import ResponseCache
from shoal.coordinator.escalation import Escalation
from shoal.coordinator.frontier import Scheduled, entry
from shoal.coordinator.records import to_job
from shoal.coordinator.robots import RobotsTxt

if TYPE_CHECKING:
    from shoal.spiders import Spider


class Scheduler:
    """Turns the Requests of crawl ``crawl``'s spider into frontier entries."""

    def __init__(
        self,
        crawl: str,
        spider: "Spider",
        escalation: Escalation | None = None,
        robots: RobotsTxt | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.crawl = crawl
        self.spider = spider
        self.sessions = spider.session_manager
        self.escalation = escalation
        self.robots = robots
        self.cache = cache

    def schedule(self, request: Request, escalated: bool = False) -> list[Scheduled]:
        """Normalize, validate and encode ``request`` for the frontier (or where else it goes: the replay
        set when the response cache has it; with robots.txt, held with the domain's robots.txt request,
        or disallowed); raises on a bad request."""
        if not request.sid:
            request.sid = self.sessions.default_session_id
        if self.escalation and not escalated:
            self.escalation.route(request)
        if request.sid not in self.sessions:
            raise ValueError(
                f"{request!r} names sid '{request.sid}', which no session has "
                f"(sessions: {', '.join(self.sessions.session_ids)})"
            )
        check_request_kwargs(
            self.sessions.get(request.sid).kind, request.session_kwargs, where=f"Request to sid '{request.sid}'"
        )
        _check_url(request)
        spider = self.spider
        fp = request.update_fingerprint(spider.fp_include_kwargs, spider.fp_include_headers, spider.fp_keep_fragments)
        job = to_job(self.crawl, request, spider, fp, escalated)
        scheduled = entry(request.sid, fp, request.priority, request.domain, job, request.dont_filter)
        if self.cache is not None and self.cache.has(fp):  # cached when robots.txt, if obeyed, allowed it
            scheduled.key = keys.replay(self.crawl)
            return [scheduled]
        return self.robots.route(request, scheduled) if self.robots else [scheduled]


def _check_url(request: Request) -> None:
    """Raise ValueError naming the URL unless it is an http(s) URL with a host."""
    if not request.url.startswith(("http://", "https://")):
        raise ValueError(f"{request!r}: only http:// and https:// URLs can be fetched")
    try:
        domain = request.domain
    except ValueError as e:
        raise ValueError(f"{request!r}: not a valid URL ({e})") from None
    if not domain:
        raise ValueError(f"{request!r}: the URL has no host")
