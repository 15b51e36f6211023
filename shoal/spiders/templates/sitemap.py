"""SitemapSpider: crawl the pages that a site's sitemaps list.

Scrapling's API: ``sitemap_urls`` (sitemaps, sitemap indexes, or robots.txt files whose ``Sitemap:``
lines are followed), ``rules()`` returning CrawlRules matched against each URL (first match wins),
``sitemap_follow`` as a LinkExtractor, ``sitemap_alternate_links``. Scrapy's API too: ``sitemap_rules``
as ``(regex, callback)`` pairs (used when ``rules()`` gives none; by default every URL goes to
``parse``), ``sitemap_follow`` as regexes, and the ``sitemap_filter(entries)`` hook.

Gzip'd sitemaps (``.xml.gz``, or gzip bodies whatever their headers say) are decompressed up to
``MAX_DECOMPRESSED`` bytes; XML is parsed without entity expansion, DTDs or huge trees. A sitemap that
cannot be read is logged and skipped.
"""

import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from protego import Protego

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.links import LinkExtractor
from shoal.spiders.spider import Spider
from shoal.spiders.templates.bodies import BodyError, decoded_body, local_name, parse_xml
from shoal.spiders.templates.crawl import CrawlRule, RuleDispatch

SitemapRule = tuple[str | re.Pattern[str], str | Callable[..., Any]]


def _entries(root: etree._Element, alternate: bool) -> Iterable[dict[str, Any]]:
    """Each ``<url>`` or ``<sitemap>`` of a sitemap as a dict of its children's text (``loc``, ``lastmod``
    ...), with ``alternate``: the hrefs of its ``xhtml:link rel="alternate"`` children."""
    for element in root:
        if local_name(element) not in ("url", "sitemap"):
            continue
        entry: dict[str, Any] = {}
        for child in element:
            name = local_name(child)
            if name == "link" and alternate and child.get("rel") == "alternate" and child.get("href"):
                entry.setdefault("alternate", []).append(child.get("href").strip())
            elif name and name != "link":
                entry[name] = (child.text or "").strip()
        if entry.get("loc"):
            yield entry


class SitemapSpider(RuleDispatch, Spider):
    """Seeds the crawl from ``sitemap_urls``; each page URL goes to the first rule it matches."""

    sitemap_urls: Sequence[str] = ()
    sitemap_rules: Sequence[SitemapRule] = (("", "parse"),)
    sitemap_follow: LinkExtractor | Sequence[str | re.Pattern[str]] | None = None
    sitemap_alternate_links: bool = False

    def declared_rules(self) -> Sequence[CrawlRule]:
        """``rules()`` if it returns any (Scrapling), else ``sitemap_rules`` (Scrapy) as CrawlRules."""
        return super().declared_rules() or [
            CrawlRule(LinkExtractor(allow=pattern, canonicalize=False, deny_extensions=()), callback)
            for pattern, callback in self.sitemap_rules
        ]

    async def start_requests(self) -> AsyncGenerator[Request, None]:
        """A request per ``sitemap_urls`` entry, parsed as a sitemap (or robots.txt)."""
        if not self.sitemap_urls:
            raise RuntimeError(f"{type(self).__name__} needs `sitemap_urls`")
        for url in self.sitemap_urls:
            yield Request(url, sid=self.session_manager.default_session_id, callback=self._parse_sitemap)

    def sitemap_filter(self, entries: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Override to drop or change sitemap entries (dicts with ``loc``, ``lastmod``, ``alternate`` ...)
        before they are followed; it sees the entries of sitemap indexes and of URL sets alike."""
        return entries

    def rule_callback(self, rule: CrawlRule) -> Any:
        """The callback of a rule's requests: its own, else ``parse`` (never the sitemap's callback)."""
        return rule.callback or self.parse

    def follows_sitemap(self, url: str) -> bool:
        """Whether a sitemap listed in a sitemap index is fetched (``sitemap_follow``; all by default)."""
        follow = self.sitemap_follow
        if follow is None:
            return True
        if isinstance(follow, LinkExtractor):
            return follow.matches(url)
        patterns = [follow] if isinstance(follow, str | re.Pattern) else follow
        return any(re.search(pattern, url) for pattern in patterns)

    async def _parse_sitemap(self, response: Response) -> AsyncGenerator[Request, None]:
        """The callback of sitemap, sitemap index and robots.txt responses."""
        if urlsplit(response.url).path.endswith("/robots.txt"):
            sitemaps = list(Protego.parse(response.body.decode(response.encoding, errors="replace")).sitemaps)
            if not sitemaps:
                self.logger.warning("No Sitemaps found in %s", response.url)
            for url in sitemaps:
                yield response.follow(url, callback=self._parse_sitemap)
            return
        try:
            root = parse_xml(decoded_body(response), recover=True)
        except BodyError as e:
            self.logger.warning("Ignoring sitemap %s: %s", response.url, e)
            return
        kind = local_name(root)
        if kind not in ("urlset", "sitemapindex"):
            self.logger.warning(
                "Ignoring sitemap %s: its root is <%s>, not <urlset> or <sitemapindex>", response.url, kind
            )
            return
        for entry in self.sitemap_filter(_entries(root, self.sitemap_alternate_links)):
            if kind == "sitemapindex":
                if self.follows_sitemap(entry["loc"]):
                    yield response.follow(entry["loc"], callback=self._parse_sitemap)
                continue
            for url in [entry["loc"], *entry.get("alternate", ())]:
                if (request := self._route(response, url)) is not None:
                    yield request

    def _route(self, response: Response, url: str) -> Request | None:
        for n, rule in enumerate(self.crawl_rules()):
            if rule.link_extractor.matches(url):
                return self.rule_request(response, url, n)
        return None
