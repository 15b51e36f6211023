"""robots.txt, fetched once per domain for the whole crawl through a worker, kept in Redis, and obeyed.

A request to a domain whose robots.txt is not known yet is held in Redis (``keys.robots_held``), and
the domain's robots.txt request goes to the front of that request's sid's frontier, committed
atomically with it and deduplicated like any request, so it is fetched once however many requests,
workers and coordinators there are. When its response comes back the coordinator stores the file
(``keys.robots``), then moves the held requests to their frontiers and drops the disallowed ones.
A coordinator that dies on the way leaves that response pending, and the next one finishes the job.

As in Scrapling: the rules for user-agent ``*`` apply; a robots.txt answered with anything but 200
(404, 5xx) or that cannot be fetched allows everything; the robots.txt request goes through the sid
of the first request that needed it (browser sessions return a non-HTML body as it came, so a spider
with only browser sessions obeys robots.txt too); Crawl-delay and Request-rate set the domain's
delay floor.
"""

import hashlib
import logging
from urllib.parse import urlsplit

from protego import Protego
from redis.asyncio import Redis

from shoal.common import keys
from shoal.common.messages import FetchJob, FetchResult, RequestRecord, decode, encode
from shoal.common.request import Request
from shoal.common.response import Headers, body_encoding
from shoal.coordinator.frontier import Scheduled, domain_and_job, entry
from shoal.store import scripts

log = logging.getLogger("shoal.robots")

#: robots.txt requests go before any other request of their sid.
PRIORITY = 2**63 - 1
#: Only this much of a robots.txt is read (RFC 9309 asks crawlers to parse at least 500 KiB).
MAX_BYTES = 500 * 1024
_RELEASE_BATCH = 500


def _parse(domain: str, text: str) -> Protego:
    try:
        return Protego.parse(text)
    except Exception as e:  # a robots.txt Protego cannot read allows everything, as in Scrapling
        log.warning("Failed to parse robots.txt for %s: %s", domain, e)
        return Protego.parse("")


class RobotsTxt:
    """The robots.txt rules of one crawl's domains, from the coordinator's side."""

    def __init__(self, redis: Redis, crawl: str) -> None:
        self.redis = redis
        self.crawl = crawl
        self._parsers: dict[str, Protego] = {}
        self._texts: dict[str, str] = {}
        self._requested: set[str] = set()
        self._disallowed = True  # entries a previous coordinator left uncounted are counted first
        self._release = scripts.register(redis, "robots_release")
        self._count_disallowed = scripts.register(redis, "robots_count_disallowed")

    async def load(self) -> dict[str, float]:
        """Read the robots.txt files already fetched for this crawl (when resuming or taking it over);
        returns the delay each asks for, by domain."""
        for domain, text in (await self.redis.hgetall(keys.robots(self.crawl))).items():
            name = domain.decode()
            self._parsers[name] = _parse(name, text.decode())
        return {domain: self.delay(domain) for domain in self._parsers}

    def delay(self, domain: str) -> float:
        """The delay the domain's robots.txt asks for (Crawl-delay, Request-rate), in seconds; 0 if none."""
        parser = self._parsers[domain]
        delay = float(parser.crawl_delay("*") or 0)
        rate = parser.request_rate("*")
        if rate is not None and rate.requests > 0:
            delay = max(delay, rate.seconds / rate.requests)
        return delay

    def route(self, request: Request, scheduled: Scheduled) -> list[Scheduled]:
        """Where ``scheduled`` goes: its frontier when allowed; the disallowed set when not; held, with
        the domain's robots.txt request, while the domain's robots.txt is not known."""
        domain = request.domain
        parser = self._parsers.get(domain)
        if parser is None:
            scheduled.key = keys.robots_held(self.crawl, domain)
            if domain in self._requested:
                return [scheduled]
            self._requested.add(domain)
            return [self._robots_request(request), scheduled]
        if not parser.can_fetch(request.url, "*"):
            log.info("Request disallowed by robots.txt: %s", request.url)
            scheduled.key, scheduled.tail = keys.robots_disallowed(self.crawl), request.url.encode()
            self._disallowed = True
        return [scheduled]

    def _robots_request(self, request: Request) -> Scheduled:
        scheme, domain = urlsplit(request.url).scheme, request.domain
        fp = hashlib.sha1(f"robots.txt {domain}".encode()).digest()
        record = RequestRecord(url=f"{scheme}://{domain}/robots.txt", sid=request.sid, fp=fp, robots_txt=True)
        return entry(request.sid, fp, PRIORITY, domain, encode(FetchJob(crawl=self.crawl, request=record)))

    def learn(self, result: FetchResult) -> str:
        """Read the robots.txt a worker fetched (a failed fetch or a status but 200 allows everything);
        returns its domain. The domain's requests are routed by it from now on; ``release`` stores it."""
        domain = urlsplit(result.request.url).netloc
        text = ""
        if result.error is not None:
            log.warning("Failed to fetch robots.txt for %s: %s", domain, result.error.message)
        elif result.status == 200:
            body = result.body[:MAX_BYTES]
            text = body.decode(body_encoding(body, Headers(result.headers).get("content-type")), errors="replace")
        self._parsers[domain], self._texts[domain] = _parse(domain, text), text
        self._requested.discard(domain)
        return domain

    async def release(self, domain: str) -> None:
        """Store the domain's robots.txt, then move its held requests to their sids' frontiers, dropping
        (and counting) the disallowed ones."""
        await self.redis.hset(keys.robots(self.crawl), domain, self._texts.pop(domain, ""))
        parser, held = self._parsers[domain], keys.robots_held(self.crawl, domain)
        while entries := await self.redis.zrange(held, 0, _RELEASE_BATCH - 1):
            frontiers: dict[str, int] = {}
            args: list[bytes | int] = []
            for member in entries:
                try:
                    record = decode(domain_and_job(member)[1], FetchJob).request
                except ValueError as e:  # MessageError, or a domain that is not UTF-8
                    log.error("Dropped an unreadable entry of %s: %s", held, e)
                    args += [member, -1]
                    continue
                target = 0
                if parser.can_fetch(record.url, "*"):
                    target = frontiers.setdefault(keys.frontier(self.crawl, record.sid), len(frontiers) + 3)
                else:
                    log.info("Request disallowed by robots.txt: %s", record.url)
                args += [member, target]
            await self._release(keys=[held, keys.stats(self.crawl), *frontiers], args=args)

    async def count_disallowed(self) -> None:
        """Count the requests found disallowed since the last call into the crawl's stats."""
        if self._disallowed:
            await self._count_disallowed(keys=[keys.robots_disallowed(self.crawl), keys.stats(self.crawl)])
            self._disallowed = False
