"""Spiders the tests run in-process and submit to services, whose coordinators load them from this
file's source: it imports nothing but shoal.

PoolsSpider crawls the demo shop at ``url``: listings over HTTP, product pages through the browser
pools in turn. ProbeSpider loads the bot-check page of tests/botd in each browser pool.
"""

import json

from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.spiders import Request, Response, Spider


class PoolsSpider(Spider):
    name = "pools"
    concurrent_requests = 8
    logging_level = 30
    url = ""
    browser_sids = ("dynamic", "stealth")  # product pages go to these sids in turn

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("dynamic", AsyncDynamicSession(headless=True), lazy=True)
        manager.add("stealth", AsyncStealthySession(headless=True), lazy=True)

    async def start_requests(self):
        yield Request(self.url + "/products")

    async def parse(self, response: Response):
        sids = self.browser_sids
        for n, link in enumerate(response.css("a.product::attr(href)").getall()):
            yield response.follow(link, sid=sids[n % len(sids)], callback=self.parse_product)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page)

    async def parse_product(self, response: Response):
        yield {"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}


class ProbeSpider(Spider):
    name = "probe"
    logging_level = 30

    def __init__(self, page: str):
        self.page = page  # the bot-check page's URL
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("stealth", AsyncStealthySession(headless=True))
        manager.add("dynamic", AsyncDynamicSession(headless=True))

    async def start_requests(self):
        for sid in ("stealth", "dynamic"):
            yield Request(self.page, sid=sid, wait_selector="#result", meta={"sid": sid})

    async def parse(self, response: Response):
        yield {"sid": response.meta["sid"], **json.loads(response.css("#result::text").get())}
