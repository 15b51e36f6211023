"""The spider API, as in Scrapling: ``from shoal.spiders import Spider, Request, Response``."""

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.result import CrawlResult, CrawlStats, ItemList
from shoal.spiders.session import SessionManager
from shoal.spiders.spider import BLOCKED_CODES, SessionConfigurationError, Spider

__all__ = [
    "BLOCKED_CODES",
    "CrawlResult",
    "CrawlStats",
    "ItemList",
    "Request",
    "Response",
    "SessionConfigurationError",
    "SessionManager",
    "Spider",
]
