"""Every Redis key shoal uses, one line each on what it holds.

A crawl's keys share the hash tag ``{CRAWL}``. Politeness per domain is shared by every crawl
(``DOMAIN_INFLIGHT``, ``DOMAIN_NEXT``), so a site sees one limit however many crawls reach it; the
Lua scripts therefore touch keys of several hash tags, and shoal needs one Redis primary (with or
without replicas), not Redis Cluster. Read them with ``redis-cli``: queue depth is ``XLEN``, the frontier is
``ZCARD``, in-flight is ``HGET ... inflight``.
"""

PREFIX = "shoal"

#: Set of the crawl ids known to this Redis.
CRAWLS = f"{PREFIX}:crawls"

#: Hash: job stream key -> session kind (http, dynamic, stealth); workers read it to find their streams.
QUEUES = f"{PREFIX}:queues"

#: Hash: worker id -> WorkerInfo (JSON), rewritten by each worker's heartbeat; removed when it stops.
WORKERS = f"{PREFIX}:workers"

#: Hash: coordinator id -> CoordinatorInfo (JSON), rewritten by each coordinator's heartbeat.
COORDINATORS = f"{PREFIX}:coordinators"

#: Hash: domain -> requests in flight to it, over every crawl (the shared per-domain concurrency).
DOMAIN_INFLIGHT = f"{PREFIX}:domain_inflight"

#: Hash: domain -> earliest time (ms since the epoch) any crawl may send it its next request.
DOMAIN_NEXT = f"{PREFIX}:domain_next"

#: Stream: one entry per worker that registers in WORKERS (field ``e``: an Event, ``what`` "worker", ``value`` its
#: id), capped at about EVENTS_MAXLEN; local mode blocks on it until its workers are there.
WORKER_EVENTS = f"{PREFIX}:worker_events"

#: The arq queue that carries crawl submissions to the coordinators.
SUBMISSIONS = f"{PREFIX}:submissions"

#: Consumer group that workers read job streams with; the coordinator reads responses with its own.
WORKERS_GROUP = "workers"
COORDINATOR_GROUP = "coordinator"


def _crawl(crawl: str, what: str) -> str:
    return f"{PREFIX}:{{{crawl}}}:{what}"


def spec(crawl: str) -> str:
    """String: the crawl's CrawlSpec (msgpack): spider source, class, arguments, session specs."""
    return _crawl(crawl, "spec")


def state(crawl: str) -> str:
    """Hash: ``state`` (submitted, running, paused, finished, failed, cancelled), ``control`` (what the
    client asked: run, pause, cancel), ``spider``, ``seeded`` once start_requests ran, ``error``, times."""
    return _crawl(crawl, "state")


#: An events stream keeps about this many of its newest entries (approximate trimming).
EVENTS_MAXLEN = 500


def events(crawl: str) -> str:
    """Stream: one entry per change of the crawl's ``state`` or ``control`` (field ``e``: an Event), written with
    the change; clients block on it to wait, and the coordinator reads it (group ``coordinator``) with the
    responses, so a pause or cancel reaches it at once. Capped at about EVENTS_MAXLEN."""
    return _crawl(crawl, "events")


def lease(crawl: str) -> str:
    """String with a TTL: the id of the coordinator that owns the crawl, renewed by its heartbeat."""
    return _crawl(crawl, "lease")


def seen(crawl: str) -> str:
    """Set: SHA-1 fingerprints of every request scheduled so far (deduplication, when ``exact``)."""
    return _crawl(crawl, "seen")


def dedup(crawl: str) -> str:
    """Hash: how the crawl deduplicates, fixed on its first commit: ``mode`` (exact, bloom); for bloom its
    ``capacity``, ``error_rate``, ``bits``, ``hashes`` (bit positions a request sets) and ``block_bits``."""
    return _crawl(crawl, "dedup")


def bloom(crawl: str, block: int) -> str:
    """String: block ``block`` (from 0) of the crawl's Bloom filter, a bit string of ``block_bits`` bits (the
    last block the rest), allocated whole when the filter is made. Bit n of the filter is bit n % block_bits
    of block n // block_bits."""
    return _crawl(crawl, f"bloom:{block}")


def frontier(crawl: str, sid: str) -> str:
    """Sorted set: requests waiting for a sid, in dispatch order (priority, then FIFO), all scored 0."""
    return _crawl(crawl, f"frontier:{sid}")


def queue(crawl: str, sid: str) -> str:
    """Stream: fetch jobs dispatched to a sid's worker pool (group ``workers``). XLEN is the queue depth."""
    return _crawl(crawl, f"queue:{sid}")


def replay(crawl: str) -> str:
    """Sorted set: requests the coordinator answers from its response cache (development mode), as frontier."""
    return _crawl(crawl, "replay")


def responses(crawl: str) -> str:
    """Stream: fetched responses (and fetch errors) waiting for the coordinator (group ``coordinator``)."""
    return _crawl(crawl, "responses")


#: The items stream keeps about this many of the newest items (approximate trimming).
ITEMS_MAXLEN = 1_000_000


def items(crawl: str) -> str:
    """Stream: scraped items, field ``i`` holding the item as JSON; capped at about ITEMS_MAXLEN."""
    return _crawl(crawl, "items")


def stats(crawl: str) -> str:
    """Hash: counters of the crawl (requests_count, items_scraped, requests_dispatched, status:200, sid:NAME, ...)."""
    return _crawl(crawl, "stats")


def custom_stats(crawl: str) -> str:
    """Hash: name -> JSON value, the spider's ``stats.custom_stats`` as its callbacks set them."""
    return _crawl(crawl, "custom_stats")


def inflight(crawl: str) -> str:
    """Hash: sid -> requests dispatched and not yet processed by the coordinator."""
    return _crawl(crawl, "inflight")


def domain_inflight(crawl: str) -> str:
    """Hash: domain -> this crawl's requests dispatched and not yet processed (its part of DOMAIN_INFLIGHT)."""
    return _crawl(crawl, "domain_inflight")


def routes(crawl: str) -> str:
    """Hash: domain -> the sid that got through after escalation; the domain's requests start there."""
    return _crawl(crawl, "routes")


def domain_delay(crawl: str) -> str:
    """Hash: domain -> its own minimum gap between requests in ms (robots.txt Crawl-delay / Request-rate
    floors, AutoThrottle's current delay); dispatch uses it instead of the crawl's download_delay."""
    return _crawl(crawl, "domain_delay")


def robots(crawl: str) -> str:
    """Hash: domain -> its robots.txt as fetched once for the crawl (empty when it allows everything:
    404, 5xx, unreachable). A domain missing here has not had its robots.txt fetched yet."""
    return _crawl(crawl, "robots")


def robots_held(crawl: str, domain: str) -> str:
    """Sorted set: frontier entries for ``domain`` held until its robots.txt is known, then moved to
    their sid's frontier (or dropped as disallowed)."""
    return _crawl(crawl, f"robots_held:{domain}")


def robots_disallowed(crawl: str) -> str:
    """Sorted set: URLs just found disallowed by robots.txt (deduplicated like any request), until the
    coordinator counts them into ``robots_disallowed_count`` and empties it."""
    return _crawl(crawl, "robots_disallowed")


def sequence(crawl: str) -> str:
    """Integer: counter that keeps equal-priority requests in FIFO order."""
    return _crawl(crawl, "seq")


def session_starts(crawl: str) -> str:
    """Stream: one entry per session a worker started for the crawl (fields ``sid``, ``worker``, ``error``:
    empty when it started, else why it could not). The coordinator waits here for the non-lazy sessions
    before the first request, and ends the crawl on an entry with an error."""
    return _crawl(crawl, "session_starts")


def proxy_rotation(crawl: str, sid: str) -> str:
    """Integer: where a sid's ProxyRotator stands, shared by all the sid's workers (cyclic: fetches so far;
    a custom strategy: the index it returned last)."""
    return _crawl(crawl, f"proxy_rotation:{sid}")


def dead_letters(crawl: str) -> str:
    """Stream: jobs delivered too many times or that do not decode (field ``job``), and responses that do not
    decode (their own fields, and ``from``), each with the ``reason``; counted in stats as ``dead_letters``."""
    return _crawl(crawl, "dead")


def failed(crawl: str) -> str:
    """Hash: response entry id -> FailedRequest (msgpack): a request whose fetch failed after its retries,
    with the error's kind and message and the time; ``shoal retry`` moves them back to the frontier."""
    return _crawl(crawl, "failed")


def adaptive(spider: str, site: str) -> str:
    """Hash: identifier -> an element's properties (JSON, Scrapling's format) saved by adaptive selection
    (``auto_save``) in spider ``spider``'s callbacks on pages of ``site`` (a registered domain, or
    ``adaptive_domain``); read by ``adaptive=True``. Shared by every crawl of the spider; outlives them."""
    return f"{PREFIX}:adaptive:{spider}:{site}"


def crawl_keys(crawl: str) -> str:
    """Glob matching every key of a crawl (for cleaning up)."""
    return f"{PREFIX}:{{{crawl}}}:*"


def queue_owner(queue_key: str) -> tuple[str, str]:
    """The (crawl, sid) a job stream key belongs to."""
    head, _, sid = queue_key.partition("}:queue:")
    return head.partition("{")[2], sid
