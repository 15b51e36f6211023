"""Spider templates: CrawlSpider (rules), SitemapSpider, XMLFeedSpider and CSVFeedSpider."""

from shoal.spiders.templates.crawl import CrawlRule, CrawlSpider
from shoal.spiders.templates.feeds import CSVFeedSpider, XMLFeedSpider
from shoal.spiders.templates.sitemap import SitemapSpider

__all__ = ["CSVFeedSpider", "CrawlRule", "CrawlSpider", "SitemapSpider", "XMLFeedSpider"]
