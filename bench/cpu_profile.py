"""Where shoal's CPU goes per page: py-spy samples of the coordinator and the worker, and Redis's command times.

    uv run --group bench python bench/cpu_profile.py [--products 10000] [--rate 250] [--top 12] [--keep FILE]

Crawls the demo shop (10,000 products: 10,500 pages) with bench/crawl.py's shoal contender under
``py-spy record --subprocesses --native`` (the coordinator is the crawl process; the worker its child), on a
redis-server this script starts (the first on PATH, as shoal's local mode picks) with every command
logged in its slow log, read and emptied every 0.2 s. Prints, for the coordinator and the worker, the CPU
per page of each area (HTML parsing, selectors, fingerprinting, URL work, msgpack, redis-py, the event loop
...) with the shoal functions it is spent under, and the shoal functions with the most CPU below them;
then Redis's time per command (Lua scripts apart, by their first key) against its process's CPU.

A sample's area is that of its innermost frame that has one: C frames count as their Python caller's
(lxml's parsing is ``Selector.__init__``'s), except system calls (socket I/O), the garbage collector, and the
event loop's wait (idle, left out). CPU per page: an area's share of the process's busy samples, times the
process's CPU over the crawl proper (bench/crawl.py's window), over the pages. Imports are left out of the
shares (they happen before the crawl). py-spy pauses each process briefly at every sample: the crawl is
slower than without it, and the shares are what matters.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import redis
from run import redis_server, serve  # bench/ is this script's directory, so on its path

CRAWL = Path(__file__).with_name("crawl.py")
#: A Python frame, "function (file.py:line)"; the others are C functions of a library.
PYTHON_FRAME = re.compile(r"\((<[^>]+>|[^()]+\.py):\d+\)$")
IDLE = ("epoll_wait", "epoll_pwait", "select (", "poll (")
SYSCALLS = ("read (", "readv (", "recv (", "recvfrom (", "recvmsg (", "write (", "writev (", "send (", "sendto (")
#: (area, what a frame's "function (file:line)" contains), the first match of the innermost frame wins.
AREAS = [
    ("imports (process start)", ("<frozen importlib",)),
    ("HTML parsing (lxml: building and freeing the tree)", ("Selector.__init__ (scrapling/parser.py", "lxml/html")),
    ("Response building (Scrapling Response.__init__, encoding)", ("scrapling/engines/toolbelt/", "w3lib/encoding")),
    ("selectors (css -> xpath, xpath, text)", ("scrapling/", "cssselect", "lxml/")),
    ("URL work (urljoin, urlparse, w3lib)", ("urllib/parse", "w3lib/")),
    ("msgpack/JSON encode, decode (msgspec)", ("shoal/common/messages.py", "msgspec")),
    ("redis-py: command packing", ("redis/_parsers/encoders", "pack_command")),
    ("redis-py: reply parsing", ("redis/_parsers",)),
    ("redis-py: client, scripts, pipelines", ("redis/",)),
    ("curl_cffi: the fetch", ("curl_cffi/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/",)),
    ("request argument checks", ("shoal/common/sessions.py",)),
    ("request records (to_job, from_record)", ("shoal/coordinator/records.py", "shoal/common/meta.py")),
    (
        "queue: script arguments, frontier entries",
        ("shoal/coordinator/queues.py", "shoal/coordinator/frontier.py", "shoal/workers/jobs.py"),
    ),
    ("stats counting", ("shoal/coordinator/stats.py",)),
    ("Request/Response objects (follow, Request())", ("shoal/common/request.py", "shoal/common/response.py")),
    ("spider callbacks (the user's code)", ("crawl.py", "(<string>")),
    ("shoal: coordinator engine, other", ("shoal/coordinator/", "shoal/local/", "shoal/spiders/")),
    ("shoal: worker loop, HttpSession", ("shoal/workers/",)),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop", "Runner.run")),
]
#: Functions whose whole time is one area, whatever they call.
CONTAINERS = [("fingerprinting (Request.update_fingerprint)", "Request.update_fingerprint")]


def area(frames: list[str]) -> str:
    """The area a sample's stack (outermost frame first) belongs to."""
    leaf = frames[-1]
    if leaf.startswith(IDLE):
        return "idle"
    if any("<frozen importlib" in frame for frame in frames):
        return AREAS[0][0]
    if leaf.startswith(("gc_collect", "gc_collect_main")):
        return "garbage collector"
    if leaf.startswith(SYSCALLS):
        return "system calls: socket I/O"
    if any(frame.startswith("xmlFree") for frame in frames[-4:]):  # the parsed document freed, deep in a dealloc
        return AREAS[1][0]
    for name, marker in CONTAINERS:
        if any(marker in frame for frame in frames):
            return name
    for frame in reversed([frame for frame in frames if PYTHON_FRAME.search(frame)]):
        for name, markers in AREAS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def shoal_frames(frames: list[str]) -> list[str]:
    """The stack's frames in shoal's own code, as "function (file)", innermost last."""
    found = []
    for frame in frames:
        if "(shoal/" in frame:
            function, _, where = frame.partition(" (")
            found.append(f"{function} ({where.split(':')[0]})")
    return found


def read_profile(path: Path) -> dict[str, dict[str, Any]]:
    """py-spy's raw output, by process (coordinator, worker): samples by area, the innermost shoal function of
    each area's samples, and samples under each shoal function."""
    processes: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # Each stack starts with its process: the crawl process (the coordinator), then a child's when in one.
        children = [frame for frame in frames[1:] if frame.startswith("process ")]
        process = "worker" if children and " worker " in children[0] else "" if children else "coordinator"
        if not process:
            continue
        frames = frames[1 + len(children) :]
        found = processes.setdefault(
            process,
            {"areas": collections.Counter(), "where": collections.defaultdict(collections.Counter),
             "under": collections.Counter()},
        )  # fmt: skip
        name, n = area(frames), int(count)
        found["areas"][name] += n
        if name in ("idle", "imports (process start)"):
            continue
        mine = shoal_frames(frames)
        found["where"][name][mine[-1] if mine else "-"] += n
        for function in set(mine):
            found["under"][function] += n
    return processes


class SlowLog:
    """Every command Redis ran, from its slow log (threshold 0), read and emptied every 0.2 s: calls and
    microseconds by command (Lua scripts by the suffix of their first key)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.calls: collections.Counter = collections.Counter()
        self.usec: collections.Counter = collections.Counter()
        self.lost = 0
        self._reads = 0
        self._last_id = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlowLog":
        self.client.config_set("slowlog-log-slower-than", 0)
        self.client.config_set("slowlog-max-len", 100_000)
        self.client.slowlog_reset()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
        self.lost = max(self.lost - self._reads, 0)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._read()

    def _read(self) -> None:
        with self.client.pipeline(transaction=True) as pipe:  # nothing logged between the two is lost
            pipe.execute_command("SLOWLOG", "GET", 100_000)
            pipe.slowlog_reset()
            entries, _ = pipe.execute()
        self._reads += 1  # the SLOWLOG GET of each read is logged, then emptied with the rest
        for entry in reversed(entries):
            entry_id, usec, args, client = entry[0], entry[2], entry[3], entry[4]
            if self._last_id >= 0 and entry_id > self._last_id + 1:
                self.lost += entry_id - self._last_id - 1
            self._last_id = entry_id
            if client in (b"?:0", b""):  # a command a Lua script called: its time is the script's
                continue
            words = [arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg) for arg in args]
            name = words[0].upper()
            if name in ("SLOWLOG", "CONFIG", "INFO"):
                continue
            if name in ("EVALSHA", "EVAL") and len(words) > 3:
                name = f"{name} {words[3].split('}')[-1]}"
            self.calls[name] += 1
            self.usec[name] += usec


def print_process(name: str, found: dict[str, Any], cpu_s: float, pages: int, top: int) -> dict[str, float]:
    busy = sum(n for area_, n in found["areas"].items() if area_ not in ("idle", "imports (process start)"))
    per_page = 1000 * cpu_s / pages
    print(f"\n{name}: {per_page:.3f} ms CPU per page over the crawl proper ({busy} busy samples)")
    print(f"  {'ms/page':>7} {'share':>6}  area: where in shoal (innermost shoal function, share of the area)")
    shares = {}
    for area_, n in found["areas"].most_common():
        if area_ in ("idle", "imports (process start)"):
            continue
        where = found["where"][area_]
        places = ", ".join(f"{function} {100 * k / n:.0f}%" for function, k in where.most_common(3))
        shares[area_] = per_page * n / busy
        print(f"  {per_page * n / busy:7.3f} {100 * n / busy:5.1f}%  {area_}: {places}")
    print(f"  shoal functions with the most CPU under them (ms/page, share of {name}'s CPU; the trunk left out):")
    below_trunk = [(function, n) for function, n in found["under"].most_common() if n < 0.9 * busy]
    for function, n in below_trunk[:top]:
        print(f"  {per_page * n / busy:7.3f} {100 * n / busy:5.1f}%  {function}")
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=12, help="shoal functions listed per process")
    parser.add_argument("--keep", type=Path, help="also keep py-spy's raw samples in this file (collapsed stacks)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="shoal-profile-") as work,
        serve(args.products) as site,
        redis_server() as (url, server),
    ):
        client = redis.Redis.from_url(url)
        try:
            redis_cpu = sum(server.cpu_times()[:2])
            raw = Path(work) / "profile.txt"
            command = ["py-spy", "record", "--subprocesses", "--native", "--rate", str(args.rate), "--format", "raw"]
            command += ["-o", str(raw), "--", sys.executable, str(CRAWL), "shoal", site.url + "/products"]
            with SlowLog(client) as slowlog:
                done = subprocess.run(
                    command, capture_output=True, text=True, check=True, env={**os.environ, "REDIS_URL": url}
                )
            redis_cpu = sum(server.cpu_times()[:2]) - redis_cpu
            report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
            if args.keep:
                args.keep.write_text(raw.read_text())
            profile = read_profile(raw)
        finally:
            client.close()
    pages = report["pages"]
    print(
        f"{pages} pages, {report['items']} items in {report['elapsed_s']:.1f} s under py-spy"
        f" (crawl proper {report['window_s']:.1f} s); load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, Any] = {"crawl": report, "areas": {}}
    for name, role in (("coordinator", "crawl process"), ("worker", "worker")):
        results["areas"][name] = print_process(name, profile[name], report["cpu_s"][role], pages, args.top)
    total_usec = sum(slowlog.usec.values())
    print(
        f"\nredis-server: {1000 * redis_cpu / pages:.3f} ms CPU per page over the whole run, the slow log's own"
        f" cost included (bench/run.py measures it without); its commands ran {total_usec / 1000 / pages:.3f} ms"
        f" per page (the rest: reading, writing, the event loop); slow log entries lost: {slowlog.lost}"
    )
    print(f"  {'us/page':>7} {'calls/page':>10} {'us/call':>8}  command (Lua scripts by their first key)")
    for name, usec in slowlog.usec.most_common(args.top):
        calls = slowlog.calls[name]
        print(f"  {usec / pages:7.1f} {calls / pages:10.2f} {usec / calls:8.1f}  {name}")
    results["redis"] = {"cpu_ms_per_page": 1000 * redis_cpu / pages, "usec": dict(slowlog.usec)}
    results["redis"]["calls"] = dict(slowlog.calls)
    Path(__file__).with_name("cpu-profile-last-run.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
