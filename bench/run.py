"""Benchmark: shoal's local mode against Scrapling's Spider on the same generated shop, same run.

    uv run --group bench python bench/run.py [--products 10000] [--concurrency 64]

Serves a shop (listing pages of 20 products; product pages of 15-30 KB, each linking 3 related
products) from a local server in its own process, crawls it with each tool in its own process, checks that each found
exactly one item per product, and prints pages/s, CPU seconds and peak RSS (all processes of the
tool: for shoal the coordinator, its workers and its private Redis) and the ratios.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from shoal.demo.site import ShopSite

#: The shop spider's callbacks, as a str.format template (bench/browsers.py uses them too).
CALLBACKS = """
    async def parse(self, response):
        for link in response.css("a.product::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page)

    async def parse_product(self, response):
        for link in response.css("a.related::attr(href)").getall():
            yield response.follow(link, callback=self.parse_product)
        yield {{"name": response.css("h1::text").get(""), "price": response.css(".price::text").get("")}}
"""

SPIDER_BODY = (
    """
    name = "bench"
    concurrent_requests = {concurrency}
    logging_level = 40
"""
    + CALLBACKS
)

CRAWLER = {
    "shoal": "from shoal.spiders import Spider",
    "scrapling": "from scrapling.spiders import Spider",
}

RUNNER = """
import json, sys, time
{import_line}

class BenchSpider(Spider):
    start_urls = [sys.argv[1] + "/products"]
{body}

started = time.perf_counter()
result = BenchSpider().start()
elapsed = time.perf_counter() - started
names = {{item["name"] for item in result.items}}
print(json.dumps({{"pages": result.stats.requests_count, "items": len(result.items), "unique": len(names),
                  "elapsed": elapsed}}))
"""


def _role(process: psutil.Process, child: psutil.Process) -> str:
    """What a process of a measured tree is: the crawl's own process, a worker, redis-server, a browser."""
    if process.pid == child.pid:
        return "crawl process"
    command = " ".join(process.cmdline())
    return next((role for role in ("worker", "redis-server", "chrom") if role in command), process.name())


def measure(tool: str, url: str, concurrency: int) -> dict:
    """Run one tool's crawl in a child process; sample CPU and RSS of its whole process tree."""
    code = RUNNER.format(import_line=CRAWLER[tool], body=SPIDER_BODY.format(concurrency=concurrency))
    child = psutil.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak_rss, cpu, roles = 0, {}, {}
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
            rss = 0
            for process in tree:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system  # a reaped child's CPU is in its own last sample
                    roles.setdefault(process.pid, _role(process, child))
                    rss += process.memory_info().rss
            peak_rss = max(peak_rss, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    report = json.loads(child.stdout.read().decode().strip().splitlines()[-1])
    report.update(cpu_s=sum(cpu.values()), peak_rss_mb=peak_rss / 2**20)
    report["cpu_s_by_process"] = by_role = {}
    for pid, seconds in cpu.items():
        by_role[roles[pid]] = round(by_role.get(roles[pid], 0) + seconds, 2)
    report["pages_per_s"] = report["pages"] / report["elapsed"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tools", default="scrapling,shoal")
    args = parser.parse_args()
    expected = len(ShopSite(products=args.products).expected_items())
    results = {}
    server = [sys.executable, "-m", "shoal.demo", "--port", "0", "--products", str(args.products)]
    with subprocess.Popen(server, stdout=subprocess.PIPE, text=True) as site:  # its own process and core time
        url = json.loads(site.stdout.readline())["url"]
        for tool in args.tools.split(","):
            results[tool] = report = measure(tool, url, args.concurrency)
            ok = report["items"] == expected and report["unique"] == expected
            print(
                f"{tool:>10}: {report['pages']} pages in {report['elapsed']:.1f} s"
                f" = {report['pages_per_s']:.0f} pages/s, CPU {report['cpu_s']:.1f} s,"
                f" peak RSS {report['peak_rss_mb']:.0f} MB,"
                f" items {report['items']}/{expected} {'OK' if ok else 'WRONG'}"
                f"  (CPU s by process: {report['cpu_s_by_process']})"
            )
            if not ok:
                site.terminate()
                sys.exit(f"{tool} did not find exactly the {expected} items")
        site.terminate()
    if {"shoal", "scrapling"} <= results.keys():
        shoal, scrapling = results["shoal"], results["scrapling"]
        print(
            f"shoal / scrapling: {shoal['pages_per_s'] / scrapling['pages_per_s']:.2f}x pages/s, "
            f"{shoal['cpu_s'] / scrapling['cpu_s']:.2f}x CPU, "
            f"{shoal['peak_rss_mb'] / scrapling['peak_rss_mb']:.2f}x RSS"
        )
    Path("bench/last-run.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
