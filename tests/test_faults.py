"""Bad input, each with a clear error and nothing lost: what callbacks yield, what sites send back, what
lands in Redis. One crawl covers most cases; the tests below each read one property off it."""

import logging
import time
from dataclasses import dataclass

import msgspec
import pytest
import redis

from shoal.common import keys
from shoal.common.messages import FetchJob, FetchResult, RequestRecord, encode
from shoal.fetchers import AsyncDynamicSession, FetcherSession
from shoal.spiders import CrawlResult, Request, Response, Spider
from tests.faulty_site import LATIN1, FaultySite, closed_port


class Records(logging.Handler):
    """Keeps the log records of a spider."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class FaultySpider(Spider):
    name = "faulty"
    concurrent_requests = 1  # so the slowloris page holds the crawl's only slot until it times out
    logging_level = logging.ERROR

    def __init__(self, site: FaultySite, refused: int):
        self.site, self.refused = site, refused
        self.errors: list[tuple[str, str]] = []
        super().__init__()

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession(retries=1))
        manager.add("capped", FetcherSession(max_body_size=4096, truncate_body=True))
        manager.add("refusing", FetcherSession(max_body_size=4096))

    async def start_requests(self):
        site = self.site
        yield Request(f"{site.slow_url}/page/slow", timeout=1, priority=10, callback=self.page)
        yield Request(f"{site.url}/page/output", callback=self.mixed_output)
        for path in ("/binary", "/latin1", "/latin1-meta"):
            yield Request(f"{site.url}{path}", callback=self.text)
        yield Request(f"{site.url}/big?kb=64", sid="capped", callback=self.big)
        yield Request(f"{site.url}/big?kb=64", sid="refusing", callback=self.big)
        yield Request("http://shoal-test.invalid/page/dns", callback=self.page)
        yield Request(f"http://127.0.0.1:{self.refused}/page/refused", callback=self.page)
        yield Request(f"{site.url}/loop", max_redirects=3, callback=self.page)
        yield Request(f"{site.url}/page/last", priority=-10, callback=self.page)

    async def mixed_output(self, response: Response):
        yield {"kept": 1}
        yield Request("ftp://127.0.0.1/file")
        yield Request("not a url")
        yield Request("http://[::1/x")
        yield Request("http:///no-host")
        yield Request(f"{self.site.url}/page/nowhere", sid="nosuchsid")
        yield 42
        yield response.follow("/page/followed", callback=self.page)
        yield {"kept": 2}
        raise ValueError("broken halfway")

    async def page(self, response: Response):
        yield {"page": response.css("h1::text").get()}

    async def text(self, response: Response):
        yield {
            "path": response.url.rsplit("/", 1)[1],
            "p": response.css("p::text").get(),
            "text": response.body.decode(response.encoding, errors="replace"),
        }

    async def big(self, response: Response):
        yield {"sid": response.request.sid, "size": len(response.body), "meta": response.meta}

    async def on_error(self, request: Request, error: Exception) -> None:
        self.errors.append((request.url, str(error)))


@dataclass
class Outcome:
    spider: FaultySpider
    result: CrawlResult
    logs: list[str]
    site: FaultySite
    seconds: float

    def items(self, key: str) -> list:
        return [item for item in self.result.items if key in item]

    def error(self, fragment: str) -> str:
        found = [message for url, message in self.spider.errors if fragment in url or fragment in message]
        assert len(found) == 1, (fragment, self.spider.errors)
        return found[0]

    def failed(self, path: str):
        [entry] = [entry for entry in self.result.failed if entry.request.url.endswith(path)]
        return entry


@pytest.fixture(scope="module")
def faulty(redis_server) -> Outcome:
    with FaultySite() as site:
        spider = FaultySpider(site, closed_port())
        records = Records()
        spider.logger.addHandler(records)
        started = time.monotonic()
        result = spider.start(redis_url=redis_server.url)
        return Outcome(spider, result, records.messages, site, time.monotonic() - started)


def test_invalid_and_non_http_urls_yielded_by_a_callback_are_errors_naming_the_url(faulty):
    assert "ftp://127.0.0.1/file" in faulty.error("ftp://") and "only http:// and https://" in faulty.error("ftp://")
    assert "only http:// and https://" in faulty.error("not a url")
    assert "not a valid URL" in faulty.error("http://[::1/x")
    assert "the URL has no host" in faulty.error("http:///no-host")
    assert faulty.result.stats.failed_requests_by_kind["rejected"] == 5


def test_a_request_to_an_undefined_sid_names_the_sid_and_the_sids_that_exist(faulty):
    message = faulty.error("/page/nowhere")
    assert "sid 'nosuchsid', which no session has (sessions: http, capped, refusing)" in message


def test_a_callback_raising_midway_keeps_what_it_yielded_before_and_the_error_names_it(faulty):
    assert sorted(item["kept"] for item in faulty.items("kept")) == [1, 2]
    assert {"page": "followed"} in faulty.result.items  # its requests too
    assert faulty.error("broken halfway")
    [logged] = [message for message in faulty.logs if "broken halfway" in message]
    assert logged.startswith("Callback FaultySpider.mixed_output raised ValueError processing <200 ")
    assert "kept the 2 items and 1 requests it yielded before" in logged


def test_an_unsupported_yield_is_logged_naming_the_callback_and_type_and_the_rest_is_kept(faulty):
    [logged] = [message for message in faulty.logs if "got 'int'" in message]
    assert "from FaultySpider.mixed_output" in logged
    assert faulty.result.stats.custom_stats["callback_errors"] == 2  # the int, and the raise


def test_non_utf8_bodies_decode_with_the_declared_or_sniffed_charset_and_binary_does_not_break_selectors(faulty):
    texts = {item["path"]: item for item in faulty.items("path")}
    assert texts["latin1"]["p"] == texts["latin1-meta"]["p"] == "café à la crème"
    assert texts["latin1"]["text"] == LATIN1  # nothing declared: not UTF-8, so Windows-1252
    assert texts["binary"]["p"] is None and len(texts["binary"]["text"]) > 0


def test_a_body_over_max_body_size_is_truncated_and_marked_or_refused_per_setting(faulty):
    [capped] = faulty.items("size")
    assert (capped["sid"], capped["size"], capped["meta"]["body_truncated"]) == ("capped", 4096, True)
    assert faulty.result.stats.custom_stats["truncated_responses"] == 1
    refused = faulty.failed("/big?kb=64")
    assert refused.kind == "too_large" and "4096 bytes" in refused.message and refused.request.sid == "refusing"


def test_unresolvable_and_refusing_hosts_and_redirect_loops_are_recorded_failures(faulty):
    dns, refused, loop = faulty.failed("/page/dns"), faulty.failed("/page/refused"), faulty.failed("/loop")
    assert dns.kind == "dns" and "shoal-test.invalid" in dns.message
    assert refused.kind == "connection" and f"127.0.0.1:{faulty.spider.refused}" in refused.message
    assert loop.kind == "redirect" and "/loop" in loop.message
    assert faulty.result.stats.failed_requests_by_kind == {
        "rejected": 5,
        "timeout": 1,
        "too_large": 1,
        "dns": 1,
        "connection": 1,
        "redirect": 1,
    }
    assert faulty.result.stats.failed_requests_count == 10


def test_a_slowloris_server_is_given_up_on_after_the_timeout_and_its_slot_goes_to_the_next_request(faulty):
    assert faulty.failed("/page/slow").kind == "timeout"
    assert faulty.site.dribbled == 1 and faulty.site.dribbling == 0  # the worker closed the connection
    assert {"page": "last"} in faulty.result.items  # the crawl's only slot was freed
    assert faulty.seconds < 30  # the server would dribble for a minute


# -- messages in Redis that are not shoal's -------------------------------------------------------------


class SlowPages(Spider):
    name = "slow-pages"
    concurrent_requests = 1
    logging_level = logging.CRITICAL

    def __init__(self, base: str):
        self.start_urls = [f"{base}/slow?seconds=0.3&n={n}" for n in range(6)]
        super().__init__()

    async def parse(self, response: Response):
        yield {"url": response.url}


async def test_malformed_and_foreign_messages_in_job_and_response_streams_are_dead_lettered_and_the_crawl_goes_on(
    shop, redis_url
):
    spider = SlowPages(shop.url)
    client = redis.asyncio.Redis.from_url(redis_url)
    items = []
    async for item in spider.stream(redis_url=redis_url):
        items.append(item)
        if len(items) == 1:
            [crawl] = [member.decode() for member in await client.smembers(keys.CRAWLS)]
            elsewhere = FetchJob(crawl="elsewhere", request=RequestRecord(url=f"{shop.url}/echo", sid="default"))
            await client.xadd(keys.queue(crawl, "default"), {"j": b"\xc1 not msgpack"})
            await client.xadd(keys.queue(crawl, "default"), {"foreign": "field"})
            await client.xadd(keys.queue(crawl, "default"), {"j": encode(elsewhere)})
            stray = FetchResult(crawl="elsewhere", request=RequestRecord(url=f"{shop.url}/echo", sid="default"))
            await client.xadd(keys.responses(crawl), {"r": msgspec.msgpack.encode({"not": "a result"})})
            await client.xadd(keys.responses(crawl), {"foreign": "field"})
            await client.xadd(keys.responses(crawl), {"r": encode(stray)})
            # a response to a request this crawl dispatched, naming a callback the spider lacks
            unknown = RequestRecord(url=f"{shop.url}/echo", sid="default", callback="no_such_callback")
            await client.hincrby(keys.inflight(crawl), "default", 1)
            await client.hincrby(keys.domain_inflight(crawl), shop.url.split("//")[1], 1)
            await client.xadd(keys.responses(crawl), {"r": encode(FetchResult(crawl=crawl, request=unknown))})
    assert len(items) == 6  # and the crawl ended: the slot of the rejected response was released
    assert spider.stats.failed_requests_by_kind == {"rejected": 1}
    assert spider.stats.custom_stats["dead_letters"] == 6
    dead = [fields for _, fields in await client.xrange(keys.dead_letters(crawl))]
    reasons = sorted(fields[b"reason"].decode() for fields in dead)
    assert sum("not a valid FetchJob" in reason for reason in reasons) == 2
    assert sum("not a valid FetchResult" in reason for reason in reasons) == 1
    assert "a FetchJob of crawl 'elsewhere' in another crawl's stream" in reasons
    assert "a FetchResult of crawl 'elsewhere', not of this crawl" in reasons
    assert "not a shoal response (it has no field 'r')" in reasons
    assert {b"foreign": b"field", b"from": keys.responses(crawl).encode()}.items() <= next(
        fields for fields in dead if b"foreign" in fields and b"from" in fields
    ).items()  # a foreign response is kept whole
    assert await client.xlen(keys.responses(crawl)) == 0
    await client.aclose()


# -- page actions -----------------------------------------------------------------------------------------


class MissingAction(Spider):
    name = "missing-action"
    logging_level = logging.CRITICAL

    def __init__(self, base: str, session_action: str | None = None):
        self.base, self.session_action = base, session_action
        self.errors: list[str] = []
        super().__init__()

    def configure_sessions(self, manager):
        extra = {"page_action": self.session_action} if self.session_action else {}
        manager.add("browser", AsyncDynamicSession(**extra))

    async def start_requests(self):
        yield Request(f"{self.base}/product/1", page_action="no_such_action")
        yield Request(f"{self.base}/product/2")

    async def parse(self, response: Response):
        yield {"h1": response.css("h1::text").get()}

    async def on_error(self, request, error):
        self.errors.append(str(error))


def test_a_page_action_the_spider_lacks_is_an_error_at_the_request_and_the_browser_worker_goes_on(shop, redis_url):
    with pytest.raises(ValueError, match="AsyncDynamicSession page action 'scroll' is not a method of MissingAction"):
        MissingAction(shop.url, session_action="scroll").start(redis_url=redis_url)
    spider = MissingAction(shop.url)
    result = spider.start(redis_url=redis_url)
    assert result.items == [{"h1": "Product 2"}]
    [error] = spider.errors
    assert "/product/1" in error and "page action 'no_such_action' is not a method of MissingAction" in error
