"""The reference page's "Argument Inheritance", imports changed.

python -m shoal.demo --port 8000 &
shoal run examples/reference_argument_inheritance.py -o products.jsonl
"""

from shoal.fetchers import FetcherSession
from shoal.spiders import Request, Response, Spider


class ProductSpider(Spider):
    name = "products"
    start_urls = ["http://127.0.0.1:8000/products"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession(impersonate="chrome"))

    async def parse(self, response: Response):
        # Override impersonate from desktop Chrome to mobile Chrome
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, impersonate="chrome131_android", callback=self.parse_product)

        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield Request(response.urljoin(next_page))

    async def parse_product(self, response: Response):
        yield {
            "name": response.css("h1::text").get(""),
            "price": response.css(".price::text").get(""),
        }
