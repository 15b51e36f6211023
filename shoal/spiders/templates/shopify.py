"""ShopifySpider: every product of a Shopify store, read from its JSON API (no HTML).

Scrapling's template: the store's ``/collections.json`` pages, then each non-empty collection's
``products.json`` pages (250 per page, until an empty page), one item per product variant. A variant
listed in several collections is yielded once per spider process (``collected_ids``).
"""

from collections.abc import AsyncGenerator, Iterator
from typing import Any
from urllib.parse import urlparse

from w3lib.html import remove_tags

from shoal.common.request import Request
from shoal.common.response import Response
from shoal.spiders.spider import Spider


class ShopifySpider(Spider):
    """Set ``target_website`` to the store's domain (or give ``start_urls`` or ``allowed_domains``)."""

    name = "shopify"
    target_website: str = ""
    collections_url = "https://{website}/collections.json?page={page}&limit=250"
    products_url = "https://{website}/collections/{handle}/products.json?page={page}&limit=250"
    product_url = "https://{website}/collections/{handle}/products/{product_handle}"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        given = self.target_website or next(iter(self.start_urls), "") or next(iter(self.allowed_domains), "")
        if not given:
            raise ValueError(f"{type(self).__name__} must set `target_website`, `start_urls`, or `allowed_domains`")
        self.target_website = urlparse(given if "://" in given else f"https://{given}").netloc
        self.collected_ids: set[Any] = set()

    def _collections_page(self, page: int) -> Request:
        url = self.collections_url.format(website=self.target_website, page=page)
        return Request(url, callback=self.parse, meta={"page": page})

    def _products_page(self, handle: str, page: int) -> Request:
        url = self.products_url.format(website=self.target_website, handle=handle, page=page)
        return Request(url, callback=self.parse_collection, meta={"handle": handle, "page": page})

    async def start_requests(self) -> AsyncGenerator[Request, None]:
        yield self._collections_page(1)

    async def parse(self, response: Response) -> AsyncGenerator[Request, None]:
        """A collections page: a request per collection that has products, then the next page."""
        collections = response.json()["collections"]
        if not collections:
            return
        for collection in collections:
            if collection["products_count"]:
                yield self._products_page(collection["handle"], 1)
        yield self._collections_page(response.meta.get("page", 1) + 1)

    async def parse_collection(self, response: Response) -> AsyncGenerator[dict[str, Any] | Request, None]:
        """A products page of a collection: an item per new variant, then the next page."""
        handle, page = response.meta["handle"], response.meta.get("page", 1)
        products = response.json()["products"]
        if not products:
            self.logger.debug("Extracted all products from collection %s", handle)
            return
        for product in products:
            for item in self._process_product(product, handle):
                yield item
        yield self._products_page(handle, page + 1)

    def _process_product(self, product: dict[str, Any], handle: str) -> Iterator[dict[str, Any]]:
        """An item per variant of ``product`` not yielded before."""
        images = product.get("images") or []
        for variant in product["variants"]:
            if variant["id"] in self.collected_ids:
                continue
            self.collected_ids.add(variant["id"])
            title = product["title"]
            if variant["title"] != "Default Title":
                title += f" - {variant['title']}"
            old_price = variant.get("compare_at_price")
            yield {
                "name": title,
                "price": variant["price"],
                "category": handle.replace("-", " ").title().strip(),
                "brand": product["vendor"],
                "identifier": variant["id"],
                "sku": variant.get("sku") or "",
                "stock": None if variant.get("available") else 0,
                "image_url": images[0]["src"] if images else "",
                "url": self.product_url.format(
                    website=self.target_website, handle=handle, product_handle=product["handle"]
                ),
                "description": remove_tags(product.get("body_html") or ""),
                "old_price": old_price if old_price and float(old_price) else "",
                "barcode": variant.get("barcode") or "",
            }
