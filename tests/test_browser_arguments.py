"""Every argument Scrapling 0.5 documents for the browser sessions works in the browser pools, each shown
against a page on 127.0.0.1 (names outside it are mapped there with Chromium's host resolver rules)."""

import asyncio
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

import pytest
from aiohttp import web

from shoal.common.messages import RequestRecord
from shoal.common.response import Response as PlainResponse
from shoal.common.sessions import BROWSER_SESSION_ARGS, STEALTH_SESSION_ARGS, session_defaults
from shoal.demo.site import serve_app
from shoal.fetchers import AsyncDynamicSession, AsyncStealthySession
from shoal.spiders import Request, Response, SessionConfigurationError, Spider
from shoal.workers.browser_process import BrowserProcess
from shoal.workers.browser_session import BrowserSession
from shoal.workers.chromium import CHROME_PATHS, find_chromium
from shoal.workers.profiles import Profile
from tests.challenge_site import ChallengeSite
from tests.servers import self_signed

try:
    CHROMIUM = find_chromium()
except FileNotFoundError as e:
    pytest.skip(f"no Chromium: {e}", allow_module_level=True)

AD_HOSTS = ("ads.doubleclick.net", "pagead2.googlesyndication.com")
AD_RULES = "--host-resolver-rules=" + ", ".join(f"MAP {host} 127.0.0.1" for host in AD_HOSTS)

SHADOW = """<!DOCTYPE html><html><body><h1>Shadow</h1>
<product-card><span slot="price" class="light">9.99</span></product-card>
<locked-card></locked-card>
<script>
customElements.define('product-card', class extends HTMLElement { constructor() { super();
  this.attachShadow({mode: 'open'}).innerHTML =
    '<p class="inside">from the shadow</p><b><slot name="price"></slot></b>';
}});
customElements.define('locked-card', class extends HTMLElement { constructor() { super();
  this.attachShadow({mode: 'closed'}).innerHTML = '<p class="closed">closed</p>';
}});
</script></body></html>"""

XHR = """<!DOCTYPE html><html><body><div id="out">waiting</div><script>
fetch('/api/data?from=xhr').then(r => r.json()).then(d => { document.getElementById('out').textContent = d.secret; });
</script></body></html>"""


class Site:
    """The pages the argument tests fetch, with a count of the requests each path got."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.url, self.stop = serve_app(self._app())
        self.port = int(self.url.rsplit(":", 1)[1])

    def _app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler):
            self.hits[request.path_qs] = self.hits.get(request.path_qs, 0) + 1
            return await handler(request)

        def html(text: str, **kwargs) -> web.Response:
            return web.Response(text=text, content_type="text/html", **kwargs)

        async def shadow(request):
            return html(SHADOW)

        async def xhr(request):
            return html(XHR)

        async def data(request):
            return web.json_response({"secret": 42})

        async def ads(request):
            origin = request.query.get("from", "")
            return html(
                f"<h1>with ads</h1><img src='http://{AD_HOSTS[0]}:{self.port}/ad.png?from={origin}'>"
                f"<script src='http://{AD_HOSTS[1]}:{self.port}/ad.js?from={origin}'></script>"
                f"<link rel='stylesheet' href='/style.css?from={origin}'>"
            )

        async def asset(request):
            return web.Response(body=b"", content_type="text/css" if request.path.endswith(".css") else "image/png")

        async def set_cookie(request):
            response = html("<h1>set</h1>")
            response.set_cookie("profile", request.query.get("value", "kept"), max_age=3600)
            return response

        async def show_cookie(request):
            return html(f"<h1 id='cookie'>{request.cookies.get('profile', 'none')}</h1>")

        async def agent(request):
            return html(f"<h1 id='ua'>{request.headers.get('User-Agent', '')}</h1>")

        async def webgl(request):
            return html(
                "<h1 id='gl'>?</h1><script>document.getElementById('gl').textContent = "
                "document.createElement('canvas').getContext('webgl') ? 'webgl' : 'no webgl';</script>"
            )

        async def flaky(request):
            if self.hits[request.path_qs] == 1:  # the first time: too slow for the session's timeout
                await asyncio.sleep(8)
            return html("<h1>second time lucky</h1>")

        app = web.Application(middlewares=[count])
        for path, handler in {
            "/shadow": shadow,
            "/xhr": xhr,
            "/api/data": data,
            "/ads": ads,
            "/ad.png": asset,
            "/ad.js": asset,
            "/style.css": asset,
            "/cookie/set": set_cookie,
            "/cookie/show": show_cookie,
            "/agent": agent,
            "/flaky/{name}": flaky,
            "/webgl": webgl,
        }.items():
            app.router.add_get(path, handler)
        return app


@pytest.fixture(scope="module")
def site():
    running = Site()
    yield running
    running.stop()


class Pages(Spider):
    """Fetches ``requests`` (url, sid, kwargs) with the sessions ``sessions`` (sid -> session), and yields per
    page what the test asks ``read`` for; errors by request go to ``errors``."""

    name = "pages"
    logging_level = 50

    def __init__(self, sessions: dict, requests: list[tuple[str, str, dict]]):
        self.sessions_given = sessions
        self.requests = requests
        self.errors: dict[str, str] = {}
        super().__init__()

    def configure_sessions(self, manager):
        for sid, session in self.sessions_given.items():
            manager.add(sid, session)

    async def start_requests(self):
        for url, sid, kwargs in self.requests:
            yield Request(url, sid=sid, meta={"sid": sid, "url": url}, **kwargs)

    async def is_blocked(self, response: Response) -> bool:
        return False  # the tests look at challenge pages too

    async def parse(self, response: Response):
        yield {
            "sid": response.meta["sid"],
            "url": response.meta["url"],
            "status": response.status,
            "title": response.css("title::text").get(),
            "h1": response.css("h1::text").get(),
            "html": response.body.decode(response.encoding),
            "network": [  # a recorded body is bytes (decoded here, as items travel as JSON)
                {**record, "body": record["body"].decode()} if "body" in record else record
                for record in response.meta.get("network") or ()
            ],
        }

    async def on_error(self, request, error):
        self.errors[request.meta["url"]] = str(error)


def crawl(redis_url: str, sessions: dict, requests: list[tuple[str, str, dict]]) -> tuple[dict, dict]:
    """Run Pages; its items by (sid, url), and its errors by url."""
    spider = Pages(sessions, requests)
    result = spider.start(redis_url=redis_url)
    return {(item["sid"], item["url"]): item for item in result.items}, spider.errors


def test_pierce_shadow_puts_open_shadow_roots_and_their_slotted_content_into_the_html(site, redis_url):
    url = f"{site.url}/shadow"
    items, _ = crawl(
        redis_url,
        {"browser": AsyncDynamicSession()},
        [(url, "browser", {}), (f"{url}?p", "browser", {"pierce_shadow": True})],
    )
    plain = PlainResponse(url, items[("browser", url)]["html"].encode(), 200)
    pierced = PlainResponse(url, items[("browser", f"{url}?p")]["html"].encode(), 200)
    assert plain.css("p.inside").get() is None
    assert pierced.css("product-card shadow-root p.inside::text").get() == "from the shadow"
    assert pierced.css("product-card shadow-root b span.light::text").get() == "9.99"  # shown where its slot is
    assert pierced.css("p.closed").get() is None  # a closed shadow root cannot be read from the page


def test_record_requests_gives_each_response_the_requests_its_page_made(site, redis_url):
    url = f"{site.url}/xhr"
    session = AsyncDynamicSession(record_requests=True, max_recorded_requests=10, network_idle=True)
    items, _ = crawl(redis_url, {"browser": session}, [(url, "browser", {})])
    network = items[("browser", url)]["network"]
    (api,) = [record for record in network if record["url"].endswith("/api/data?from=xhr")]
    assert api["status"] == 200 and api["method"] == "GET" and api["resource_type"] == "fetch"
    assert json.loads(api["body"]) == {"secret": 42}
    assert api["headers"]["content-type"].startswith("application/json")
    assert network[0]["url"] == url  # the document first, in the order they finished


def test_block_ads_blocks_requests_to_listed_ad_domains_and_disable_resources_drops_stylesheets(site, redis_url):
    sessions = {
        "ads": AsyncDynamicSession(extra_flags=[AD_RULES]),
        "no-ads": AsyncDynamicSession(extra_flags=[AD_RULES], block_ads=True),
        "bare": AsyncDynamicSession(extra_flags=[AD_RULES], disable_resources=True),
    }
    requests = [(f"{site.url}/ads?from={sid}", sid, {}) for sid in sessions]
    items, errors = crawl(redis_url, sessions, requests)
    assert not errors and {item["h1"] for item in items.values()} == {"with ads"}
    assert site.hits.get("/ad.png?from=ads") == 1 and site.hits.get("/ad.js?from=ads") == 1  # the rules work
    assert "/ad.png?from=no-ads" not in site.hits and "/ad.js?from=no-ads" not in site.hits
    assert site.hits.get("/style.css?from=no-ads") == 1  # only the ad domains are blocked
    assert "/style.css?from=bare" not in site.hits and "/ad.png?from=bare" not in site.hits


def test_retries_tries_a_failed_page_again_after_retry_delay(site, redis_url):
    sessions = {
        "patient": AsyncDynamicSession(timeout=3000, retries=2, retry_delay=0.5),
        "once": AsyncDynamicSession(timeout=3000, retries=1),
    }
    requests = [(f"{site.url}/flaky/{sid}", sid, {}) for sid in sessions]
    items, errors = crawl(redis_url, sessions, requests)
    assert items[("patient", f"{site.url}/flaky/patient")]["h1"] == "second time lucky"
    assert site.hits["/flaky/patient"] == 2
    assert "Timeout" in errors[f"{site.url}/flaky/once"] and site.hits["/flaky/once"] == 1


def test_a_stealth_request_may_change_the_launch_flags_block_webrtc_hide_canvas_and_allow_webgl(site, redis_url):
    url = f"{site.url}/webgl"
    requests = [(url, "stealth", {}), (f"{url}?off", "stealth", {"allow_webgl": False, "hide_canvas": True})]
    items, errors = crawl(redis_url, {"stealth": AsyncStealthySession()}, requests)
    assert not errors
    assert items[("stealth", url)]["h1"] == "webgl"
    assert items[("stealth", f"{url}?off")]["h1"] == "no webgl"  # fetched in a browser launched without WebGL


# -- dns_over_https ---------------------------------------------------------------------------------------


class DohServer:
    """A DNS-over-HTTPS resolver (RFC 8484, GET and POST) that answers every A question with 127.0.0.1."""

    def __init__(self) -> None:
        self.questions: list[tuple[str, int]] = []
        app = web.Application()
        app.router.add_route("*", "/dns-query", self._query)
        url, self.stop = serve_app(app, ssl_context=self_signed(("127.0.0.1",)))
        self.template = f"{url}/dns-query{{?dns}}"

    async def _query(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            message = await request.read()
        else:
            encoded = request.query["dns"]
            message = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return web.Response(body=self._answer(message), content_type="application/dns-message")

    def _answer(self, message: bytes) -> bytes:
        query_id = message[:2]
        labels, at = [], 12
        while message[at]:
            labels.append(message[at + 1 : at + 1 + message[at]].decode())
            at += message[at] + 1
        qtype = struct.unpack(">H", message[at + 1 : at + 3])[0]
        question = message[12 : at + 5]
        self.questions.append((".".join(labels), qtype))
        if qtype != 1:  # AAAA, HTTPS ...: no such records
            return query_id + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + question
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
        return query_id + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


def test_dns_over_https_resolves_names_through_the_secure_dns_resolver_only(site, redis_url, monkeypatch):
    doh = DohServer()
    monkeypatch.setenv("SHOAL_DOH_TEMPLATES", doh.template)  # the workers' resolver: Cloudflare's by default
    url = f"http://shop.doh-only.example:{site.port}/agent"  # no resolver but the DoH server knows this name
    sessions = {
        "secure": AsyncDynamicSession(dns_over_https=True, extra_flags=["--ignore-certificate-errors"]),
        "system": AsyncDynamicSession(),
    }
    try:
        items, errors = crawl(redis_url, sessions, [(url, "secure", {}), (f"{url}?system", "system", {})])
    finally:
        doh.stop()
    assert items[("secure", url)]["h1"]  # the page, reached at the address the DoH server gave
    assert ("shop.doh-only.example", 1) in doh.questions
    assert "ERR_NAME_NOT_RESOLVED" in errors[f"{url}?system"]  # the system resolver does not know the name


# -- cdp_url, user_data_dir, real_chrome ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def remote_chromium(tmp_path):
    """A Chromium started outside shoal with --remote-debugging-port, and its user agent marker."""
    port = _free_port()
    marker = "remote-chromium-under-test/1.0"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={tmp_path / 'remote-profile'}", f"--user-agent={marker}", "--no-first-run",
         "--no-sandbox", "--disable-background-networking", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _answers(f"http://127.0.0.1:{port}/json/version"):
        assert process.poll() is None and time.monotonic() < deadline, "the remote Chromium did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", marker
    process.terminate()
    process.wait(10)


def test_cdp_url_fetches_with_the_browser_already_running_there_and_leaves_it_running(site, redis_url, remote_chromium):
    cdp_url, marker = remote_chromium
    url = f"{site.url}/agent?cdp"
    items, errors = crawl(redis_url, {"remote": AsyncDynamicSession(cdp_url=cdp_url)}, [(url, "remote", {})])
    assert not errors and items[("remote", url)]["h1"] == marker  # rendered by the remote browser
    assert _answers(f"{cdp_url}/json/version")  # shoal disconnected from it, and did not close it


def test_user_data_dir_keeps_a_profile_per_sid_and_worker_whose_cookies_survive_a_worker_restart(
    site, redis_url, tmp_path
):
    profiles = tmp_path / "profiles"
    session = AsyncDynamicSession(user_data_dir=str(profiles))
    crawl(redis_url, {"browser": session}, [(f"{site.url}/cookie/set?value=kept", "browser", {})])
    assert (profiles / "browser" / "0" / "Default").is_dir()  # the first worker's profile for sid "browser"
    # A new crawl has new worker processes: the cookie comes back from the profile on disk.
    url = f"{site.url}/cookie/show"
    items, _ = crawl(redis_url, {"browser": session}, [(url, "browser", {})])
    assert items[("browser", url)]["h1"] == "kept"
    items, _ = crawl(redis_url, {"other": session}, [(url, "other", {})])
    assert items[("other", url)]["h1"] == "none"  # another sid has a profile of its own


def test_each_worker_holds_its_own_profile_until_it_lets_go(tmp_path):
    first, second = Profile.claim(tmp_path / "sid"), Profile.claim(tmp_path / "sid")
    assert (first.path.name, second.path.name) == ("0", "1")  # never one profile for two browsers
    first.release()  # as when its worker exits, however it exits
    again = Profile.claim(tmp_path / "sid")
    assert again.path == first.path
    again.release()
    second.release()


@pytest.fixture
def fake_chrome(tmp_path, monkeypatch):
    """A "google-chrome" on PATH that notes each launch in a file and runs Chromium."""
    bin_dir, launches = tmp_path / "bin", tmp_path / "chrome-launches"
    bin_dir.mkdir()
    script = bin_dir / "google-chrome"
    script.write_text(f'#!/bin/sh\necho launched >> "{launches}"\nexec "{CHROMIUM}" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return launches


def test_real_chrome_launches_the_installed_google_chrome(site, redis_url, fake_chrome):
    url = f"{site.url}/agent?real-chrome"
    items, errors = crawl(redis_url, {"chrome": AsyncStealthySession(real_chrome=True)}, [(url, "chrome", {})])
    assert not errors and "Chrome/" in items[("chrome", url)]["h1"]
    if not any(os.access(path, os.X_OK) for path in CHROME_PATHS):  # else that Chrome is the one found first
        assert fake_chrome.read_text().count("launched") >= 1


def test_real_chrome_without_google_chrome_stops_the_crawl_before_any_request(site, redis_url, monkeypatch, tmp_path):
    if any(os.access(path, os.X_OK) for path in CHROME_PATHS) or shutil.which("google-chrome"):
        pytest.skip("Google Chrome is installed here")
    url = f"{site.url}/agent?no-chrome"
    with pytest.raises(SessionConfigurationError, match="real_chrome=True needs Google Chrome, and none is installed"):
        crawl(redis_url, {"chrome": AsyncDynamicSession(real_chrome=True)}, [(url, "chrome", {})])
    assert url.split(site.url)[1] not in site.hits


# -- solve_cloudflare -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def challenges():
    with ChallengeSite() as running:
        yield running


def test_solve_cloudflare_waits_out_the_javascript_interstitial_and_returns_the_page_behind_it(
    challenges, redis_url, monkeypatch
):
    monkeypatch.setenv("SHOAL_CHROMIUM_FLAGS", challenges.chromium_flags)
    solved, plain = f"{challenges.url}/interstitial/solved", f"{challenges.url}/interstitial/plain"
    items, _ = crawl(
        redis_url,
        {"stealth": AsyncStealthySession()},
        [(solved, "stealth", {"solve_cloudflare": True}), (plain, "stealth", {})],
    )
    assert items[("stealth", solved)]["status"] == 200  # the page the challenge reloaded into, not the challenge
    assert items[("stealth", solved)]["h1"] == "Behind the non-interactive challenge"
    assert items[("stealth", plain)]["status"] == 403 and items[("stealth", plain)]["title"] == "Just a moment..."
    assert "solved" in challenges.cleared


def test_solve_cloudflare_clicks_the_managed_challenges_checkbox_in_its_iframe(challenges, redis_url, monkeypatch):
    monkeypatch.setenv("SHOAL_CHROMIUM_FLAGS", challenges.chromium_flags)
    url = f"{challenges.url}/managed/clicked"
    clicks = len(challenges.clicks)
    items, _ = crawl(redis_url, {"stealth": AsyncStealthySession(solve_cloudflare=True)}, [(url, "stealth", {})])
    assert items[("stealth", url)]["h1"] == "Behind the managed challenge"
    (click,) = challenges.clicks[clicks:]
    # A person's click (a trusted event), 26-28 px right and 25-27 px down from the widget's corner, as
    # Scrapling clicks (give or take the rounding of the iframe's position to whole pixels)
    assert click["trusted"] and 25 <= click["x"] <= 29 and 24 <= click["y"] <= 28


def test_solve_cloudflare_ticks_an_embedded_turnstile_widget(challenges, redis_url, monkeypatch):
    monkeypatch.setenv("SHOAL_CHROMIUM_FLAGS", challenges.chromium_flags)
    url = f"{challenges.url}/turnstile/sign-in"
    kwargs = {"solve_cloudflare": True, "wait_selector": "#content[data-state=open]"}
    spider = Pages({"stealth": AsyncStealthySession()}, [(url, "stealth", kwargs), (f"{url}?plain", "stealth", {})])
    items = {item["url"]: item for item in spider.start(redis_url=redis_url).items}
    solved = PlainResponse(url, items[url]["html"].encode(), 200)
    plain = PlainResponse(url, items[f"{url}?plain"]["html"].encode(), 200)
    assert solved.css("#content::text").get() == "Welcome back: the account page"
    assert plain.css("#content::text").get() == "locked"


# -- all of them at once ------------------------------------------------------------------------------------

#: A value other than Scrapling's default for every argument of the browser sessions (the ones shown
#: on their own above, and the rest); cdp_url and executable_path take the place of a launch, so they
#: are shown on their own.
SAMPLES = {
    "max_pages": 2,
    "headless": True,
    "disable_resources": True,
    "network_idle": True,
    "load_dom": False,
    "pierce_shadow": True,
    "wait_selector": "#out",
    "wait_selector_state": "visible",
    "cookies": [{"name": "jar", "value": "j", "url": "http://127.0.0.1"}],
    "google_search": False,
    "wait": 50,
    "timezone_id": "Asia/Tokyo",
    "page_action": "action",
    "page_setup": "setup",
    "proxy": {"server": "http://127.0.0.1:9", "bypass": "127.0.0.1"},  # nothing listens there: bypassed
    "extra_headers": {"X-Everything": "yes"},
    "timeout": 20000,
    "selector_config": {"keep_comments": True},
    "additional_args": {"java_script_enabled": True},
    "locale": "fr-FR",
    "real_chrome": True,
    "useragent": "all-arguments/1.0",
    "extra_flags": ["--disable-gpu"],
    "blocked_domains": ["example.org"],
    "block_ads": True,
    "retries": 2,
    "retry_delay": 0.1,
    "record_requests": True,
    "max_recorded_requests": 5,
    "dns_over_https": True,
    "allow_webgl": False,
    "hide_canvas": True,
    "block_webrtc": True,
    "solve_cloudflare": True,
}
SHOWN_ALONE = {"cdp_url", "executable_path", "proxy_rotator", "init_script", "user_data_dir"}


@pytest.mark.parametrize("kind", ["dynamic", "stealth"])
async def test_a_session_with_every_argument_set_fetches_a_page(kind, site, fake_chrome, tmp_path):
    table = STEALTH_SESSION_ARGS if kind == "stealth" else BROWSER_SESSION_ARGS
    stealth_only = {name for name, _, _ in STEALTH_SESSION_ARGS} - {name for name, _, _ in BROWSER_SESSION_ARGS}
    samples = set(SAMPLES) if kind == "stealth" else set(SAMPLES) - stealth_only
    assert {name for name, _, _ in table} - SHOWN_ALONE == samples  # a new argument needs a sample here
    script = tmp_path / "init.js"
    script.write_text("window.initialised = 'yes';")
    config = {**session_defaults(kind), **{k: v for k, v in SAMPLES.items() if k in session_defaults(kind)}}
    config.update(init_script=str(script), user_data_dir=str(tmp_path / "profiles"))
    ran = []

    def resolve(name):
        async def method(page):
            ran.append(name)

        return method

    process = BrowserProcess(kind)
    session = BrowserSession(process, config, 2, resolve, sid="all")
    try:
        await session.start()
        result = await session.fetch("crawl", RequestRecord(url=f"{site.url}/xhr?all={kind}", sid="all"))
    finally:
        await session.close()
        await process.close()
    assert result.error is None, result.error
    assert b'<div id="out">42</div>' in result.body
    assert ran == ["setup", "action"]
    assert any(record["url"].endswith("/api/data?from=xhr") for record in result.meta["network"])
