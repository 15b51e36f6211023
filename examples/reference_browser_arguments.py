"""The reference page's "Browser-Specific Arguments", imports changed: a Cloudflare-protected page through
the stealth session (``solve_cloudflare=True``) and a JavaScript page through the browser session.

    shoal run examples/reference_browser_arguments.py -o results.jsonl

``https://nopecha.com/demo/cloudflare`` is Cloudflare's challenge on a public demo site; set ``start_urls``
to a site of yours with a ``/dynamic-page`` that adds ``div.loaded`` with JavaScript. (The tests serve
both on 127.0.0.1: tests/challenge_site.py.)
"""

from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession, FetcherSession
from shoal.spiders import Request, Response, Spider


class BrowserArgumentsSpider(Spider):
    name = "browser_arguments"
    start_urls = ["http://127.0.0.1:8000/"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession())
        manager.add("stealth", AsyncStealthySession(headless=True), lazy=True)
        manager.add("browser", AsyncDynamicSession(headless=True), lazy=True)

    async def parse(self, response: Response):
        # Use Cloudflare solver with the AsyncStealthySession
        yield Request(
            "https://nopecha.com/demo/cloudflare",
            sid="stealth",
            callback=self.parse_result,
            solve_cloudflare=True,
            block_webrtc=True,
            hide_canvas=True,
            google_search=True,
        )

        yield response.follow(
            "/dynamic-page",
            sid="browser",
            callback=self.parse_dynamic,
            wait_selector="div.loaded",
            network_idle=True,
        )

    async def parse_result(self, response: Response):
        yield {"page": "cloudflare", "status": response.status, "title": response.css("title::text").get("")}

    async def parse_dynamic(self, response: Response):
        yield {"page": "dynamic", "loaded": response.css("div.loaded::text").get("")}
