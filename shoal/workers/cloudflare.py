"""``solve_cloudflare``: getting a stealth page past Cloudflare's challenges, the way Scrapling does.

The challenge is recognised by its markup: an interstitial page ("Just a moment...") declares its
type in its options script (``cType: 'non-interactive'``, ``'managed'`` or ``'interactive'``); a
Turnstile widget embedded in an ordinary page loads Cloudflare's ``turnstile/v...`` script. Then:

- non-interactive: the page's JavaScript proves itself and reloads into the site; wait for that.
- managed / interactive: once the "Verifying you are human." spinner gives way to the widget, click
  its checkbox, 26-28 px right and 25-27 px down from the top-left corner of the widget's iframe (a
  real mouse click, at a slightly different spot each time), and wait for the page to reload.
- embedded: click the checkbox inside the widget's iframe; the page itself goes on from there.

A challenge still there afterwards is tried again, up to ``MAX_ATTEMPTS`` times; then the page is
returned as it is (and the spider's ``is_blocked`` sees it).
"""

import asyncio
import contextlib
import logging
import random
import re
import time
from typing import Any

import lxml.html

log = logging.getLogger("shoal.worker.cloudflare")

#: The challenge's own frame (the widget with the checkbox), wherever the page puts it.
CHALLENGE_FRAME = re.compile(r"^https?://challenges\.cloudflare\.com/cdn-cgi/challenge-platform/.*")
#: The script that renders an embedded Turnstile widget.
TURNSTILE_SCRIPT = "challenges.cloudflare.com/turnstile/v"
INTERSTITIAL_TYPES = ("non-interactive", "managed", "interactive")
#: Where an interstitial's widget is when its iframe cannot be measured.
WIDGET_BOX = ".main-content p+div>div>div"
MAX_ATTEMPTS = 3
#: How long to look for a challenge on a loaded page before deciding it has none.
DETECT_S = 5.0


def challenge_type(html: str) -> str | None:
    """The kind of Cloudflare challenge in ``html``: one of INTERSTITIAL_TYPES, "embedded", or None."""
    for kind in INTERSTITIAL_TYPES:
        if f"cType: '{kind}'" in html:
            return kind
    if TURNSTILE_SCRIPT in html:  # cheap test first, then the script tag itself
        try:
            tree = lxml.html.document_fromstring(html)
        except (ValueError, lxml.etree.ParserError):
            return None
        if tree.xpath("//script[contains(@src, $src)]", src=TURNSTILE_SCRIPT):
            return "embedded"
    return None


async def _html(page: Any) -> str:
    """The page's HTML; empty while it is navigating."""
    try:
        return await page.content()
    except Exception:  # "page is navigating and changing the content": ask again later
        return ""


async def _idle(page_or_frame: Any, timeout_ms: float) -> None:
    """Wait for the network to go quiet, or ``timeout_ms``, whichever comes first."""
    with contextlib.suppress(Exception):  # some pages never go quiet
        await page_or_frame.wait_for_load_state("networkidle", timeout=timeout_ms)


async def _until_cleared(page: Any, kind: str, seconds: float) -> bool:
    """Wait up to ``seconds`` for the interstitial ``kind`` to leave; whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if challenge_type(await _html(page)) != kind:
            return True
        await asyncio.sleep(0.25)
    return challenge_type(await _html(page)) != kind


async def _detect(page: Any) -> str | None:
    """The challenge on the loaded page, looking for up to DETECT_S seconds (an embedded widget counts
    once its iframe is there)."""
    deadline = time.monotonic() + DETECT_S
    while True:
        kind = challenge_type(await _html(page))
        if kind and (kind != "embedded" or page.frame(url=CHALLENGE_FRAME) is not None):
            return kind
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.1)


async def _widget_frame(page: Any, seconds: float) -> Any:
    """The challenge's iframe once it is there and visible, or None after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = page.frame(url=CHALLENGE_FRAME)
        if frame is not None:
            try:
                if await (await frame.frame_element()).is_visible():
                    return frame
            except Exception:  # detached while we looked
                pass
        await asyncio.sleep(0.25)
    return None


async def _click_widget(page: Any) -> bool:
    """Click the interstitial's checkbox where a person would; False when there is no widget to click."""
    frame = await _widget_frame(page, 10)
    box = None
    if frame is not None:
        await _idle(frame, 5000)
        box = await (await frame.frame_element()).bounding_box()
    if box is None:
        widget = page.locator(WIDGET_BOX).last
        box = await widget.bounding_box() if await widget.count() else None
    if box is None:
        return False
    x, y = box["x"] + random.randint(26, 28), box["y"] + random.randint(25, 27)
    await page.mouse.click(x, y, delay=random.randint(100, 200))
    return True


async def _click_embedded(page: Any) -> None:
    """Tick the embedded widget's checkbox, inside its iframe."""
    frame = page.frame(url=CHALLENGE_FRAME)
    if frame is None:
        return
    await frame.wait_for_load_state("load")
    try:
        await frame.locator('input[type="checkbox"]').click(timeout=10_000, delay=random.randint(100, 200))
    except Exception as e:
        log.info("could not tick the Turnstile checkbox: %s", str(e).splitlines()[0])
        return
    await _idle(page, 5000)


async def solve(page: Any) -> bool:
    """Solve the Cloudflare challenge on ``page``, if it has one; whether the page is free of it."""
    kind = await _detect(page)
    if kind is None:
        log.info("no Cloudflare challenge on %s", page.url)
        return True
    for attempt in range(1, MAX_ATTEMPTS + 1):
        log.info("solving a %s Cloudflare challenge on %s (attempt %d)", kind, page.url, attempt)
        if kind == "embedded":
            await _click_embedded(page)
            return True
        if kind == "non-interactive":
            cleared = await _until_cleared(page, kind, 10)
        else:
            cleared = await _click_widget(page) and await _until_cleared(page, kind, 10)
        if cleared:
            await page.wait_for_load_state("load")
            kind = challenge_type(await _html(page))
            if kind is None:
                return True
    log.warning("the Cloudflare challenge on %s is still there after %d attempts", page.url, MAX_ATTEMPTS)
    return False
