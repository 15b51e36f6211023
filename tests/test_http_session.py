"""The HTTP worker's session against a real local server: arguments reach the server, errors are named."""

import json
import socket

import pytest

from shoal.common.messages import RequestRecord
from shoal.common.sessions import session_defaults
from shoal.workers.http import HttpSession


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


async def test_session_headers_and_request_headers_both_reach_the_server(shop):
    result = await fetch(shop, "/echo", {"headers": {"X-Session": "s", "X-Both": "session"}}, headers={"x-both": "req"})
    seen = json.loads(result.body)["headers"]
    assert seen["x-session"] == "s" and seen["x-both"] == "req"
    assert seen["referer"] == "https://www.google.com/"  # stealthy_headers
    assert "chrome" in seen["user-agent"].lower()  # impersonate="chrome"


async def test_request_method_and_body_reach_the_server(shop):
    form = json.loads((await fetch(shop, "/echo", method="POST", data={"a": "1", "b": "2"})).body)
    assert (form["method"], form["body"]) == ("POST", "a=1&b=2")
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    sent = json.loads((await fetch(shop, "/echo", method="PUT", json={"k": [1, 2]})).body)
    assert (sent["method"], json.loads(sent["body"])) == ("PUT", {"k": [1, 2]})


async def test_cookies_persist_across_requests_of_one_session(shop):
    http = session()
    try:
        first = await http.fetch("c1", record(f"{shop.url}/set-cookie?name=token&value=abc"))
        assert first.cookies.get("token") == "abc"
        second = await http.fetch("c1", record(f"{shop.url}/echo"))
        assert json.loads(second.body)["cookies"] == {"token": "abc"}
    finally:
        await http.close()


async def test_redirect_is_followed_and_the_final_url_reported(shop):
    result = await fetch(shop, "/redirect?to=/product/3")
    assert result.error is None and result.status == 200
    assert result.url == f"{shop.url}/product/3"
    assert b"<h1>Product 3</h1>" in result.body


async def test_redirects_are_not_followed_when_turned_off(shop):
    result = await fetch(shop, "/redirect?to=/product/3", follow_redirects=False)
    assert result.status == 302 and result.url.endswith("/redirect?to=/product/3")


async def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = session(retries=1)
    try:
        result = await http.fetch("c1", record(f"http://127.0.0.1:{port}/"))
    finally:
        await http.close()
    assert result.error.kind == "connection" and f"127.0.0.1:{port}" in result.error.message


async def test_a_slow_server_is_a_timeout(shop):
    result = await fetch(shop, "/slow?seconds=3", {"retries": 1}, timeout=0.5)
    assert result.error.kind == "timeout"


async def test_a_body_over_the_limit_is_too_large(shop):
    http = HttpSession(session_defaults("http"), max_body=4 * 1024)
    try:
        result = await http.fetch("c1", record(f"{shop.url}/product/1"))
    finally:
        await http.close()
    assert result.error.kind == "too_large"


async def test_binary_bodies_arrive_intact(shop):
    result = await fetch(shop, "/binary")
    assert result.body == bytes((i * 31) % 256 for i in range(4096))


@pytest.mark.parametrize("url", ["http://", "http://[::1/x"])
async def test_an_invalid_url_is_an_invalid_error(url):
    http = session(retries=1)
    try:
        result = await http.fetch("c1", record(url))
    finally:
        await http.close()
    assert result.error is not None and result.error.kind in ("invalid", "other")
