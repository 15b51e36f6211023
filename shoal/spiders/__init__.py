"""The spider API, as in Scrapling: ``from shoal.spiders import Spider, Request, Response``."""

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.links import LinkExtractor
from shoal.spiders.result import CrawlResult, CrawlStats, ItemList
from shoal.spiders.session import SessionManager
from shoal.spiders.spider import BLOCKED_CODES, SessionConfigurationError, Spider
from shoal.spiders.templates import (
    ContentSpider,
    CrawlRule,
    CrawlSpider,
    CSVFeedSpider,
    ShopifySpider,
    SitemapSpider,
    SiteToMarkdownSpider,
    XMLFeedSpider,
)

__all__ = [
    "BLOCKED_CODES",
    "CSVFeedSpider",
    "ContentSpider",
    "CrawlResult",
    "CrawlRule",
    "CrawlSpider",
    "CrawlStats",
    "ItemList",
    "LinkExtractor",
    "Request",
    "Response",
    "SessionConfigurationError",
    "SessionManager",
    "ShopifySpider",
    "SiteToMarkdownSpider",
    "SitemapSpider",
    "Spider",
    "XMLFeedSpider",
]
