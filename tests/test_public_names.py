"""Scrapling's public names and module paths exist in shoal: a spider runs after `scrapling` -> `shoal`."""

import importlib
import re

import pytest

import shoal.fetchers
import shoal.spiders

#: Each public module path of Scrapling 0.5 a spider imports from, with the names it exports.
SCRAPLING_MODULES = {
    "spiders": [
        "Spider", "SessionConfigurationError", "Request", "CrawlResult", "SessionManager", "Response",
        "LinkExtractor", "CrawlSpider", "CrawlRule", "SitemapSpider", "ShopifySpider", "XMLFeedSpider",
        "CSVFeedSpider", "ContentSpider", "SiteToMarkdownSpider",
    ],
    "spiders.request": ["Request"],
    "spiders.spider": ["Spider", "SessionConfigurationError", "LogCounterHandler", "BLOCKED_CODES"],
    "spiders.session": ["SessionManager"],
    "spiders.result": ["CrawlResult", "CrawlStats", "ItemList"],
    "spiders.links": ["LinkExtractor", "IGNORED_EXTENSIONS"],
    "spiders.templates": [
        "CrawlSpider", "CrawlRule", "SitemapSpider", "ShopifySpider", "XMLFeedSpider", "CSVFeedSpider",
        "ContentSpider", "SiteToMarkdownSpider",
    ],
    "spiders.templates.crawler": ["CrawlRule", "CrawlSpider"],
    "spiders.templates.sitemap": ["SitemapSpider"],
    "spiders.templates.shopify": ["ShopifySpider"],
    "spiders.templates.feed": ["XMLFeedSpider", "CSVFeedSpider"],
    "spiders.templates.site_to_markdown": ["ContentSpider", "SiteToMarkdownSpider"],
    "fetchers": [
        "Fetcher", "AsyncFetcher", "ProxyRotator", "FetcherSession", "DynamicFetcher", "DynamicSession",
        "AsyncDynamicSession", "StealthyFetcher", "StealthySession", "AsyncStealthySession",
    ],
    "fetchers.requests": ["Fetcher", "AsyncFetcher", "FetcherSession"],
    "fetchers.chrome": ["DynamicFetcher", "DynamicSession", "AsyncDynamicSession"],
    "fetchers.stealth_chrome": ["StealthyFetcher", "StealthySession", "AsyncStealthySession"],
    "engines.toolbelt": ["ProxyRotator"],
    "engines.toolbelt.custom": ["Response"],
}  # fmt: skip


@pytest.mark.parametrize("path", SCRAPLING_MODULES)
def test_every_scrapling_module_path_a_spider_imports_has_a_shoal_twin_with_the_same_objects(path):
    module = importlib.import_module(f"shoal.{path}")
    for name in SCRAPLING_MODULES[path]:
        value = getattr(module, name)
        public = shoal.fetchers if path.startswith("fetchers") else shoal.spiders
        if hasattr(public, name):
            assert value is getattr(public, name), f"shoal.{path}.{name} is another object"


@pytest.mark.parametrize(
    ("name", "shoal_way"),
    [
        ("Fetcher", "yield Request(url, callback=...)"),
        ("AsyncFetcher", "yield Request(url, callback=...)"),
        ("DynamicFetcher", "add AsyncDynamicSession(...)"),
        ("DynamicSession", "add AsyncDynamicSession(...)"),
        ("StealthyFetcher", "add AsyncStealthySession(...)"),
        ("StealthySession", "add AsyncStealthySession(...)"),
    ],
)
def test_one_off_fetchers_import_and_using_them_names_the_shoal_way(name, shoal_way):
    fetcher = getattr(shoal.fetchers, name)
    for use in (lambda: fetcher.get("https://e.com"), lambda: fetcher.fetch("https://e.com"), lambda: fetcher()):
        expected = rf"shoal fetches pages in its worker pools\. In a spider, {re.escape(shoal_way)}"
        with pytest.raises(TypeError, match=expected):
            use()


def test_a_one_off_fetcher_added_as_a_spider_session_fails_when_the_spider_is_built():
    class Stealthy(shoal.spiders.Spider):
        name = "stealthy"
        start_urls = ["https://e.com"]

        def configure_sessions(self, manager):
            manager.add("s", shoal.fetchers.StealthySession(headless=True))

    with pytest.raises(shoal.spiders.SessionConfigurationError, match="add AsyncStealthySession"):
        Stealthy()
