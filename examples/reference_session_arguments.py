"""The reference page's "Session Arguments": per-request headers and a POST, imports changed.

python -m shoal.demo --port 8000 &
shoal run examples/reference_session_arguments.py -o echoes.jsonl
"""

from shoal.fetchers import FetcherSession
from shoal.spiders import Request, Response, Spider


class ApiSpider(Spider):
    name = "api"
    start_urls = ["http://127.0.0.1:8000/echo"]

    def configure_sessions(self, manager):
        manager.add("chrome", FetcherSession(impersonate="chrome"))
        manager.add("firefox", FetcherSession(impersonate="firefox"))

    async def parse(self, response: Response):
        # Pass extra headers for this specific request
        yield Request(
            response.urljoin("/echo?api=data"),
            headers={"Authorization": "Bearer token123"},
            callback=self.parse_api,
        )

        # Use a different HTTP method
        yield Request(
            response.urljoin("/echo?submit=1"),
            method="POST",
            data={"field": "value"},
            sid="firefox",
            callback=self.parse_result,
        )

    async def parse_api(self, response: Response):
        yield {"authorization": response.json()["headers"].get("authorization")}

    async def parse_result(self, response: Response):
        echo = response.json()
        yield {"method": echo["method"], "body": echo["body"]}
