"""Crawl a shop: every listing page, every product page, one item per product.

With no arguments it serves shoal's bundled demo shop (500 products) on 127.0.0.1 for the length
of the crawl, so it runs on a machine without internet:

    shoal run examples/shop.py -o items.jsonl
    shoal run examples/shop.py -a url=http://127.0.0.1:8000 -o items.csv   # a shop you serve yourself
"""

from shoal.demo import ShopSite, start_site
from shoal.spiders import Request, Response, Spider


class ShopSpider(Spider):
    name = "shop"
    concurrent_requests = 32
    url = ""  # -a url=... to crawl another copy of the shop

    async def on_start(self, resuming: bool = False) -> None:
        if not self.url:
            self.site = start_site(ShopSite(products=500))
            self.url = self.site.url
            self.logger.info("serving the demo shop at %s", self.url)

    async def on_close(self) -> None:
        if getattr(self, "site", None):
            self.site.stop()

    async def start_requests(self):
        yield Request(f"{self.url}/products")

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}
