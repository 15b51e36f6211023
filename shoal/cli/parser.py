"""The ``shoal`` command line: the options commands share, and one small function per command."""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.cli import control, run, service, watch
from shoal.cli.terminal import LOG_LEVELS
from shoal.common.version import __version__

DESCRIPTION = """Run Scrapling-style spiders: 'shoal run' crawls with a spider file on this machine; 'shoal coordinator'
and 'shoal worker' are the processes of a crawl service, and the other commands submit, watch and steer
its crawls through the service's Redis. 'shoal COMMAND --help' tells more about each."""
ALLOW_FAILURES = "exit 0 even if requests failed for good or callbacks raised (default: exit 1)"
#: What the positional CRAWL of a command is.
CRAWL_HELP = "the crawl's id, as `shoal submit` printed it (`shoal status` lists them)"
#: What ``add_subparsers`` returns (argparse does not name its type publicly).
Commands = Any


def _redis_url(url: str) -> str:
    """``--redis``: a Redis URL, or an error naming the forms it may take."""
    from shoal.store.connection import check_url

    try:
        return check_url(url)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass
class Shared:
    """Groups of options several commands take (argparse parents)."""

    service: argparse.ArgumentParser  # --redis
    logs: argparse.ArgumentParser  # --log-level
    as_json: argparse.ArgumentParser  # --json
    spider: argparse.ArgumentParser  # the spider file and its arguments
    quotas: argparse.ArgumentParser  # --max-pages, --max-items, --max-duration


def _options() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def _shared() -> Shared:
    service = _options()
    service.add_argument(
        "--redis",
        type=_redis_url,
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        metavar="URL",
        help="the service's Redis URL: redis://[:PASSWORD@]HOST:PORT/DB, rediss://... for TLS, or unix:///PATH "
        "(default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    logs = _options()
    logs.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=LOG_LEVELS,
        help="log records at this level and above to stderr: DEBUG adds every item and request (default: INFO)",
    )
    as_json = _options()
    as_json.add_argument("--json", action="store_true", help="print JSON instead of tables")
    spider = _options()
    spider.add_argument("spider_file", type=Path, help="the Python file that defines the spider")
    spider.add_argument(
        "-a",
        dest="arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spider argument, for its __init__ or as an attribute (repeatable)",
    )
    spider.add_argument("--spider", help="which spider, when the file defines several (class or spider name)")
    quotas = _options()
    quotas.add_argument("--max-pages", type=int, help="stop after dispatching this many requests")
    quotas.add_argument("--max-items", type=int, help="stop after this many items")
    quotas.add_argument("--max-duration", type=float, metavar="SECONDS", help="stop dispatching after this long")
    return Shared(service, logs, as_json, spider, quotas)


def _run(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "run",
        parents=[shared.spider, shared.quotas, shared.logs],
        help="run a spider file on this machine and write its items",
        description="Crawl with the spider in a file on this machine: start a private Redis (unless --redis or "
        "$REDIS_URL names one), the coordinator and a worker process per session of the spider; show the "
        "progress, write the items, print the stats. Ctrl+C pauses, a second Ctrl+C stops.",
    )
    p.add_argument("-o", "--output", help="items file: .jsonl, .json, .csv or .xml")
    p.add_argument(
        "--redis",
        type=_redis_url,
        default=os.environ.get("REDIS_URL"),
        metavar="URL",
        help="run the crawl on this Redis, and keep it there (default: $REDIS_URL, else a private redis-server)",
    )
    p.add_argument("--workers", action="append", default=[], metavar="SID=N", help="worker processes for a sid")
    p.add_argument("--crawldir", type=Path, help="keep the crawl's state here: Ctrl+C pauses, running again resumes")
    p.add_argument("--allow-failures", action="store_true", help=ALLOW_FAILURES)
    p.add_argument("--json", action="store_true", help="print the final stats as JSON on stdout instead of a table")
    p.set_defaults(func=run.run)


def _coordinator(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "coordinator",
        parents=[shared.service, shared.logs],
        help="accept submitted crawls and run them (the service's coordinator)",
        description="Loads the spiders submitted to the service's Redis, runs their callbacks and dispatches their "
        "requests to the worker pools. Run several for high availability: a crawl whose coordinator dies "
        "is taken over by another.",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.set_defaults(func=service.coordinator)
    p.add_argument("--dashboard-port", type=int, help="also serve the web dashboard on this port")
    p.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="the dashboard's address (default 127.0.0.1; any other needs $SHOAL_DASHBOARD_TOKEN)",
    )


def _worker(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "worker",
        parents=[shared.service, shared.logs],
        help="serve the jobs of one session kind (a member of a pool)",
        description="Fetches the requests of every crawl's sids of one session kind (http: curl_cffi; dynamic and "
        "stealth: Chromium through Playwright) until SIGTERM or Ctrl+C.",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.set_defaults(func=service.worker)
    p.add_argument("--kind", choices=["http", "dynamic", "stealth"], required=True, help="the session kind to serve")
    p.add_argument("--sid", action="append", help="serve only this sid (repeatable; default: every sid)")
    p.add_argument("--capacity", type=int, help="jobs held at once (default: 64 for http, 4 for browsers)")
    p.add_argument(
        "--drain",
        type=float,
        help="on SIGTERM, seconds to finish held jobs before handing the rest back (default 10)",
    )


def _submit(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "submit",
        parents=[shared.spider, shared.service, shared.quotas],
        help="submit a spider file to the service",
        description="Send a spider file to the service and print the crawl's id once a coordinator accepted "
        "it. A spider that fails to load is an error here, with its traceback.",
    )
    p.add_argument("-o", "--output", help="wait for the crawl to end, then write its items to this file, here")
    p.add_argument("--wait", action="store_true", help="wait until the crawl ends")
    p.add_argument("--allow-failures", action="store_true", help=ALLOW_FAILURES)
    p.set_defaults(func=control.submit)


def _status(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "status",
        parents=[shared.service, shared.as_json],
        help="crawls with their per-sid queues",
        description="Show every crawl (or one): state, pages, items, errors, pages/s and its coordinator; and "
        "per sid: frontier, queued (waiting for a worker: a growing number means the pool needs more "
        "workers), in flight, live workers, pages/s. --json prints a list of crawls (one object for CRAWL), "
        "each with its whole stats.",
    )
    p.add_argument("crawl", nargs="?", metavar="CRAWL", help=CRAWL_HELP + "; default: every crawl")
    p.set_defaults(func=watch.status)


def _top(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "top",
        parents=[shared.service, shared.as_json],
        help="status and workers, refreshed live",
        description="`shoal status` and `shoal workers`, refreshed until Ctrl+C: redrawn in place in a "
        "terminal, printed one after the other otherwise (--json: a JSON line per refresh).",
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default: %(default)s)")
    p.set_defaults(func=watch.top)


def _items(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "items",
        parents=[shared.service],
        help="a crawl's items (JSON lines, or -o FILE)",
        description="Print a crawl's items from the first, one JSON object a line, or write them to a file.",
    )
    p.add_argument("crawl", metavar="CRAWL", help=CRAWL_HELP)
    p.add_argument("-o", "--output", help="items file: .jsonl, .json, .csv or .xml")
    p.add_argument("--follow", action="store_true", help="keep printing new items until the crawl ends")
    p.set_defaults(func=watch.items)


def _one_crawl(commands: Commands, shared: Shared) -> None:
    """The commands on one CRAWL: pause, resume, cancel, delete, failed, retry."""
    for name, func, text, more in (
        (
            "pause",
            control.crawl_action("pause"),
            "pause a crawl",
            "Stop dispatching a crawl's requests; those in flight finish, nothing is lost.",
        ),
        ("resume", control.crawl_action("resume"), "resume a crawl", "Dispatch the requests of a paused crawl again."),
        (
            "cancel",
            control.crawl_action("cancel"),
            "cancel a crawl",
            "End a crawl now: nothing more is dispatched, and its state says cancelled.",
        ),
        (
            "delete",
            control.delete,
            "delete an ended crawl: its items, stats and state",
            "Remove an ended (finished, failed or cancelled) crawl's items, stats, failed requests and state from "
            "Redis now, instead of at the end of their retention. A running or paused crawl is refused: cancel "
            "it first.",
        ),
        (
            "failed",
            watch.failed,
            "a crawl's failed requests, with their errors",
            "List a crawl's requests whose fetch failed after their retries: when, the kind of error (timeout, "
            "dns, connection ...), sid, URL and message (--json: a JSON line each).",
        ),
        (
            "retry",
            control.retry,
            "re-queue a crawl's failed requests (runs it again)",
            "Put a crawl's failed requests back in their frontiers; a crawl that had ended runs again on a "
            "coordinator of the service.",
        ),
    ):
        parents = [shared.service, shared.as_json] if name == "failed" else [shared.service]
        p = commands.add_parser(name, parents=parents, help=text, description=more)
        p.add_argument("crawl", metavar="CRAWL", help=CRAWL_HELP)
        p.set_defaults(func=func)


def _workers(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "workers",
        parents=[shared.service, shared.as_json],
        help="registered workers, alive or dead",
        description="List every registered worker: pool, sids, live or dead, jobs held, capacity, pages "
        "fetched, memory, last heartbeat, host and pid.",
    )
    p.set_defaults(func=watch.workers)


def _dashboard(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "dashboard",
        parents=[shared.service, shared.logs],
        help="serve the web dashboard (read-only by default)",
        description="Serve the web dashboard: crawls, per-sid queues with charts, workers, recent items and "
        "errors; pausing, resuming and cancelling crawls needs the write token.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8700, help="port to listen on (default 8700)")
    p.add_argument("--token", help="token to read (needed off 127.0.0.1; default $SHOAL_DASHBOARD_TOKEN)")
    p.add_argument(
        "--write-token", help="token to pause, resume and cancel crawls (default $SHOAL_DASHBOARD_WRITE_TOKEN)"
    )
    p.set_defaults(func=service.dashboard)


def _health(commands: Commands, shared: Shared) -> None:
    p = commands.add_parser(
        "health",
        parents=[shared.service],
        help="exit 0 if Redis and this host's ROLE are alive",
        description="Exit 0 when Redis answers and a ROLE process on this host sent a recent heartbeat, else "
        "1: a container's health check.",
    )
    p.add_argument("role", choices=["worker", "coordinator"], help="which process of this host to check")
    p.set_defaults(func=service.health)


#: The commands, in the order ``shoal --help`` lists them.
COMMANDS = (
    _run,
    _coordinator,
    _worker,
    _submit,
    _status,
    _top,
    _items,
    _one_crawl,
    _workers,
    _dashboard,
    _health,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``shoal`` command line: each command's parser sets ``func``, the function to run."""
    root = argparse.ArgumentParser(prog="shoal", description=DESCRIPTION)
    root.add_argument("--version", action="version", version=f"shoal {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    shared = _shared()
    for add in COMMANDS:
        add(commands, shared)
    return root
