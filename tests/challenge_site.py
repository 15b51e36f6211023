"""A site on 127.0.0.1 behind a reproduction of Cloudflare's challenges, for testing ``solve_cloudflare``.

One aiohttp app, served twice from background threads: over HTTP at ``url``, and over HTTPS (a
self-signed certificate) on ``tls_port``, which a browser reaches as ``challenges.cloudflare.com``
(and ``nopecha.com``, the reference page's demo host) with ``chromium_flags``: a host resolver rule to
127.0.0.1 and no certificate checks. Each challenge page has a name of the test's choosing, and its
clearance cookie (``cf_clearance``, as Cloudflare's) is scoped to that page.

- ``/interstitial/NAME``: a non-interactive challenge. Answers 403 (``cf-mitigated: challenge``) with the
  "Just a moment..." page declaring ``cType: 'non-interactive'``; its orchestration script (served from
  ``/cdn-cgi/challenge-platform/...``) works for ``WORK_S`` seconds, then posts its proof to the site,
  which sets the clearance cookie, and reloads into the page: without JavaScript, or without waiting,
  the challenge page is all there is.
- ``/managed/NAME``: a managed challenge: "Verifying you are human." for a second, then the Turnstile
  widget, an iframe from ``challenges.cloudflare.com/cdn-cgi/challenge-platform/...`` inside a closed
  shadow root under ``.main-content p+div>div>div``. Only a real (trusted) click on the checkbox in it
  gets a token from the challenge server; the page posts the token to the site for the cookie and reloads.
- ``/turnstile/NAME``: a sign-in page with a Turnstile widget embedded by ``challenges.cloudflare.com/
  turnstile/v0/api.js``; ticking the checkbox in the widget's iframe calls the page's callback with a
  token, which the page trades at ``/turnstile/verify`` for the content it shows in ``#content``.
- ``/demo/cloudflare``: ``/managed/nopecha`` under the reference page's demo URL.
- ``/``: a page; ``/dynamic-page``: a ``div.loaded`` that its script adds after half a second.
"""

import json
import secrets

from aiohttp import web

from shoal.demo.site import serve_app
from tests.servers import self_signed

WORK_S = 2.0
SITE_KEY = "0x4AAAAAAADnPIDROrmt1Wwj"
FRAME_PATH = f"/cdn-cgi/challenge-platform/h/b/turnstile/if/ov2/av0/rcv/{{ray}}/{SITE_KEY}/light/fbE/new/normal/auto/"
CHALLENGE_HOSTS = ("challenges.cloudflare.com", "nopecha.com")

INTERSTITIAL = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta name="robots" content="noindex,nofollow">
</head><body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">127.0.0.1</h1>
<p id="challenge-body-text" class="h2 spacer-bottom">Verifying you are human. This may take a few seconds.</p>
<div id="challenge-stage"><div><div id="turnstile-wrapper" class="turnstile"></div></div></div>
<noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript>
</div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "127.0.0.1",cType: '%(ctype)s',cRay: '%(ray)s',
cH: '%(nonce)s',cUPMDTk: "%(path)s",cFPWv: 'b',cITimeS: '1732000000'};
var s = document.createElement('script');
s.src = '/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=%(ray)s';
document.getElementsByTagName('head')[0].appendChild(s);}());</script></body></html>"""

#: The orchestration script: proves it runs JavaScript (and waits), or shows the widget and waits for its token.
ORCHESTRATE = """(function () {
  var opt = window._cf_chl_opt;
  function clear(token) {
    fetch('/cdn-cgi/challenge-platform/h/b/flow/ov1/' + opt.cRay, {method: 'POST', body: token})
      .then(function (r) { if (r.ok) location.reload(); });
  }
  if (opt.cType === 'non-interactive') {
    setTimeout(function () {
      var proof = 0;
      for (var i = 0; i < opt.cH.length; i++) proof = (proof * 31 + opt.cH.charCodeAt(i)) %% 1000003;
      clear(String(proof));
    }, %(work_ms)d);
    return;
  }
  setTimeout(function () {
    document.getElementById('challenge-body-text').textContent =
      '127.0.0.1 needs to review the security of your connection before proceeding.';
    var root = document.getElementById('turnstile-wrapper').attachShadow({mode: 'closed'});
    var frame = document.createElement('iframe');
    frame.src = 'https://challenges.cloudflare.com%(frame)s';
    frame.style.cssText = 'width:300px;height:65px;border:none;display:block';
    root.appendChild(frame);
  }, 1000);
  window.addEventListener('message', function (event) {
    if (event.data && event.data.source === 'cloudflare-challenge') clear(event.data.token);
  });
})();"""

#: The widget: a checkbox that, clicked by a person (a trusted event), asks the challenge server for a token.
WIDGET = """<!DOCTYPE html><html><head><title>Just a moment...</title><style>
body{margin:0;font:14px sans-serif;background:#fafafa}
label{position:absolute;left:0;top:0;width:298px;height:63px;border:1px solid #e0e0e0}
input{position:absolute;left:16px;top:16px;width:24px;height:24px;margin:0}
span{position:absolute;left:52px;top:22px}</style></head><body>
<label><input type="checkbox"><span>Verify you are human</span></label>
<script>
document.querySelector('input').addEventListener('click', function (event) {
  fetch(location.pathname + 'click', {method: 'POST', body: JSON.stringify(
    {trusted: event.isTrusted, x: event.clientX, y: event.clientY})})
    .then(function (r) { return r.ok ? r.text() : null; })
    .then(function (token) {
      if (token) parent.postMessage({source: 'cloudflare-challenge', token: token}, '*');
    });
});
</script></body></html>"""

#: Cloudflare's Turnstile loader, reduced to what a page sees: a widget iframe in each .cf-turnstile.
TURNSTILE_API = """(function () {
  document.querySelectorAll('.cf-turnstile').forEach(function (element) {
    var ray = Math.random().toString(16).slice(2);
    var input = document.createElement('input');
    input.type = 'hidden';
    input.name = 'cf-turnstile-response';
    element.appendChild(input);
    var root = element.appendChild(document.createElement('div')).attachShadow({mode: 'closed'});
    var frame = document.createElement('iframe');
    frame.src = 'https://challenges.cloudflare.com' + '%(frame)s'.replace('{ray}', ray);
    frame.style.cssText = 'width:300px;height:65px;border:none;display:block';
    root.appendChild(frame);
    window.addEventListener('message', function (event) {
      if (!event.data || event.data.source !== 'cloudflare-challenge' || event.source !== frame.contentWindow) return;
      input.value = event.data.token;
      var callback = window[element.getAttribute('data-callback')];
      if (callback) callback(event.data.token);
    });
  });
})();"""

SIGN_IN = """<!DOCTYPE html><html><head><title>Sign in</title>
<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script></head>
<body><form><h1>Sign in</h1><div class="cf-turnstile" data-sitekey="0x4AAAAAAADnPIDROrmt1Wwj"
data-callback="verified"></div></form><div id="content" data-state="locked">locked</div>
<script>function verified(token) {
  fetch('/turnstile/verify', {method: 'POST', body: token}).then(function (r) { return r.text(); })
    .then(function (text) {
      var content = document.getElementById('content');
      content.textContent = text;
      content.dataset.state = 'open';
    });
}</script></body></html>"""

DYNAMIC = """<!DOCTYPE html><html><head><title>Dynamic</title></head><body>
<script>setTimeout(function () { var d = document.createElement('div'); d.className = 'loaded';
d.textContent = 'loaded by JavaScript'; document.body.appendChild(d); }, 500);</script></body></html>"""


def _proof(nonce: str) -> int:
    """What the non-interactive challenge's script computes from its nonce."""
    proof = 0
    for char in nonce:
        proof = (proof * 31 + ord(char)) % 1000003
    return proof


def page(title: str, heading: str) -> str:
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{heading}</h1></body></html>"


class ChallengeSite:
    """The site and its challenge server (see the module's docstring), with what they saw."""

    def __init__(self) -> None:
        self.url = ""
        self.tls_port = 0
        self.clicks: list[dict] = []  # clicks on a widget's checkbox: trusted, x, y (in the iframe)
        self.cleared: list[str] = []  # names of challenge pages whose clearance cookie the site set
        self.challenged: list[str] = []  # names of challenge pages served (as a challenge)
        self._rays: dict[str, tuple[str, str, str]] = {}  # ray -> (page path, name, what clears it)
        self._tokens: set[str] = set()  # issued widget tokens, each good once
        self._stops: list = []

    @property
    def chromium_flags(self) -> str:
        """Chromium flags (SHOAL_CHROMIUM_FLAGS) that send the challenge hosts here."""
        rules = ", ".join(f"MAP {host} 127.0.0.1:{self.tls_port}" for host in CHALLENGE_HOSTS)
        return f"'--host-resolver-rules={rules}' --ignore-certificate-errors"

    def __enter__(self) -> "ChallengeSite":
        self.url, stop = serve_app(self._app())
        tls_url, tls_stop = serve_app(self._app(), ssl_context=self_signed(CHALLENGE_HOSTS))
        self.tls_port = int(tls_url.rsplit(":", 1)[1])
        self._stops = [stop, tls_stop]
        return self

    def __exit__(self, *exc: object) -> None:
        for stop in self._stops:
            stop()

    def _challenge(self, request: web.Request, ctype: str, name: str) -> web.Response:
        """The challenge for the page at ``request``, or the page itself once its cookie is there."""
        path = request.path
        if request.cookies.get("cf_clearance") == f"cleared-{name}":
            return web.Response(text=page(f"{name} content", f"Behind the {ctype} challenge"), content_type="text/html")
        self.challenged.append(name)
        ray, nonce = secrets.token_hex(8), secrets.token_hex(16)
        self._rays[ray] = (path, name, str(_proof(nonce)) if ctype == "non-interactive" else "token")
        values = {"ctype": ctype, "ray": ray, "nonce": nonce, "path": path}
        headers = {"cf-mitigated": "challenge", "server": "cloudflare", "cf-ray": f"{ray}-AMS"}
        return web.Response(text=INTERSTITIAL % values, status=403, content_type="text/html", headers=headers)

    def _app(self) -> web.Application:
        async def home(request: web.Request) -> web.Response:
            return web.Response(text=page("Home", "Home"), content_type="text/html")

        async def dynamic(request: web.Request) -> web.Response:
            return web.Response(text=DYNAMIC, content_type="text/html")

        async def interstitial(request: web.Request) -> web.Response:
            return self._challenge(request, "non-interactive", request.match_info["name"])

        async def managed(request: web.Request) -> web.Response:
            return self._challenge(request, "managed", request.match_info["name"])

        async def demo(request: web.Request) -> web.Response:
            return self._challenge(request, "managed", "nopecha")

        async def orchestrate(request: web.Request) -> web.Response:
            values = {"work_ms": int(WORK_S * 1000), "frame": FRAME_PATH.format(ray=request.query.get("ray", ""))}
            return web.Response(text=ORCHESTRATE % values, content_type="application/javascript")

        async def flow(request: web.Request) -> web.Response:
            """Clearance for a challenge page: the proof of its script, or a widget's token."""
            ray = request.match_info["ray"]
            if ray not in self._rays:
                raise web.HTTPForbidden()
            token = await request.text()
            path, name, expected = self._rays[ray]
            if token != expected and not (expected == "token" and token in self._tokens):
                raise web.HTTPForbidden()
            self._tokens.discard(token)
            del self._rays[ray]
            self.cleared.append(name)
            response = web.Response(text="ok")
            response.set_cookie("cf_clearance", f"cleared-{name}", path=path, httponly=True, max_age=1800)
            return response

        async def widget(request: web.Request) -> web.Response:
            return web.Response(text=WIDGET, content_type="text/html")

        async def click(request: web.Request) -> web.Response:
            """A click on a widget's checkbox: a token for a trusted one."""
            seen = json.loads(await request.text())
            self.clicks.append(seen)
            if not seen.get("trusted"):
                raise web.HTTPForbidden()
            token = secrets.token_urlsafe(24)
            self._tokens.add(token)
            return web.Response(text=token)

        async def turnstile_api(request: web.Request) -> web.Response:
            return web.Response(text=TURNSTILE_API % {"frame": FRAME_PATH}, content_type="application/javascript")

        async def sign_in(request: web.Request) -> web.Response:
            return web.Response(text=SIGN_IN, content_type="text/html")

        async def verify(request: web.Request) -> web.Response:
            token = await request.text()
            if token not in self._tokens:
                raise web.HTTPForbidden()
            self._tokens.discard(token)
            self.cleared.append("turnstile")
            return web.Response(text="Welcome back: the account page")

        app = web.Application()
        app.router.add_get("/", home)
        app.router.add_get("/dynamic-page", dynamic)
        app.router.add_get("/interstitial/{name}", interstitial)
        app.router.add_get("/managed/{name}", managed)
        app.router.add_get("/demo/cloudflare", demo)
        app.router.add_get("/turnstile/{name}", sign_in)
        app.router.add_post("/turnstile/verify", verify)
        app.router.add_get("/turnstile/v0/api.js", turnstile_api)
        app.router.add_get("/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1", orchestrate)
        app.router.add_post("/cdn-cgi/challenge-platform/h/b/flow/ov1/{ray}", flow)
        app.router.add_get("/cdn-cgi/challenge-platform/h/b/turnstile/if/{tail:.*}/", widget)
        app.router.add_post("/cdn-cgi/challenge-platform/h/b/turnstile/if/{tail:.*}/click", click)
        return app
