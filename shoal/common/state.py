"""Crawl states: what a crawl's state hash (keys.state) says it is doing."""

from enum import StrEnum


class CrawlState(StrEnum):
    """A crawl's state; each value is the string stored in Redis."""

    SUBMITTED = "submitted"  # waiting for a coordinator to accept it
    RUNNING = "running"
    PAUSED = "paused"  # resumable: nothing is dispatched until it is resumed
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: States in which a crawl needs an owner (a coordinator holding its lease).
ACTIVE = frozenset({CrawlState.RUNNING, CrawlState.PAUSED})
#: States after which a crawl does nothing more.
ENDED = frozenset({CrawlState.FINISHED, CrawlState.FAILED, CrawlState.CANCELLED})
