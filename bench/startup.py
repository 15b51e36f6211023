"""Where the wall time of a one-page crawl goes: a timeline of shoal's ``Spider().start()``, from system calls.

    uv run --group bench python bench/startup.py [--runs 3]

Runs bench/crawl.py's one-page crawl (the 1-product shop's /product/1) under strace, which records with their
times the processes started and ended, the signals sent, the connections opened, and every command the
processes send to Redis and the shop. Prints the last run's timeline from the call of ``start()`` to its
return (by process, repeated commands collapsed), then the phases of every run (their medians): the private
redis-server's start, the worker's start and imports, its registration, the crawl proper, the shutdown.
strace adds a little to each system call it records; bench/run.py gives the untraced wall time.
"""

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from run import serve  # bench/ is this script's directory, so on its path

CRAWL = Path(__file__).with_name("crawl.py")
TRACED = "execve,clone,clone3,connect,sendto,write,writev,kill,exit_group"
LINE = re.compile(r"^(\d+) +(\d+\.\d+) (.*)$")


@dataclass
class Event:
    at: float
    who: str
    what: str


def resp_commands(text: str) -> list[list[str]]:
    """The Redis commands (RESP arrays) at the start of a write, as strace shows its bytes."""
    commands = []
    for chunk in text.split("\\r\\n*")[0:8]:
        tokens = chunk.lstrip("*").split("\\r\\n")
        commands.append([token for token in tokens[2::2]])
    return commands


def command_label(words: list[str]) -> str:
    """A Redis command as the timeline shows it: its name and first key, the crawl's prefix left out."""
    if not words:
        return "?"
    name = words[0].upper()
    key = words[3] if name == "EVALSHA" and len(words) > 3 else words[1] if len(words) > 1 else ""
    key = re.sub(r"^shoal:\{[^}]*\}", "", key)
    return f"{name} {key}".strip()


def parse(trace: Path) -> list[Event]:
    """The events of an strace -f -ttt log: processes, signals, connections, Redis commands, HTTP requests."""
    roles: dict[str, str] = {}
    pending: dict[str, str] = {}  # unfinished calls by pid
    events = []
    for raw in trace.read_text(errors="replace").splitlines():
        match = LINE.match(raw)
        if not match:
            continue
        pid, at, rest = match.group(1), float(match.group(2)), match.group(3)
        roles.setdefault(pid, "crawl process")
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>")
            continue
        if rest.startswith("<... "):
            rest = pending.pop(pid, "") + rest.split("resumed>", 1)[-1]
        who = roles[pid]
        call = rest.split("(", 1)[0]
        result = rest.rsplit("= ", 1)[-1] if "= " in rest else ""
        if call in ("clone", "clone3") and result.strip().isdigit():
            roles[result.strip()] = who
        elif call == "execve" and result.startswith("0"):
            argv = re.findall(r'"([^"]*)"', rest.split("[", 1)[1].split("]", 1)[0])
            role = _role(argv)
            if role != "crawl process":
                roles[pid] = role
                events.append(Event(at, role, "starts: " + " ".join(argv)[:110]))
        elif call == "kill":
            target, signal = re.findall(r"kill\((\d+), (\w+)", rest)[0]
            events.append(Event(at, who, f"sends {signal} to {roles.get(target, target)}"))
        elif rest.startswith("+++ exited"):
            events.append(Event(at, who, "exits"))
        elif call == "connect" and result.startswith("0"):
            where = "Redis" if "sun_path" in rest or "6379" in rest else "the shop"
            events.append(Event(at, who, f"connects to {where}"))
        elif call in ("write", "writev", "sendto") and who != "redis-server":
            text = rest.split('"', 1)[1] if '"' in rest else ""
            if text.startswith("*") and "\\r\\n$" in text:
                labels = [command_label(words) for words in resp_commands(text)]
                if labels[0] != "CLIENT SETINFO":
                    more = f" (+{len(labels) - 1} more)" if len(labels) > 1 else ""
                    events.append(Event(at, who, labels[0] + more))
            elif text.startswith(("GET ", "POST ")):
                events.append(Event(at, who, "HTTP " + text.split(" HTTP/")[0]))
    return sorted(events, key=lambda event: event.at)


def _role(argv: list[str]) -> str:
    if any("redis-server" in arg for arg in argv[:1]):
        return "redis --version" if "--version" in argv else "redis-server"
    if "worker" in argv:
        return "worker"
    return "crawl process"


def traced_crawl(url: str, work: Path) -> tuple[dict, list[Event]]:
    trace = work / "strace.log"
    command = ["strace", "-f", "-ttt", "-s", "200", "--seccomp-bpf", "-e", f"trace={TRACED}", "-o", str(trace)]
    command += [sys.executable, str(CRAWL), "shoal", url, "--one-page"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    events = parse(trace)
    events += [Event(at, "crawl process", f"** {mark} **") for mark, at in report["at"].items()]
    return report, sorted(events, key=lambda event: event.at)


def first(events: list[Event], who: str, starts: str, after: float = 0.0) -> float:
    """When ``who`` first did something starting with ``starts`` (after ``after``); nan if it never did."""
    return next((e.at for e in events if e.who == who and e.what.startswith(starts) and e.at >= after), float("nan"))


def phases(events: list[Event]) -> dict[str, float]:
    """The phases of one start(), in ms, each from one event to the next."""
    marks = {e.what.strip("* "): e.at for e in events if e.what.startswith("**")}
    redis_exec = first(events, "redis-server", "starts")
    moments = [
        ("start() called", marks["called"]),
        ("redis-server --version run", first(events, "redis --version", "starts")),
        ("redis-server started", redis_exec),
        ("Redis answers the crawl process", first(events, "crawl process", "connects to Redis", redis_exec)),
        ("worker process started", first(events, "worker", "starts")),
        ("worker's first Redis command", first(events, "worker", "PING")),
        ("worker registered (HSET shoal:workers)", first(events, "worker", "HSET shoal:workers")),
        ("on_start: the crawl proper begins", marks["on_start"]),
        ("the worker sends the HTTP request", first(events, "worker", "HTTP")),
        ("on_close: the crawl proper ends", marks["on_close"]),
        ("SIGTERM to the worker", first(events, "crawl process", "sends SIGTERM to worker")),
        ("worker exited", first(events, "worker", "exits")),
        ("SIGTERM to redis-server", first(events, "crawl process", "sends SIGTERM to redis-server")),
        ("redis-server exited", first(events, "redis-server", "exits")),
        ("start() returned", marks["returned"]),
    ]
    return {
        f"{name} -> {following}": 1000 * (then - at) for (name, at), (following, then) in itertools.pairwise(moments)
    }


def print_timeline(events: list[Event]) -> None:
    called = next(e.at for e in events if e.what == "** called **")
    collapsed: list[tuple[Event, int]] = []
    for event in events:
        if collapsed and (collapsed[-1][0].who, collapsed[-1][0].what) == (event.who, event.what):
            collapsed[-1] = (collapsed[-1][0], collapsed[-1][1] + 1)
        else:
            collapsed.append((event, 1))
    print(f"{'ms':>8}  {'process':<15} event")
    for event, times in collapsed:
        if event.at < called - 0.001:
            continue
        repeat = f"  (x{times})" if times > 1 else ""
        print(f"{1000 * (event.at - called):8.1f}  {event.who:<15} {event.what}{repeat}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with serve(1) as site, tempfile.TemporaryDirectory(prefix="shoal-startup-") as work:
        for _ in range(args.runs):
            report, events = traced_crawl(site.url + "/product/1", Path(work))
            runs.append((report, events, phases(events)))
    print_timeline(runs[-1][1])
    print(f"\nPhases, median of {args.runs} traced runs (ms):")
    for name in runs[0][2]:
        values = [phased[name] for _, _, phased in runs]
        print(f"  {statistics.median(values):7.1f}  ({min(values):.0f}-{max(values):.0f})  {name}")
    elapsed = [1000 * report["elapsed_s"] for report, _, _ in runs]
    print(f"  {statistics.median(elapsed):7.1f}  ({min(elapsed):.0f}-{max(elapsed):.0f})  start() in all, traced")


if __name__ == "__main__":
    main()
