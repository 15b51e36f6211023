"""LinkExtractor: the URLs of a page's links, filtered by pattern, domain, page region and extension.

Scrapling's API (``extract(response)`` returns URLs, ``matches(url)`` filters one URL) and defaults
(``canonicalize=True``); Scrapy's argument names ``restrict_xpaths`` and ``unique`` are accepted too.
"""

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from w3lib.html import strip_html5_whitespace
from w3lib.url import canonicalize_url, safe_url_string

from shoal.common.response import Response

#: Extensions of files a crawl rarely wants to fetch as pages (archives, media, office documents, code).
IGNORED_EXTENSIONS = frozenset({
    "7z", "7zip", "bz2", "rar", "tar", "tar.gz", "tgz", "xz", "zip",
    "bmp", "gif", "ico", "jpeg", "jpg", "png", "svg", "tif", "tiff", "webp", "avif", "heic", "psd", "eps", "ai",
    "aac", "aiff", "flac", "m4a", "mid", "mp3", "ogg", "wav", "wma", "opus",
    "3gp", "asf", "avi", "flv", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "qt", "swf", "webm", "wmv",
    "doc", "docx", "dot", "dotx", "odg", "odp", "ods", "odt", "pps", "ppt", "pptx", "rtf", "xls", "xlsm", "xlsx",
    "apk", "bin", "bat", "css", "dmg", "exe", "iso", "jar", "js", "msi", "pdf", "rss", "sh",
})  # fmt: skip
_SCHEMES = ("http", "https")
_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")

Patterns = str | re.Pattern[str] | Iterable[str | re.Pattern[str]]


def _strings(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _patterns(value: Patterns | None) -> tuple[re.Pattern[str], ...]:
    if not value:
        return ()
    if isinstance(value, str | re.Pattern):
        value = (value,)
    return tuple(p if isinstance(p, re.Pattern) else re.compile(p) for p in value)


def _names(value: Iterable[str], what: str) -> tuple[str, ...]:
    names = _strings(value)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"LinkExtractor {what} must be element or attribute names, got {name!r}")
    return names


def _extensions(url: str) -> list[str]:
    """Every dotted tail of the URL path's last segment: ``a.tar.gz`` gives ``tar.gz`` and ``gz``."""
    last = urlsplit(url).path.rpartition("/")[2].lower()
    parts = last.split(".")
    return [".".join(parts[i:]) for i in range(1, len(parts)) if parts[i]]


def _in_domains(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


class LinkExtractor:
    """Finds links in a response and keeps those that pass every filter.

    ``allow``/``deny``: regexes searched in the URL (``deny`` wins; no ``allow`` keeps all).
    ``allow_domains``/``deny_domains``: hosts, subdomains included. ``restrict_css``/``restrict_xpaths``:
    look for links only inside these regions. ``tags``/``attrs``: where links are (``a``/``area`` ``href``).
    ``canonicalize``: sort the query and normalize the URL (Scrapling's default, True). ``unique``: each URL
    once. ``deny_extensions``: drop files with these extensions (default IGNORED_EXTENSIONS). ``process``:
    called with each absolute URL before filtering; return a URL, or a falsy value to drop it.
    """

    def __init__(
        self,
        allow: Patterns = (),
        deny: Patterns = (),
        allow_domains: str | Iterable[str] = (),
        deny_domains: str | Iterable[str] = (),
        restrict_css: str | Iterable[str] = (),
        restrict_xpaths: str | Iterable[str] = (),
        tags: str | Iterable[str] = ("a", "area"),
        attrs: str | Iterable[str] = ("href",),
        canonicalize: bool = True,
        unique: bool = True,
        strip: bool = True,
        keep_fragment: bool = False,
        deny_extensions: Iterable[str] | None = None,
        process: Callable[[str], Any] | None = None,
        restrict_xpath: str | Iterable[str] = (),  # Scrapling's spelling
    ) -> None:
        self.allow = _patterns(allow)
        self.deny = _patterns(deny)
        self.allow_domains = tuple(domain.lower() for domain in _strings(allow_domains))
        self.deny_domains = tuple(domain.lower() for domain in _strings(deny_domains))
        self.restrict_css = _strings(restrict_css)
        self.restrict_xpaths = _strings(restrict_xpaths) + _strings(restrict_xpath)
        tags, attrs = _names(tags, "tags"), _names(attrs, "attrs")
        self._query = " | ".join(f"descendant-or-self::{tag}/@{attr}" for tag in tags for attr in attrs)
        self.canonicalize = canonicalize
        self.unique = unique
        self.strip = strip
        self.keep_fragment = keep_fragment
        given = IGNORED_EXTENSIONS if deny_extensions is None else _strings(deny_extensions)
        self.deny_extensions = frozenset(ext.lower().lstrip(".") for ext in given)
        if process is not None and not callable(process):
            raise TypeError(f"LinkExtractor process must be callable, got {type(process).__name__}")
        self.process = process

    def extract(self, response: Response) -> list[str]:
        """The absolute URLs of the links in ``response`` that pass the filters, in document order."""
        regions = [region for query in self.restrict_xpaths for region in response.xpath(query)]
        regions += [region for query in self.restrict_css for region in response.css(query)]
        if not (self.restrict_xpaths or self.restrict_css):
            regions = [response]
        urls = []
        for region in regions:
            for value in region.xpath(self._query).getall():
                url = self._absolute(response, value)
                if url and self._passes(url):
                    urls.append(url)
        return list(dict.fromkeys(urls)) if self.unique else urls

    def matches(self, url: str) -> bool:
        """Whether ``url`` alone passes the URL filters (patterns, domains, extensions)."""
        if self.canonicalize:
            url = canonicalize_url(url, keep_fragments=self.keep_fragment)
        return self._passes(url)

    def _absolute(self, response: Response, value: str) -> str | None:
        url = strip_html5_whitespace(value) if self.strip else value
        if not url:
            return None
        url = response.urljoin(url)
        if self.process is not None:
            url = self.process(url)
            if not url:
                return None
        if self.canonicalize:
            url = canonicalize_url(url, keep_fragments=self.keep_fragment)
        try:
            return safe_url_string(url, encoding=response.encoding)
        except ValueError:
            return None

    def _passes(self, url: str) -> bool:
        if url.partition("://")[0].lower() not in _SCHEMES:
            return False
        if self.deny_extensions and any(ext in self.deny_extensions for ext in _extensions(url)):
            return False
        if self.allow and not any(pattern.search(url) for pattern in self.allow):
            return False
        if any(pattern.search(url) for pattern in self.deny):
            return False
        host = (urlsplit(url).hostname or "").lower()
        if self.allow_domains and not _in_domains(host, self.allow_domains):
            return False
        return not (self.deny_domains and _in_domains(host, self.deny_domains))

    def __repr__(self) -> str:
        allow = [pattern.pattern for pattern in self.allow]
        return f"LinkExtractor(allow={allow}, allow_domains={list(self.allow_domains)})"
