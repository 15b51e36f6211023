"""Benchmark: browser crawls (every page rendered by Chromium) with shoal's browser worker, against Scrapling.

    uv run --extra browser --group bench python bench/browsers.py [--pages 2000] [--tabs 4] [--kinds dynamic,stealth]

Serves the demo shop from a local server with as many products as make about ``--pages`` pages (listings
included), and for each session kind crawls it in a child process with every page fetched by that browser
session: shoal in local mode with one browser worker holding ``--tabs`` tabs, then Scrapling's spider with
its session of that kind (``max_pages`` = tabs). The process tree is sampled every 0.1 s. Prints pages/s,
peak memory of the browser side (shoal: the ``shoal worker`` process and its Chromium; Scrapling: its one
process and its Chromium) and of all processes, as PSS (proportional set size: pages that Chromium's
processes share are counted once), and how flat the browser side's memory stays: the median PSS over
the second 10% of the crawl (by the site's request log) against the last 10%.
Exits non-zero if a crawl did not find exactly one item per product.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil
from run import CALLBACKS  # bench/ is this script's directory, so on its path

from shoal.demo.site import RunningSite, ShopSite, start_site
from shoal.workers.chromium import find_chromium

RUNNER = """
import json, sys, time
from {tool}.spiders import Spider
from {tool}.fetchers import {session}

class BenchSpider(Spider):
    name = "bench"
    start_urls = [sys.argv[1] + "/products"]
    concurrent_requests = {concurrency}
    logging_level = 40

    def configure_sessions(self, manager):
        manager.add("browser", {session}({session_args}))

{callbacks}
started = time.perf_counter()
result = BenchSpider().start({start_args})
elapsed = time.perf_counter() - started
names = {{item["name"] for item in result.items}}
print(json.dumps({{"pages": result.stats.requests_count, "items": len(result.items), "unique": len(names),
                  "elapsed": elapsed}}))
"""

SHOAL_SESSION = {"dynamic": "AsyncDynamicSession", "stealth": "AsyncStealthySession"}
LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


@dataclass
class Crawl:
    """One measured crawl: the child's report, PSS samples (time, browser side, all processes), its log."""

    tool: str
    session: str
    report: dict = field(default_factory=dict)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # when the site served the crawl's first and last page
    problems: list[str] = field(default_factory=list)  # warning and error lines of the child's stderr
    failure: str = ""  # why the crawl produced no report

    @property
    def browser_peak_mb(self) -> float:
        return max((browser for _, browser, _ in self.samples), default=0) / 2**20

    @property
    def total_peak_mb(self) -> float:
        return max((total for _, _, total in self.samples), default=0) / 2**20

    @property
    def pages_per_s(self) -> float:
        return self.report["pages"] / self.report["elapsed"]

    def flatness(self) -> tuple[float, float]:
        """Median browser-side PSS (MB) over the second 10% and over the last 10% of the crawl's window."""
        start, end = self.window

        def median(low: float, high: float) -> float:
            span = end - start
            window = [browser for t, browser, _ in self.samples if start + low * span <= t <= start + high * span]
            return statistics.median(window) / 2**20 if window else float("nan")

        return median(0.1, 0.2), median(0.9, 1.0)


def browser_side(child: psutil.Process, tool: str) -> list[psutil.Process]:
    """The processes that fetch: shoal's ``shoal worker`` with its descendants; all of Scrapling's."""
    if tool == "scrapling":
        return [child, *child.children(recursive=True)]
    for process in child.children():
        if "worker" in process.cmdline():
            return [process, *process.children(recursive=True)]
    return []


def measure(running: RunningSite, tool: str, session: str, session_args: str, tabs: int) -> Crawl:
    """Run one crawl in a child process, sampling the PSS of its process tree and of its browser side."""
    crawl = Crawl(tool, session)
    code = RUNNER.format(
        tool=tool,
        session=session,
        session_args=session_args,
        start_args=f"capacity={tabs}" if tool == "shoal" else "",
        concurrency=tabs + 2,  # a job ready for each tab as it frees up
        callbacks=CALLBACKS.format(),  # the template with its braces unescaped
    )
    seen = len(running.log)
    with tempfile.TemporaryFile("w+") as stderr:
        child = psutil.Popen([sys.executable, "-c", code, running.url], stdout=subprocess.PIPE, stderr=stderr)
        while child.poll() is None:
            try:
                tree = [child, *child.children(recursive=True)]
                rss = {process.pid: process.memory_full_info().pss for process in tree}
                browser = sum(rss.get(process.pid, 0) for process in browser_side(child, tool))
                crawl.samples.append((time.time(), browser, sum(rss.values())))
            except psutil.Error:
                pass
            time.sleep(0.1)
        stderr.seek(0)
        lines = stderr.read().splitlines()
    served = running.log[seen:]
    crawl.window = (served[0][0], served[-1][0]) if served else (0.0, 0.0)
    crawl.problems = [line for line in lines if LOG_PROBLEM.search(line)]
    output = child.stdout.read().decode().strip().splitlines()
    try:
        crawl.report = json.loads(output[-1])
    except (IndexError, ValueError):
        crawl.failure = f"exit code {child.returncode}: " + " | ".join(lines[-3:] or output[-3:] or ["no output"])
    return crawl


def table(title: str, crawls: list[Crawl], expected: int) -> bool:
    """Print one kind's figures, a column per tool; return whether every crawl found the right items."""
    ok = {c.tool: c.report["items"] == expected and c.report["unique"] == expected for c in crawls}
    flat = [c.flatness() for c in crawls]
    rows: list[tuple[str, list[str]]] = [
        ("session", [c.session for c in crawls]),
        ("pages", [str(c.report["pages"]) for c in crawls]),
        ("items", [f"{c.report['items']}/{expected} {'OK' if ok[c.tool] else 'WRONG'}" for c in crawls]),
        ("elapsed s", [f"{c.report['elapsed']:.1f}" for c in crawls]),
        ("pages/s", [f"{c.pages_per_s:.1f}" for c in crawls]),
        ("browser side peak PSS MB", [f"{c.browser_peak_mb:.0f}" for c in crawls]),
        ("all processes peak PSS MB", [f"{c.total_peak_mb:.0f}" for c in crawls]),
        ("PSS 10-20% of crawl MB", [f"{early:.0f}" for early, _ in flat]),
        ("PSS 90-100% of crawl MB", [f"{late:.0f}" for _, late in flat]),
        ("PSS growth MB (%)", [f"{late - early:+.0f} ({(late - early) / early:+.1%})" for early, late in flat]),
        ("warning/error log lines", [str(len(c.problems)) for c in crawls]),
    ]
    header = [c.tool for c in crawls]
    by_tool = {c.tool: c for c in crawls}
    if {"shoal", "scrapling"} <= by_tool.keys():
        shoal, scrapling = by_tool["shoal"], by_tool["scrapling"]
        ratios = {
            "pages/s": shoal.pages_per_s / scrapling.pages_per_s,
            "browser side peak PSS MB": shoal.browser_peak_mb / scrapling.browser_peak_mb,
            "all processes peak PSS MB": shoal.total_peak_mb / scrapling.total_peak_mb,
        }
        rows = [(name, [*cells, f"{ratios[name]:.2f}x" if name in ratios else ""]) for name, cells in rows]
        header.append("shoal/scrapling")
    print(f"\n{title}")
    print(f"  {'':<27}" + "".join(f"{name:>24}" for name in header))
    for name, cells in rows:
        print(f"  {name:<27}" + "".join(f"{cell:>24}" for cell in cells))
    for c in crawls:
        for line in list(dict.fromkeys(c.problems))[:5]:
            print(f"  {c.tool} logged: {line[:200]}")
    return all(ok.values())


def scrapling_sessions() -> tuple[str, set[str]]:
    """Scrapling's version and the session classes ``scrapling.fetchers`` offers (none if not installed)."""
    try:
        import scrapling
        import scrapling.fetchers
    except ImportError as e:
        print(f"Scrapling comparison skipped: scrapling cannot be imported ({e}); run with --group bench")
        return "", set()
    return scrapling.__version__, {name for name in dir(scrapling.fetchers) if name.endswith("Session")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages per crawl, listing pages included")
    parser.add_argument("--tabs", type=int, default=4, help="tabs of the one browser worker (Scrapling: max_pages)")
    parser.add_argument("--kinds", default="dynamic,stealth")
    parser.add_argument("--tools", default="shoal,scrapling")
    args = parser.parse_args()
    site = ShopSite(products=max(1, args.pages * 20 // 21))  # 20 products to a listing page
    expected = len(site.expected_items())
    chromium = find_chromium()
    tools = args.tools.split(",")
    version, offered = scrapling_sessions() if "scrapling" in tools else ("", set())
    print(
        f"{site.products} products + {site.pages} listing pages, every one fetched by the browser session; "
        f"{args.tabs} tabs, concurrent_requests {args.tabs + 2}; Chromium {chromium}"
    )
    all_ok = True
    scrapling_runs: dict[str, Crawl] = {}  # by session class: one crawl serves every kind that uses it
    with start_site(site) as running:
        for kind in args.kinds.split(","):
            crawls = []
            if "shoal" in tools:
                crawl = measure(running, "shoal", SHOAL_SESSION[kind], "headless=True", args.tabs)
                if crawl.failure:
                    sys.exit(f"shoal's {kind} crawl failed: {crawl.failure}")
                crawls.append(crawl)
            if offered:
                session = SHOAL_SESSION[kind] if SHOAL_SESSION[kind] in offered else "AsyncStealthySession"
                if session != SHOAL_SESSION[kind]:
                    print(f"Scrapling {version} has no {SHOAL_SESSION[kind]}; comparing with its {session}")
                if session not in scrapling_runs:
                    session_args = f"headless=True, max_pages={args.tabs}, executable_path={chromium!r}"
                    scrapling_runs[session] = measure(running, "scrapling", session, session_args, args.tabs)
                crawl = scrapling_runs[session]
                if crawl.failure:
                    print(f"Scrapling comparison skipped: its {session} crawl failed ({crawl.failure})")
                else:
                    crawls.append(crawl)
            all_ok &= table(f"{kind}: {site.products + site.pages} browser pages", crawls, expected)
    if not all_ok:
        sys.exit(f"a crawl did not find exactly the {expected} items")


if __name__ == "__main__":
    main()
