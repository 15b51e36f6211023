"""XMLFeedSpider and CSVFeedSpider: a callback per node of an XML feed, or per row of a CSV feed.

Scrapling's API: ``parse_node(response, node)`` gets an lxml element with namespaces stripped (so
``node.findtext("title")`` works on any feed), ``itertag`` matches by local name unless it has a prefix
defined in ``namespaces``; ``parse_row(response, row)`` gets a dict. As in Scrapy, a CSV row whose
number of fields differs from the header's is skipped with a warning. Gzip'd feeds are decompressed
with the sitemap's size cap, and XML is parsed without entity expansion.
"""

import csv
import io
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from lxml import etree

from shoal.common.response import Response
from shoal.spiders.spider import Spider
from shoal.spiders.templates.bodies import BodyError, decoded_body, is_gzip, local_name, parse_xml


def _strip_namespaces(root: etree._Element) -> None:
    """Drop the namespaces of every tag and attribute under ``root``, in place."""
    for element in root.iter(tag=etree.Element):
        element.tag = etree.QName(element).localname
        for name in [name for name in element.attrib if name.startswith("{")]:
            element.attrib[etree.QName(name).localname] = element.attrib.pop(name)
    etree.cleanup_namespaces(root)


class XMLFeedSpider(Spider):
    """Calls ``parse_node(response, node)`` for each ``itertag`` element of each feed in ``start_urls``.

    ``itertag``: the nodes' name ("item"; "entry" for Atom). A prefixed name ("media:content") matches
    only in the namespace that ``namespaces`` (``(prefix, uri)`` pairs) gives the prefix."""

    itertag: str = "item"
    namespaces: Sequence[tuple[str, str]] = ()

    def _wanted(self) -> tuple[str | None, str]:
        prefix, _, name = self.itertag.rpartition(":")
        if not prefix:
            return None, name
        uri = dict(self.namespaces).get(prefix)
        if uri is None:
            raise ValueError(f"{type(self).__name__}.itertag {self.itertag!r}: prefix {prefix!r} is not in namespaces")
        return uri, name

    def iter_nodes(self, response: Response) -> Iterator[etree._Element]:
        """The feed's ``itertag`` nodes, namespaces stripped; BodyError when the feed cannot be read."""
        root = parse_xml(decoded_body(response))
        uri, name = self._wanted()
        nodes = [
            element
            for element in root.iter(tag=etree.Element)
            if local_name(element) == name and (uri is None or etree.QName(element).namespace == uri)
        ]
        _strip_namespaces(root)
        return iter(nodes)

    async def parse(self, response: Response) -> AsyncGenerator[Any, None]:
        try:
            nodes = self.iter_nodes(response)
        except BodyError as e:
            self.logger.warning("Failed to parse XML feed from %s: %s", response.url, e)
            return
        for node in nodes:
            async for result in self.parse_node(response, node):
                yield result

    async def parse_node(self, response: Response, node: etree._Element) -> AsyncGenerator[Any, None]:
        """Override: items and requests from one node of the feed."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse_node()")
        yield


class CSVFeedSpider(Spider):
    """Calls ``parse_row(response, row)`` for each row of each CSV feed in ``start_urls``.

    ``delimiter`` and ``quotechar`` as in the csv module; ``headers``: the column names, when the feed's
    first row is not a header."""

    delimiter: str = ","
    quotechar: str = '"'
    headers: Sequence[str] | None = None

    def iter_rows(self, response: Response) -> Iterator[dict[str, str]]:
        """The feed's rows as dicts; BodyError when the feed cannot be read."""
        encoding = "utf-8" if is_gzip(response) else response.encoding  # a gzip'd feed declares no encoding inside
        text = decoded_body(response).decode(encoding, errors="replace").removeprefix("\N{BYTE ORDER MARK}")
        reader = csv.reader(io.StringIO(text), delimiter=self.delimiter, quotechar=self.quotechar)
        headers = list(self.headers) if self.headers else next(reader, None)
        for row in reader:
            if not row:  # a blank line
                continue
            if headers is None or len(row) != len(headers):
                self.logger.warning(
                    "Ignoring row %d of %s: %d fields, the header has %d",
                    reader.line_num,
                    response.url,
                    len(row),
                    len(headers or ()),
                )
                continue
            yield dict(zip(headers, row, strict=True))

    async def parse(self, response: Response) -> AsyncGenerator[Any, None]:
        try:
            rows = list(self.iter_rows(response))
        except (BodyError, csv.Error) as e:
            self.logger.warning("Ignoring feed %s: %s", response.url, e)
            return
        for row in rows:
            async for result in self.parse_row(response, row):
                yield result

    async def parse_row(self, response: Response, row: dict[str, str]) -> AsyncGenerator[Any, None]:
        """Override: items and requests from one row of the feed."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse_row()")
        yield
