"""Chromium's shared memory in a container: /dev/shm, or --disable-dev-shm-usage (files in /tmp instead)?

Loads a heavy page (big canvases drawn in 2D and WebGL, a long DOM) in 4 tabs of a browser launched
with the stealth worker's flags, with and without --disable-dev-shm-usage, and prints pages/s and
crashed tabs for each. Run it inside the browser image, once per /dev/shm size:

    docker run --rm --shm-size 64m -v "$PWD/bench:/bench:ro" --entrypoint python shoal-browser /bench/dev_shm.py
    docker run --rm --shm-size 1g  -v "$PWD/bench:/bench:ro" --entrypoint python shoal-browser /bench/dev_shm.py
"""

import argparse
import asyncio
import http.server
import json
import shutil
import threading
import time

from patchright.async_api import async_playwright

from shoal.workers.browser_process import BASE_FLAGS, SCREEN, STEALTH_FLAGS
from shoal.workers.chromium import find_chromium

DEV_SHM_FLAG = "--disable-dev-shm-usage"

PAGE = """<!doctype html><html><head><title>heavy</title></head><body>
%(canvases)s
<div>%(text)s</div>
<script>
for (const canvas of document.querySelectorAll("canvas.flat")) {
  const ctx = canvas.getContext("2d");
  for (let i = 0; i < 200; i++) {
    const g = ctx.createLinearGradient(0, 0, canvas.width, canvas.height);
    g.addColorStop(0, `hsl(${i %% 360},80%%,50%%)`); g.addColorStop(1, `hsl(${(i * 7) %% 360},60%%,40%%)`);
    ctx.fillStyle = g;
    ctx.fillRect((i * 97) %% canvas.width, (i * 193) %% canvas.height, 300, 300);
  }
}
for (const canvas of document.querySelectorAll("canvas.gl")) {
  const gl = canvas.getContext("webgl");
  if (gl) { gl.clearColor(Math.random(), 0.5, 0.2, 1); gl.clear(gl.COLOR_BUFFER_BIT); }
}
document.title = "drawn";
</script></body></html>"""


def heavy_page() -> bytes:
    canvases = "".join('<canvas class="flat" width="1024" height="1024"></canvas>' for _ in range(4))
    canvases += "".join('<canvas class="gl" width="2048" height="2048"></canvas>' for _ in range(2))
    text = "".join(f"<p>paragraph {n} " + "lorem ipsum dolor sit amet " * 20 + "</p>" for n in range(1000))
    return (PAGE % {"canvases": canvases, "text": text}).encode()


def serve(body: bytes) -> str:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


async def measure(url: str, flags: list[str], pages: int, tabs: int) -> dict:
    crashed = failed = done = 0
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=find_chromium(), headless=True, args=flags, chromium_sandbox=False
        )
        context = await browser.new_context(viewport=SCREEN)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(pages):
            queue.put_nowait(n)

        async def tab() -> None:
            nonlocal crashed, failed, done
            page = await context.new_page()
            while not queue.empty():
                queue.get_nowait()
                try:
                    await page.goto(url, wait_until="load", timeout=60_000)
                    await page.wait_for_function("document.title === 'drawn'", timeout=60_000)
                    await page.content()
                    done += 1
                except Exception as error:  # a crashed tab is replaced, and counted
                    if "crash" in str(error).lower():
                        crashed += 1
                    else:
                        failed += 1
                        print(f"failed: {str(error).splitlines()[0]}", flush=True)
                    await page.close()
                    page = await context.new_page()

        started = time.monotonic()
        await asyncio.gather(*(tab() for _ in range(tabs)))
        elapsed = time.monotonic() - started
        await browser.close()
    return {"pages": done, "crashed": crashed, "failed": failed, "pages_per_s": round(done / elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--tabs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in turn")
    args = parser.parse_args()
    url = serve(heavy_page())
    shm = shutil.disk_usage("/dev/shm").total // 2**20
    stealth = [*BASE_FLAGS, *STEALTH_FLAGS]
    variants = (
        (DEV_SHM_FLAG, stealth if DEV_SHM_FLAG in stealth else [*stealth, DEV_SHM_FLAG]),
        ("/dev/shm", [flag for flag in stealth if flag != DEV_SHM_FLAG]),
    )
    for n in range(args.rounds):
        for name, flags in variants[:: 1 if n % 2 == 0 else -1]:  # ABBA: the load's drift cancels out
            result = asyncio.run(measure(url, flags, args.pages, args.tabs))
            print(json.dumps({"dev_shm_mb": shm, "shared_memory": name, **result}), flush=True)


if __name__ == "__main__":
    main()
