"""Reading fetched sitemaps and feeds safely: gunzip with a size cap, and XML without entities or huge trees."""

import gzip
import io
import zlib

from lxml import etree

from shoal.common.response import Response

#: Most bytes a gzip'd body may decompress to (a sitemap may hold 50 MB; beyond this it is a gzip bomb).
MAX_DECOMPRESSED = 64 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/gzip-compressed", "application/x-gunzip")


class BodyError(ValueError):
    """A body that cannot be read: a broken or too large gzip stream, or XML that does not parse."""


def gunzip(data: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress gzip ``data``; BodyError when it is broken or decompresses to more than ``limit`` bytes."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(limit + 1)  # decompresses no further than that
    except (OSError, EOFError, zlib.error) as e:
        raise BodyError(f"gzip body is broken: {e}") from None
    if len(out) > limit:
        raise BodyError(f"gzip body decompresses to more than {limit} bytes")
    return out


def is_gzip(response: Response) -> bool:
    """Whether the body is gzip data: the magic bytes (a .gz file, or Content-Encoding not undone), or its type."""
    content_type = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
    return response.body[:2] == _GZIP_MAGIC or content_type in _GZIP_TYPES


def decoded_body(response: Response) -> bytes:
    """The response body, gunzipped (with the size cap) when it is gzip data."""
    return gunzip(response.body) if is_gzip(response) else response.body


def _parser(recover: bool) -> etree.XMLParser:
    # No entity expansion, no DTD or network fetches, no trees beyond libxml2's default safety limits.
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=recover,
    )


def parse_xml(data: bytes, recover: bool = False) -> etree._Element:
    """The root element of XML ``data``, parsed safely; BodyError when it does not parse.

    ``recover`` reads what it can of broken XML, as Scrapy does for sitemaps."""
    try:
        root = etree.fromstring(data, _parser(recover))
    except etree.XMLSyntaxError as e:
        raise BodyError(f"not well-formed XML: {e}") from None
    if root is None:
        raise BodyError("no XML document in the body")
    return root


def local_name(element: etree._Element) -> str:
    """The element's tag without its namespace ('' for comments and the like)."""
    return etree.QName(element).localname if isinstance(element.tag, str) else ""
