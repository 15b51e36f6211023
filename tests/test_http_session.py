"""The HTTP worker's session against real servers on 127.0.0.1: arguments reach the server, errors are named."""

import base64
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from redis.asyncio import Redis

from shoal.common.messages import RequestRecord
from shoal.common.sessions import session_defaults
from shoal.workers.http import HttpSession
from shoal.workers.proxies import ProxyRotation


def session(**config) -> HttpSession:
    return HttpSession({**session_defaults("http"), **config}, max_clients=8)


def record(url: str, **kwargs) -> RequestRecord:
    return RequestRecord(url=url, sid="http", kwargs=kwargs)


async def fetch(shop, path: str, config: dict | None = None, **kwargs):
    http = session(**(config or {}))
    try:
        return await http.fetch("c1", record(f"{shop.url}{path}", **kwargs))
    finally:
        await http.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Aux:
    """A small server on 127.0.0.1 that records every request: a redirect target, a proxy, odd bodies."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.url = ""

    async def app(self) -> web.Application:
        async def chunked(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()  # no Content-Length: the size is known only while reading
            await response.prepare(request)
            for _ in range(int(request.query["kb"])):
                await response.write(b"x" * 1024)
            await response.write_eof()
            return response

        async def bomb(request: web.Request) -> web.Response:
            body = gzip.compress(b"0" * int(request.query["kb"]) * 1024)
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})

        async def repeated(request: web.Request) -> web.Response:
            headers = [("X-Multi", "one"), ("X-Other", "between"), ("X-Multi", "two")]
            response = web.Response(text="ok")
            for name, value in headers:
                response.headers.add(name, value)
            return response

        async def anything(request: web.Request) -> web.Response:
            self.seen.append(request)
            return web.json_response({"aux": self.url, "target": str(request.url)})

        app = web.Application()
        app.add_routes(
            [
                web.get("/chunked", chunked),
                web.get("/bomb", bomb),
                web.get("/repeated", repeated),
                web.route("*", "/{tail:.*}", anything),
            ]
        )
        return app


@pytest.fixture
async def aux() -> AsyncIterator[Callable[[], Awaitable[Aux]]]:
    """Starts as many Aux servers as a test asks for."""
    runners: list[web.AppRunner] = []

    async def start() -> Aux:
        server = Aux()
        runner = web.AppRunner(await server.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        runners.append(runner)
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_session_headers_and_request_headers_both_reach_the_server(shop):
    result = await fetch(
        shop,
        "/echo",
        {"headers": {"X-Session": "s", "X-Both": "session"}},
        headers={"x-both": "req"},
        extra_headers={"X-Browser-Only": "1"},  # Response.follow adds these for browser sessions
        google_search=False,
    )
    seen = json.loads(result.body)["headers"]
    assert seen["x-session"] == "s" and seen["x-both"] == "req"
    assert "x-browser-only" not in seen
    assert seen["referer"] == "https://www.google.com/"  # stealthy_headers
    assert "chrome" in seen["user-agent"].lower() and "sec-ch-ua" in seen  # impersonate="chrome"


async def test_stealthy_headers_give_a_google_referer_unless_one_is_given_or_they_are_off(shop):
    given = json.loads((await fetch(shop, "/echo", headers={"Referer": "http://a.example/"})).body)["headers"]
    assert given["referer"] == "http://a.example/"
    off = json.loads((await fetch(shop, "/echo", {"stealthy_headers": False})).body)["headers"]
    assert "referer" not in off
    bare = json.loads((await fetch(shop, "/echo", {"impersonate": None})).body)["headers"]
    assert "Chrome/" in bare["user-agent"] and bare["accept-language"] and bare["referer"]


async def test_request_method_and_body_reach_the_server(shop):
    form = json.loads((await fetch(shop, "/echo", method="POST", data={"a": "1", "b": "2"})).body)
    assert (form["method"], form["body"]) == ("POST", "a=1&b=2")
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    sent = json.loads((await fetch(shop, "/echo", method="PUT", json={"k": [1, 2]})).body)
    assert (sent["method"], json.loads(sent["body"])) == ("PUT", {"k": [1, 2]})
    query = json.loads((await fetch(shop, "/echo", method="delete", params={"q": "x", "page": 2})).body)
    assert (query["method"], query["query"]) == ("DELETE", "q=x&page=2")


async def test_basic_auth_and_request_cookies_reach_the_server(shop):
    seen = json.loads((await fetch(shop, "/echo", auth=["user", "pw"], cookies={"c": "1"})).body)
    assert seen["headers"]["authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()
    assert seen["cookies"] == {"c": "1"}


async def test_cookies_persist_across_requests_of_one_session(shop):
    http = session()
    try:
        first = await http.fetch("c1", record(f"{shop.url}/set-cookie?name=token&value=abc"))
        assert first.cookies == {"token": "abc"}
        second = await http.fetch("c1", record(f"{shop.url}/echo"))
        assert json.loads(second.body)["cookies"] == {"token": "abc"}
    finally:
        await http.close()
    other = json.loads((await fetch(shop, "/echo")).body)
    assert other["cookies"] == {}  # another session has its own jar


async def test_result_carries_status_all_headers_in_order_and_elapsed(aux):
    server = await aux()
    http = session()
    try:
        request = record(f"{server.url}/repeated")
        result = await http.fetch("c1", request)
    finally:
        await http.close()
    assert (result.crawl, result.request, result.status, result.reason) == ("c1", request, 200, "OK")
    multi = [(name, value) for name, value in result.headers if name.startswith("X-")]
    assert multi == [("X-Multi", "one"), ("X-Other", "between"), ("X-Multi", "two")]
    assert result.body == b"ok" and 0 < result.elapsed < 5 and result.meta == {} and result.error is None


async def test_redirect_is_followed_and_the_final_url_reported(shop):
    result = await fetch(shop, "/redirect?to=/product/3")
    assert result.error is None and result.status == 200
    assert result.url == f"{shop.url}/product/3"
    assert result.body == shop.site.product(3).encode()


async def test_redirects_are_not_followed_when_turned_off(shop):
    result = await fetch(shop, "/redirect?to=/product/3", follow_redirects=False)
    assert result.status == 302 and result.url.endswith("/redirect?to=/product/3")


async def test_more_redirects_than_max_redirects_is_a_redirect_error(shop):
    chain = "/redirect?to=/redirect%3Fto%3D/echo"
    assert (await fetch(shop, chain, max_redirects=2)).status == 200
    result = await fetch(shop, chain, max_redirects=1)
    assert result.error.kind == "redirect" and chain in result.error.message


async def test_safe_mode_refuses_redirect_to_private_address(shop, aux):
    # First on loopback, where it is harmless to check that the refusal comes before any connection.
    target = await aux()
    result = await fetch(shop, f"/redirect?to={target.url}/internal")
    assert result.error is not None and result.error.kind == "redirect", result.error
    assert "SSRF" in result.error.message and target.seen == []
    # Only then a private network address: refused the same way, no packet leaves this machine.
    result = await fetch(shop, "/redirect?to=http://10.255.255.1/", {"timeout": 2, "retries": 1})
    assert result.error.kind == "redirect" and "10.255.255.1" in result.error.message


async def test_redirect_to_private_address_is_followed_when_follow_redirects_is_true(shop, aux):
    target = await aux()
    result = await fetch(shop, f"/redirect?to={target.url}/internal", follow_redirects=True)
    assert result.status == 200 and result.url == f"{target.url}/internal" and len(target.seen) == 1


async def test_unreachable_port_is_connection_error():
    port = closed_port()
    http = session(retries=1)
    try:
        result = await http.fetch("c1", record(f"http://127.0.0.1:{port}/"))
    finally:
        await http.close()
    assert result.error.kind == "connection" and f"127.0.0.1:{port}" in result.error.message


async def test_connection_errors_are_retried_with_the_delay_but_http_statuses_are_not(shop):
    started = time.monotonic()
    result = await fetch(shop, "", retries=3, retry_delay=0.3, proxy=f"http://127.0.0.1:{closed_port()}")
    assert result.error.kind == "connection" and time.monotonic() - started >= 0.6  # three attempts, two delays
    before = len(shop.log)
    result = await fetch(shop, "/status/503?retry-check", retries=3, retry_delay=0.3)
    assert result.status == 503 and result.error is None
    assert [path for _, _, path in shop.log[before:]] == ["/status/503?retry-check"]


async def test_timeout_is_reported(shop):
    result = await fetch(shop, "/slow?seconds=3", {"retries": 1}, timeout=0.5)
    assert result.error.kind == "timeout" and "/slow?seconds=3" in result.error.message


async def test_body_over_limit_is_too_large(shop, aux):
    http = HttpSession(session_defaults("http"), max_body=4 * 1024)
    server = await aux()
    try:
        declared = await http.fetch("c1", record(f"{shop.url}/product/1"))  # Content-Length over the limit
        streamed = await http.fetch("c1", record(f"{server.url}/chunked?kb=64"))  # no Content-Length
        bomb = await http.fetch("c1", record(f"{server.url}/bomb?kb=1024"))  # small on the wire, 1 MB decoded
        small = await http.fetch("c1", record(f"{server.url}/chunked?kb=3"))
    finally:
        await http.close()
    for result in (declared, streamed, bomb):
        assert result.error.kind == "too_large" and "4096 bytes" in result.error.message, result.error
    assert small.error is None and small.body == b"x" * 3 * 1024


async def test_truncate_body_keeps_the_first_max_body_size_bytes_and_marks_the_result(shop, aux):
    http = session(max_body_size=4 * 1024, truncate_body=True)
    server = await aux()
    try:
        declared = await http.fetch("c1", record(f"{shop.url}/product/1"))
        streamed = await http.fetch("c1", record(f"{server.url}/chunked?kb=64"))
        bomb = await http.fetch("c1", record(f"{server.url}/bomb?kb=1024"))
        small = await http.fetch("c1", record(f"{server.url}/chunked?kb=3"))
    finally:
        await http.close()
    for result in (declared, streamed, bomb):
        assert result.error is None and result.status == 200, result.error
        assert len(result.body) == 4096 and result.meta == {"body_truncated": True}
    assert declared.body == shop.site.product(1).encode()[:4096] and streamed.body == b"x" * 4096
    assert small.body == b"x" * 3 * 1024 and small.meta == {}


async def test_a_sessions_max_body_size_can_lower_the_workers_limit_but_not_raise_it():
    for asked, limit in ((2**30, 4096), (1024, 1024)):
        http = HttpSession({"max_body_size": asked}, max_body=4096)
        await http.close()
        assert http.max_body == limit


async def test_binary_bodies_arrive_intact(shop):
    result = await fetch(shop, "/binary")
    assert result.body == bytes((i * 31) % 256 for i in range(4096))


@pytest.mark.parametrize("url", ["http://", "http://[::1/x", "nosuchscheme://x/"])
async def test_an_invalid_url_is_an_invalid_error(url):
    http = session(retries=3)
    try:
        result = await http.fetch("c1", record(url))
    finally:
        await http.close()
    assert result.error.kind == "invalid" and url in result.error.message


async def test_proxy_rotator_cycles_through_its_proxies_per_request_and_reports_the_proxy(shop, aux, redis_url):
    first, second = await aux(), await aux()
    proxies = [first.url, {"server": second.url, "username": "u", "password": "p w"}]
    redis = Redis.from_url(redis_url)
    rotation = ProxyRotation(redis, "c1", "http", {"proxies": proxies, "strategy": "cyclic"}, resolve=None)
    http = HttpSession({**session_defaults("http"), "proxy_rotator": proxies}, max_clients=8, rotation=rotation)
    try:
        results = [await http.fetch("c1", record(f"{shop.url}/echo?n={n}")) for n in range(4)]
        pinned = await http.fetch("c1", record(f"{shop.url}/echo?n=pinned", proxy=first.url))
    finally:
        await http.close()
        await redis.aclose()
    assert [r.meta["proxy"] for r in results] == [proxies[0], proxies[1], proxies[0], proxies[1]]
    assert [json.loads(r.body)["aux"] for r in results] == [first.url, second.url, first.url, second.url]
    assert [str(r.url) for r in first.seen[:2]] == [f"{shop.url}/echo?n=0", f"{shop.url}/echo?n=2"]
    auth = second.seen[0].headers["Proxy-Authorization"]
    assert base64.b64decode(auth.split()[1]) == b"u:p w"
    assert pinned.meta == {"proxy": first.url} and len(first.seen) == 3
