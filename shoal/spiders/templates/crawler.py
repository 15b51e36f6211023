"""Twin of ``scrapling.spiders.templates.crawler``: CrawlRule and CrawlSpider, from where shoal keeps them."""

from shoal.spiders.templates.crawl import CrawlRule, CrawlSpider

__all__ = ["CrawlRule", "CrawlSpider"]
