"""ContentSpider (also named SiteToMarkdownSpider): a site as clean Markdown, one item per page.

Scrapling's template for RAG/LLM ingestion: every page link inside ``allowed_domains`` is followed, and each
page becomes ``{"url", "title", "markdown"}`` through ``Response.markdown()`` (scripts, styles and hidden
content removed; needs markdownify: ``pip install "shoal[markdown]"``). With ``output_dir`` each page is also
written there as a Markdown file named after its URL. ``max_pages`` is shoal's quota: at most that many pages
are fetched, across every coordinator.
"""

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.links import LinkExtractor
from shoal.spiders.templates.crawl import CrawlRule, CrawlSpider

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ContentSpider(CrawlSpider):
    """Set ``allowed_domains`` (required) and ``start_urls``; override ``rules()`` to narrow the crawl.

    ``css_selector``: convert only the elements it matches. ``main_content_only``: convert only ``<body>``.
    ``output_dir``: also write each page to ``<output_dir>/<host and path>.md``.
    """

    css_selector: str | None = None
    main_content_only: bool = True
    output_dir: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.allowed_domains:
            raise ValueError(
                f"{type(self).__name__} must set `allowed_domains` to bound the crawl to the target website(s)"
            )
        self._file_names: set[str] = set()

    def rules(self) -> Sequence[CrawlRule]:
        """Follow every page link (within ``allowed_domains``)."""
        return [CrawlRule(LinkExtractor())]

    async def parse(self, response: Response) -> AsyncGenerator[dict[str, Any] | Request, None]:
        """The page as an item, then its links by the rules."""
        yield {
            "url": response.url,
            "title": str(response.css("title::text").get() or "").strip(),
            "markdown": response.markdown(self.css_selector, self.main_content_only),
        }
        async for request in super().parse(response):
            yield request

    async def on_scraped_item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """With ``output_dir``, write the page's Markdown to its file."""
        if self.output_dir:
            path = Path(self.output_dir) / f"{self.file_name(item['url'])}.md"
            await asyncio.to_thread(_write, path, item["markdown"])
        return item

    def file_name(self, url: str) -> str:
        """A file name for ``url``'s page: its host and path with unsafe characters replaced (at most 150),
        with a hash of the URL appended when another page of this process already has that name."""
        parts = urlsplit(url)
        name = _UNSAFE.sub("-", f"{parts.netloc}{parts.path}".strip("/")).strip("-")[:150] or "index"
        if name in self._file_names:
            name = f"{name}-{hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:8]}"
        self._file_names.add(name)
        return name


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


SiteToMarkdownSpider = ContentSpider
