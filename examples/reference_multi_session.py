"""The reference page's "Multi-Session Spider", imports changed. Serve the demo shop first:

python -m shoal.demo --port 8000 &
shoal run examples/reference_multi_session.py -o products.jsonl
"""

from shoal.fetchers import AsyncStealthySession, FetcherSession
from shoal.spiders import Response, Spider


class ProductSpider(Spider):
    name = "products"
    start_urls = ["http://127.0.0.1:8000/products"]

    def configure_sessions(self, manager):
        # Fast HTTP for listing pages (default)
        manager.add("http", FetcherSession())

        # Stealth browser for protected product pages
        manager.add(
            "stealth",
            AsyncStealthySession(
                headless=True,
                network_idle=True,
            ),
        )

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            # Route product pages through the stealth session
            yield response.follow(link, sid="stealth", callback=self.parse_product)

        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {
            "name": response.css("h1::text").get(""),
            "price": response.css(".price::text").get(""),
        }
