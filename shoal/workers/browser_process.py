"""The browsers of a browser worker: Chromium launched (and relaunched) per launch configuration, and its memory.

A worker process owns one Chromium per launch configuration, or a connection to the browser a
session's ``cdp_url`` names; a session with a profile has a browser of its own on that profile.
"""

import asyncio
import logging
import os
import shlex
import time
from pathlib import Path
from typing import Any

from shoal.workers.chromium import find_chrome, find_chromium
from shoal.workers.memory import tree_memory

log = logging.getLogger("shoal.worker.browser")

#: Memory (bytes, the worker with its browser processes) above which contexts are recycled early.
MAX_RSS = int(os.environ.get("SHOAL_BROWSER_MAX_RSS_MB", "1536")) * 2**20
#: Flags for every browser: quiet, fast, nothing phoning home (this machine reaches no network).
BASE_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-dev-shm-usage",  # shared memory in /tmp: a container's 64 MB /dev/shm is enough (bench/dev_shm.py)
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
)
#: Stealth: WebGL through Mesa (ANGLE on GL/EGL), not the SwiftShader software renderer that marks headless.
STEALTH_FLAGS = ("--use-gl=angle", "--use-angle=gl-egl", "--ignore-gpu-blocklist", "--window-size=1920,1080")
SCREEN = {"width": 1920, "height": 1080}
#: Flags the operator adds to every browser this worker launches (shell syntax), e.g. host resolver rules
#: in a closed network.
FLAGS_ENV = "SHOAL_CHROMIUM_FLAGS"


class BrowserProcess:
    """The browsers of one worker: launched (or connected to) per launch configuration on first use."""

    def __init__(self, kind: str, max_rss: int = MAX_RSS) -> None:
        self.kind = kind
        self.max_rss = max_rss
        self._driver: Any = None
        self._browsers: dict[tuple, Any] = {}
        self._agents: dict[str, str] = {}  # executable -> the user agent its headful self sends
        self._lock = asyncio.Lock()
        self._rss_checked = 0.0
        self._over = False

    def over_memory(self) -> bool:
        """Whether this worker and its browsers use more than ``max_rss`` bytes of proportional set size
        (shared pages counted once across the processes; checked every 5 s)."""
        if time.monotonic() - self._rss_checked > 5:
            self._rss_checked = time.monotonic()
            rss = tree_memory()
            self._over = rss > self.max_rss
            if self._over:
                log.warning("browser worker uses %d MB; recycling contexts", rss // 2**20)
        return self._over

    @property
    def browsers(self) -> list[Any]:
        """The browsers held now: one per launch configuration (or ``cdp_url``) used so far."""
        return list(self._browsers.values())

    async def _start_driver(self) -> Any:
        if self._driver is None:
            module = "patchright" if self.kind == "stealth" else "playwright"
            api = __import__(f"{module}.async_api", fromlist=["async_playwright"])
            self._driver = await api.async_playwright().start()
        return self._driver

    async def _launch_options(self, config: dict[str, Any]) -> dict[str, Any]:
        """How to launch a browser for ``config``: which executable, headless or not, with which flags."""
        executable = find_chrome() if config["real_chrome"] else find_chromium(config.get("executable_path"))
        flags = list(BASE_FLAGS) + shlex.split(os.environ.get(FLAGS_ENV, "")) + list(config.get("extra_flags") or [])
        if self.kind == "stealth":
            flags += STEALTH_FLAGS
            if config["block_webrtc"]:
                flags += ["--webrtc-ip-handling-policy=disable_non_proxied_udp", "--force-webrtc-ip-handling-policy"]
            if not config["allow_webgl"]:
                flags += ["--disable-webgl", "--disable-webgl2"]
            if config["hide_canvas"]:
                flags.append("--fingerprinting-canvas-image-data-noise")
        if config.get("locale"):
            flags += [f"--lang={config['locale']}", f"--accept-lang={config['locale']}"]
        if self.kind == "stealth":
            flags.append(f"--user-agent={await self._real_user_agent(executable)}")
        return {
            "executable_path": executable,
            "headless": config["headless"],
            "args": flags,
            "ignore_default_args": ["--enable-automation"],
            "chromium_sandbox": False,
        }

    async def browser(self, config: dict[str, Any]) -> Any:
        """A running browser for ``config``: the one its ``cdp_url`` names, else one launched with its launch
        options (relaunched if it died)."""
        async with self._lock:
            driver = await self._start_driver()
            if cdp_url := config.get("cdp_url"):
                key: tuple = ("cdp", cdp_url)
                launch: dict[str, Any] = {}
            else:
                launch = await self._launch_options(config)
                key = (launch["executable_path"], bool(launch["headless"]), tuple(launch["args"]))
            browser = self._browsers.get(key)
            if browser is None or not browser.is_connected():
                if cdp_url:
                    browser = await driver.chromium.connect_over_cdp(cdp_url)
                    log.info("connected to %s browser %s at %s", self.kind, browser.version, cdp_url)
                else:
                    browser = await driver.chromium.launch(**launch)
                    log.info("launched %s Chromium %s (%s)", self.kind, browser.version, launch["executable_path"])
                self._browsers[key] = browser
        return browser

    async def persistent(self, config: dict[str, Any], profile: Path, options: dict[str, Any]) -> Any:
        """A browser of its own on ``profile``, launched with ``config``'s launch options: its one context,
        made with the context ``options``."""
        async with self._lock:
            driver = await self._start_driver()
            launch = await self._launch_options(config)
        context = await driver.chromium.launch_persistent_context(str(profile), **launch, **options)
        log.info("launched %s Chromium on profile %s (%s)", self.kind, profile, launch["executable_path"])
        return context

    async def _real_user_agent(self, executable: str) -> str:
        """The user agent a headful Chromium of this version sends: no "HeadlessChrome" anywhere."""
        if executable not in self._agents:
            probe = await self._driver.chromium.launch(executable_path=executable, headless=True)
            try:
                page = await probe.new_page()
                self._agents[executable] = (await page.evaluate("navigator.userAgent")).replace(
                    "HeadlessChrome", "Chrome"
                )
            finally:
                await probe.close()
        return self._agents[executable]

    async def close(self) -> None:
        """Close the browsers this worker launched, and leave those it connected to (over CDP) running."""
        for browser in self._browsers.values():
            if browser.is_connected():
                await browser.close()
        self._browsers.clear()
        if self._driver is not None:
            await self._driver.stop()
            self._driver = None


async def remote_user_agent(browser: Any) -> str:
    """The user agent of a browser reached over CDP, as its headful self would send it."""
    cdp = await browser.new_browser_cdp_session()
    try:
        version = await cdp.send("Browser.getVersion")
    finally:
        await cdp.detach()
    return version["userAgent"].replace("HeadlessChrome", "Chrome")
