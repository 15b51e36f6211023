"""The reference page's "Same Session Class, Different Configurations", imports changed.

python -m shoal.demo --port 8000 &
shoal run examples/reference_same_class.py -o products.jsonl
"""

from shoal.fetchers import FetcherSession
from shoal.spiders import Response, Spider


class ProductSpider(Spider):
    name = "products"
    start_urls = ["http://127.0.0.1:8000/products"]

    def configure_sessions(self, manager):
        chrome_requests = FetcherSession(impersonate="chrome")
        firefox_requests = FetcherSession(impersonate="firefox")

        manager.add("chrome", chrome_requests)
        manager.add("firefox", firefox_requests)

    async def parse(self, response: Response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)

        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, sid="firefox")

    async def parse_product(self, response: Response):
        yield {
            "name": response.css("h1::text").get(""),
            "price": response.css(".price::text").get(""),
        }
