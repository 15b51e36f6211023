"""Response: a fetched page as a spider callback sees it, with lxml-backed selectors (parsel)."""

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urljoin

from parsel import Selector, SelectorList
from w3lib.encoding import html_to_unicode

from shoal.common.request import Request

# As in current Scrapling: a followed link is a plain GET unless these are given again.
NON_INHERITED_KWARGS = frozenset({"method", "data", "json", "params", "files", "multipart"})


def _sniff(body: bytes) -> str:
    """The encoding of a body that declares none: UTF-8 if it decodes as such, else Windows-1252."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


class Headers(dict[str, str]):
    """Response headers; names are stored lower-cased and looked up case-insensitively."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((name.lower(), value) for name, value in pairs)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response:
    """A fetched page: status, headers, body, decoded text and CSS/XPath selectors.

    ``css``/``xpath`` return parsel selector lists, so ``::text``, ``::attr(name)``, ``.get(default)``,
    ``.getall()``, ``.re()`` and ``.re_first()`` work as in Scrapling.
    """

    def __init__(
        self,
        url: str,
        status: int = 200,
        body: bytes = b"",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        reason: str = "",
        cookies: Mapping[str, str] | None = None,
        encoding: str | None = None,
        meta: dict[str, Any] | None = None,
        request: Request | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = Headers(headers)
        self.cookies: dict[str, str] = dict(cookies or {})
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.request = request
        self._encoding = encoding
        self._text: str | None = None
        self._selector: Selector | None = None

    def _decode(self) -> None:
        encoding, self._text = html_to_unicode(self.headers.get("content-type"), self.body, auto_detect_fun=_sniff)
        self._encoding = self._encoding or encoding

    @property
    def text(self) -> str:
        """The body decoded with the declared (header, BOM or meta tag) encoding, else UTF-8 if it is valid
        UTF-8, else Windows-1252 (as browsers do); bytes that do not decode become U+FFFD."""
        if self._text is None:
            if self._encoding:
                self._text = self.body.decode(self._encoding, errors="replace")
            else:
                self._decode()
        return self._text  # type: ignore[return-value]

    @property
    def encoding(self) -> str:
        """The encoding used to decode the body."""
        if self._encoding is None:
            self._decode()
        return self._encoding  # type: ignore[return-value]

    @property
    def selector(self) -> Selector:
        """The parsed document (built on first use)."""
        if self._selector is None:
            self._selector = Selector(text=self.text or "<html></html>", base_url=self.url)
        return self._selector

    def css(self, query: str) -> SelectorList:
        """Select with a CSS query; ``::text`` and ``::attr(name)`` are supported."""
        return self.selector.css(query)

    def xpath(self, query: str, **namespaces_and_variables: Any) -> SelectorList:
        """Select with an XPath query."""
        return self.selector.xpath(query, **namespaces_and_variables)

    def re(self, regex: str, replace_entities: bool = True) -> list[str]:
        """Every match of ``regex`` in the document."""
        return self.selector.re(regex, replace_entities=replace_entities)

    def re_first(self, regex: str, default: str | None = None, replace_entities: bool = True) -> str | None:
        """The first match of ``regex`` in the document, else ``default``."""
        return self.selector.re_first(regex, default=default, replace_entities=replace_entities)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def urljoin(self, url: str) -> str:
        """Resolve ``url`` against this response's URL."""
        return urljoin(self.url, url)

    def follow(
        self,
        url: str,
        sid: str = "",
        callback: Callable[..., Any] | None = None,
        priority: int | None = None,
        dont_filter: bool = False,
        meta: dict[str, Any] | None = None,
        referer_flow: bool = True,
        **kwargs: Any,
    ) -> Request:
        """A Request for ``url`` (relative to this page) that inherits this response's request.

        The sid, callback, priority and session kwargs of the request that produced this response are
        inherited unless given; new kwargs win. ``method``, ``params``, ``data``, ``json``, ``files`` and
        ``multipart`` are not inherited, nor an inherited Content-Length header. Meta is merged, this
        response's first. With ``referer_flow`` this page's URL becomes the referer.
        """
        if not isinstance(self.request, Request):
            raise TypeError("This response has no request set yet.")
        inherited = {k: v for k, v in self.request.session_kwargs.items() if k not in NON_INHERITED_KWARGS}
        for key in ("headers", "extra_headers"):
            if inherited.get(key):
                inherited[key] = {k: v for k, v in inherited[key].items() if k.lower() != "content-length"}
        session_kwargs = {**inherited, **kwargs}
        if referer_flow:
            session_kwargs["headers"] = {**(session_kwargs.get("headers") or {}), "referer": self.url}
            session_kwargs["extra_headers"] = {**(session_kwargs.get("extra_headers") or {}), "referer": self.url}
            session_kwargs["google_search"] = False
        return Request(
            self.urljoin(url),
            sid=sid or self.request.sid,
            callback=callback or self.request.callback,
            priority=priority if priority is not None else self.request.priority,
            dont_filter=dont_filter,
            meta={**self.meta, **(meta or {})},
            **session_kwargs,
        )

    def __str__(self) -> str:
        return f"<{self.status} {self.url}>"

    __repr__ = __str__
