"""Spider templates: CrawlSpider (rules), SitemapSpider, XMLFeedSpider, CSVFeedSpider, ShopifySpider and
ContentSpider (SiteToMarkdownSpider)."""

from shoal.spiders.templates.crawl import CrawlRule, CrawlSpider
from shoal.spiders.templates.feeds import CSVFeedSpider, XMLFeedSpider
from shoal.spiders.templates.shopify import ShopifySpider
from shoal.spiders.templates.site_to_markdown import ContentSpider, SiteToMarkdownSpider
from shoal.spiders.templates.sitemap import SitemapSpider

__all__ = [
    "CSVFeedSpider",
    "ContentSpider",
    "CrawlRule",
    "CrawlSpider",
    "ShopifySpider",
    "SiteToMarkdownSpider",
    "SitemapSpider",
    "XMLFeedSpider",
]
