"""Run Scrapling-style spiders: 'shoal run' crawls with a spider file on this machine; 'shoal coordinator'
and 'shoal worker' are the processes of a crawl service, and the other commands submit, watch and steer
its crawls through the service's Redis. 'shoal COMMAND --help' tells more about each."""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import AuthenticationError, RedisError
from rich.console import Console
from rich.live import Live

from shoal import views
from shoal.common.version import __version__

#: ``shoal run`` lists at most this many failed requests when its Redis was private.
_FAILED_SHOWN = 20
_ALLOW_FAILURES = "exit 0 even if requests failed for good or callbacks raised (default: exit 1)"
#: The width of a console that is not a terminal: lines are neither cut nor wrapped.
_UNBOUNDED = 1_000_000
_LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _console(stderr: bool = False) -> Console:
    """A console that fits its terminal; writing to a file or a pipe, it never cuts or wraps a line."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=_UNBOUNDED)


console = _console(stderr=True)  # progress and messages
out = _console()  # what a command was asked to show


def _json(value: Any) -> None:
    """Print ``value`` (dataclasses and msgspec Structs included) as one line of JSON on stdout."""
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _quota_args(args: argparse.Namespace) -> dict[str, float]:
    """The quotas given on the command line, as the spider arguments that set them."""
    given = {name: getattr(args, name) for name in ("max_pages", "max_items", "max_duration")}
    return {name: value for name, value in given.items() if value is not None}


def _key_values(pairs: list[str], what: str) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"shoal: {what} takes key=value, got {pair!r}")
        result[key] = value
    return result


def _output_ok(output: str | None) -> bool:
    """Whether items can be written to ``output`` (no file, or a known extension); says why not."""
    from shoal.spiders.result import check_export_path

    try:
        if output:
            check_export_path(output)
    except ValueError as e:
        _error(f"{e}")
        return False
    return True


def _error(message: str) -> None:
    """Print an error message as it is (no rich markup: it may hold brackets)."""
    console.print(f"shoal: {message}", style="red", markup=False, highlight=False)


def _log_to_console(level: str) -> None:
    """Log shoal's records, and spiders' records, at ``level`` and above to stderr."""
    from shoal.spiders.spider import ConsoleHandler, set_console_log_level

    layout = "%(asctime)s %(name)s %(levelname)s: %(message)s"
    logging.basicConfig(level=level, format=layout, handlers=[ConsoleHandler()])
    set_console_log_level(level)


def run(args: argparse.Namespace) -> int:
    """``shoal run``: crawl with the spider in a file, on this machine."""
    from shoal.local import LocalOptions, run_spider
    from shoal.spiders import SessionConfigurationError
    from shoal.spiders.loader import create_spider, describe_error, load_spider_file

    _log_to_console(args.log_level)
    spider_args: dict[str, Any] = {**_key_values(args.arg, "-a"), **_quota_args(args)}
    try:
        cls, source = load_spider_file(args.spider_file, args.spider)
        spider = create_spider(cls, spider_args)
        spider.crawldir = args.crawldir or spider.crawldir
    except Exception as e:  # the spider's own code, or what it asks for, failed: its line first
        _error(describe_error(e, str(args.spider_file)))
        if args.log_level == "DEBUG":
            console.print("".join(traceback.format_exception(e)), markup=False, highlight=False)
        return 2
    workers = {sid: int(n) for sid, n in _key_values(args.workers, "--workers").items()}
    if not _output_ok(args.output):
        return 2
    live = Live(console=console, refresh_per_second=4, transient=True) if console.is_terminal else None
    options = LocalOptions(
        redis_url=args.redis,
        workers=workers,
        output=args.output,
        args=spider_args,
        source=(source, str(args.spider_file)),
        on_progress=(lambda p: live.update(views.progress_table(p))) if live else None,
    )
    try:
        with live or contextlib.nullcontext():
            result = run_spider(spider, **vars(options))
    except (RedisError, OSError, RuntimeError, ValueError, SessionConfigurationError) as e:
        _error(f"the crawl stopped: {type(e).__name__}: {e}")
        return 1
    stats = result.stats
    if args.json:
        summary = {"crawl": result.crawl_id, "stats": stats.to_dict(), "paused": result.paused}
        _json({**summary, "stop_reason": result.stop_reason, "failed": len(result.failed)})
    else:
        console.print(views.stats_table(stats.to_dict()))
    if result.stop_reason:
        console.print(f"stopped: {result.stop_reason}")
    if args.output:
        so_far = " scraped so far" if result.paused else ""
        console.print(f"wrote {len(result.items)} items{so_far} to {args.output}")
    if result.paused:
        again = "run the same command to resume" if spider.crawldir else "give --crawldir to be able to resume"
        console.print(f"paused: {again}")
        return 130
    if result.failed:
        _report_failed(result, args.redis or os.environ.get("REDIS_URL"))
    return _exit_code(stats, args.allow_failures)


def _exit_code(stats: Any, allow_failures: bool) -> int:
    """1 when a request failed for good or a spider error dropped work (unless ``allow_failures``), else 0."""
    errors = stats.custom_stats.get("callback_errors", 0)
    if not (stats.failed_requests_count or errors) or allow_failures:
        return 0
    what = [f"{stats.failed_requests_count} requests failed"] if stats.failed_requests_count else []
    what += [f"{errors} callbacks or hooks raised"] if errors else []
    _error(f"exit 1: {' and '.join(what)} (--allow-failures to exit 0 all the same)")
    return 1


def _report_failed(result: Any, redis_url: str | None) -> None:
    """After ``shoal run``: how many requests failed, and how to list and retry them (or the list itself,
    when the crawl's Redis was private and is gone)."""
    kinds: dict[str, int] = {}
    for failed in result.failed:
        kinds[failed.kind] = kinds.get(failed.kind, 0) + 1
    summary = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    console.print(f"[yellow]{len(result.failed)} requests failed ({summary})[/yellow]")
    if redis_url:
        where = f"{result.crawl_id} --redis {redis_url}"
        console.print(f"list them: shoal failed {where}")
        console.print(f"retry them (a coordinator on that Redis runs them): shoal retry {where}")
    else:
        shown = _FAILED_SHOWN
        console.print(views.failed_table(result.failed[:shown]))
        if len(result.failed) > shown:
            console.print(f"... and {len(result.failed) - shown} more")
        console.print("(run with --redis URL to keep the crawl, and list or retry them with shoal failed|retry)")


def _serve(make: Callable[[str], Any], args: argparse.Namespace) -> int:
    """Run a service process (``make(redis_url)`` returns an object with ``run(stop)``) until SIGTERM/Ctrl+C,
    saying once why it stops."""
    _log_to_console(args.log_level)
    log = logging.getLogger(f"shoal.{args.command}")
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping(sig: signal.Signals) -> None:
            if not stop.is_set():
                log.info("stopping: %s received", sig.name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping, sig)
        await _check_credentials(args.redis)
        await make(args.redis).run(stop)

    try:
        asyncio.run(serve())
    except AuthenticationError as e:
        from shoal.store.connection import masked

        _error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
        return 1
    except OSError:  # the caller says what (a dashboard's port in use ...)
        raise
    except Exception:
        log.critical("stopped: crashed", exc_info=True)
        return 1
    return 0


async def _check_credentials(url: str) -> None:
    """Raise AuthenticationError if Redis refuses the URL's password; an unreachable Redis is not an error
    here (the process says so, and waits for it)."""
    from redis.asyncio import Redis

    from shoal.store.connection import unreachable

    redis = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await redis.ping()
    except AuthenticationError:
        raise
    except RedisError as e:
        logging.getLogger("shoal").warning("%s Waiting for it.", unreachable(url, e))
    finally:
        await redis.aclose()


def worker(args: argparse.Namespace) -> int:
    """``shoal worker``: serve one session kind's job streams until SIGTERM or Ctrl+C."""
    from redis.asyncio import Redis

    from shoal.common.metrics import serve
    from shoal.workers.worker import Worker

    def make(url: str) -> Worker:
        pool = Worker(Redis.from_url(url), args.kind, args.sid, capacity=args.capacity, drain=args.drain)
        if args.metrics_port:
            serve(pool.metrics.registry, args.metrics_port)
        return pool

    return _serve(make, args)


class _CoordinatorProcess:
    """The coordinator with its optional metrics endpoint and dashboard."""

    def __init__(self, url: str, metrics_port: int | None, dashboard: Any = None) -> None:
        from redis.asyncio import Redis

        from shoal.coordinator.service import Coordinator
        from shoal.store.specs import shared_secret

        self.url, self.metrics_port, self.dashboard = url, metrics_port, dashboard
        self.coordinator = Coordinator(Redis.from_url(url), url, secret=shared_secret())

    async def run(self, stop: asyncio.Event) -> None:
        from prometheus_client import CollectorRegistry

        from shoal.common.metrics import serve
        from shoal.coordinator.metrics import ServiceCollector

        follower = None
        if self.metrics_port:
            collector, registry = ServiceCollector(), CollectorRegistry()
            registry.register(collector)
            serve(registry, self.metrics_port)
            follower = asyncio.create_task(self._follow(collector))
        if self.dashboard:
            await self.dashboard.start()
        try:
            await self.coordinator.run(stop)
        finally:
            if follower:
                follower.cancel()
            if self.dashboard:
                await self.dashboard.stop()

    async def _follow(self, collector: Any) -> None:
        """Refresh the metrics' snapshot through a client of the service (it rides out Redis restarts)."""
        from shoal.client import Client
        from shoal.coordinator.metrics import follow_service

        async with Client(self.url) as client:
            await follow_service(collector, client.redis)


def _dashboard(args: argparse.Namespace, host: str, port: int) -> Any:
    """The dashboard for ``args``; exits with a message when it would be exposed without a read token."""
    from shoal.dashboard import Access, Dashboard

    access = Access.from_env(getattr(args, "token", None), getattr(args, "write_token", None))
    try:
        return Dashboard(args.redis, access, host, port)
    except ValueError as e:
        _error(f"{e}")
        raise SystemExit(2) from None


def coordinator(args: argparse.Namespace) -> int:
    """``shoal coordinator``: accept submitted crawls and run them until SIGTERM or Ctrl+C."""
    board = _dashboard(args, args.dashboard_host, args.dashboard_port) if args.dashboard_port else None
    return _serve(lambda url: _CoordinatorProcess(url, args.metrics_port, board), args)


def dashboard(args: argparse.Namespace) -> int:
    """``shoal dashboard``: serve the web dashboard until SIGTERM or Ctrl+C."""
    board = _dashboard(args, args.host, args.port)
    try:
        return _serve(lambda url: board, args)
    except OSError as e:
        _error(f"{e.strerror}")
        return 1


def _client_command(
    work: Callable[[Any, argparse.Namespace], Awaitable[int]], retries: int | None = None
) -> Callable[[argparse.Namespace], int]:
    """A CLI command that talks to the service through a Client on ``--redis`` (retrying each command
    ``retries`` times while Redis is unreachable; default: the Client's)."""

    def command(args: argparse.Namespace) -> int:
        from shoal.client import Client
        from shoal.store.connection import masked, unreachable_cause

        async def go() -> int:
            async with Client(args.redis, **({} if retries is None else {"retries": retries})) as client:
                return await work(client, args)

        try:
            return asyncio.run(go())
        except AuthenticationError as e:
            _error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
            return 1
        except RedisError as e:
            _error(str(unreachable_cause(e) or f"Redis at {masked(args.redis)}: {e}"))
            return 1
        except LookupError as e:
            _error(e.args[0])
            return 1

    return command


@_client_command
async def submit(client: Any, args: argparse.Namespace) -> int:
    """``shoal submit``: send a spider file to the service; prints the crawl id. With ``--wait`` or ``-o``
    it waits for the crawl to end (``-o``: then writes its items to a file here, where the command runs)."""
    from shoal.client import CrawlFailed, SubmissionError

    if not _output_ok(args.output):
        return 2
    try:
        crawl = await client.submit(
            args.spider_file, spider_name=args.spider, **_key_values(args.arg, "-a"), **_quota_args(args)
        )
    except (SubmissionError, TimeoutError) as e:
        _error(f"{e}")
        return 1
    print(crawl.id, flush=True)
    if not (args.wait or args.output):
        return 0
    try:
        status = await crawl.wait()
    except CrawlFailed as e:
        _error(f"{e}")
        return 1
    except asyncio.CancelledError:  # Ctrl+C: the crawl goes on without us
        later = f" (shoal items {crawl.id} -o {args.output} writes its items)" if args.output else ""
        console.print(f"stopped waiting; crawl {crawl.id} keeps running on the service{later}")
        raise
    out.print(views.crawls_table([status]))
    if args.output:
        console.print(f"wrote {await crawl.export(args.output)} items to {args.output}")
    if status.state == "cancelled":
        _error(f"crawl {crawl.id} was cancelled")
        return 1
    return _exit_code(await crawl.stats(), args.allow_failures)


async def _with_stats(client: Any, crawls: list[Any]) -> list[dict[str, Any]]:
    """The crawls as JSON-ready dicts, each with its whole Scrapling-style ``stats``."""
    import msgspec

    return [{**msgspec.to_builtins(c), "stats": (await client.crawl(c.crawl).stats()).to_dict()} for c in crawls]


@_client_command
async def status(client: Any, args: argparse.Namespace) -> int:
    """``shoal status``: every crawl (or one) with its per-sid queues."""
    crawls = [await client.crawl(args.crawl).status()] if args.crawl else await client.crawls()
    if args.json:
        found = await _with_stats(client, crawls)
        _json(found[0] if args.crawl else found)
    else:
        out.print(views.status_view(crawls))
    return 0


@_client_command
async def top(client: Any, args: argparse.Namespace) -> int:
    """``shoal top``: ``shoal status`` and ``shoal workers``, refreshed until Ctrl+C. In a terminal the view
    is redrawn in place; otherwise each refresh is printed after the last (a JSON line each with --json)."""
    from rich.console import Group

    live = Live(console=out, screen=True, refresh_per_second=4) if out.is_terminal and not args.json else None
    with live or contextlib.nullcontext():
        while True:
            crawls, workers = await client.crawls(), await client.workers()
            if args.json:
                _json({"time": time.time(), "crawls": await _with_stats(client, crawls), "workers": workers})
            elif live:
                live.update(Group(views.status_view(crawls), views.workers_table(workers)))
            else:
                out.print(f"shoal top, {time.strftime('%Y-%m-%d %H:%M:%S')}", markup=False)
                out.print(Group(views.status_view(crawls), views.workers_table(workers)))
                sys.stdout.flush()
            await asyncio.sleep(args.interval)


@_client_command
async def items(client: Any, args: argparse.Namespace) -> int:
    """``shoal items``: a crawl's items as JSON lines, or into a file by its extension."""
    import msgspec

    from shoal.spiders import ItemList

    if not _output_ok(args.output):
        return 2
    crawl = client.crawl(args.crawl)
    await crawl.status()  # an unknown crawl is an error, not an empty listing
    stream = crawl.items(follow=args.follow)
    if args.output:
        found = ItemList([item async for item in stream])
        found.export(args.output)
        console.print(f"wrote {len(found)} items to {args.output}")
        return 0
    async for item in stream:
        sys.stdout.write(msgspec.json.encode(item).decode() + "\n")
        sys.stdout.flush()
    return 0


def _control(action: str) -> Callable[[argparse.Namespace], int]:
    async def command(client: Any, args: argparse.Namespace) -> int:
        await getattr(client.crawl(args.crawl), action)()
        kept = f" (its items and stats are kept; shoal delete {args.crawl} removes them)" if action == "cancel" else ""
        console.print(f"{action}: {args.crawl}{kept}")
        return 0

    return _client_command(command)


@_client_command
async def delete(client: Any, args: argparse.Namespace) -> int:
    """``shoal delete``: remove an ended crawl and everything it holds (``cancel`` keeps them)."""
    try:
        removed = await client.crawl(args.crawl).delete()
    except ValueError as e:
        _error(f"{e}")
        return 1
    console.print(f"deleted crawl {args.crawl} ({removed} keys)")
    return 0


@_client_command
async def failed(client: Any, args: argparse.Namespace) -> int:
    """``shoal failed``: a crawl's requests whose fetch failed, with the kind and message of each error."""
    crawl = client.crawl(args.crawl)
    await crawl.status()  # an unknown crawl is an error, not an empty listing
    if args.json:
        for entry in await crawl.failed():
            _json(entry)
    else:
        out.print(views.failed_table(await crawl.failed()))
    return 0


@_client_command
async def retry(client: Any, args: argparse.Namespace) -> int:
    """``shoal retry``: put a crawl's failed requests back in its frontiers; an ended crawl runs again."""
    crawl = client.crawl(args.crawl)
    before = await crawl.status()
    moved = await crawl.retry_failed()
    console.print(f"re-queued {moved} failed requests of {args.crawl}")
    if moved and before.state not in ("running", "paused"):
        if any(live for _, live in await client.coordinators()):
            console.print("the crawl runs again: a coordinator of the service resumes it")
        else:
            console.print("[yellow]no coordinator runs on this Redis: start `shoal coordinator` to resume it[/yellow]")
    return 0


@_client_command
async def workers(client: Any, args: argparse.Namespace) -> int:
    """``shoal workers``: every registered worker, alive or dead."""
    if args.json:
        _json(await client.workers())
    else:
        out.print(views.workers_table(await client.workers()))
    return 0


def health(args: argparse.Namespace) -> int:
    """``shoal health``: exit 0 when Redis answers and a ROLE process on this host sent a recent heartbeat
    (a container's health check: it answers at once, without retrying, and imports only what it needs,
    to answer quickly on a loaded machine)."""
    from redis.asyncio import Redis

    from shoal.store.connection import masked, unreachable
    from shoal.store.heartbeats import alive_here

    async def check() -> bool:
        redis = Redis.from_url(args.redis, socket_connect_timeout=2.0)
        try:
            return await alive_here(redis, args.role)
        finally:
            await redis.aclose()

    try:
        alive = asyncio.run(check())
    except AuthenticationError as e:
        _error(f"Redis at {masked(args.redis)} refused the credentials: {e}")
        return 1
    except (RedisError, OSError) as e:
        _error(str(unreachable(args.redis, e)))
        return 1
    if not alive:
        _error(f"no {args.role} on {socket.gethostname()} sent a heartbeat lately")
        return 1
    return 0


def _redis_url(url: str) -> str:
    """``--redis``: a Redis URL, or an error naming the forms it may take."""
    from shoal.store.connection import check_url

    try:
        return check_url(url)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: What the positional CRAWL of a command is.
_CRAWL_HELP = "the crawl's id, as `shoal submit` printed it (`shoal status` lists them)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="shoal", description=__doc__)
    root.add_argument("--version", action="version", version=f"shoal {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    default_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    service = argparse.ArgumentParser(add_help=False)
    service.add_argument(
        "--redis",
        type=_redis_url,
        default=default_redis,
        metavar="URL",
        help="the service's Redis URL: redis://[:PASSWORD@]HOST:PORT/DB, rediss://... for TLS, or unix:///PATH "
        "(default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=_LOG_LEVELS,
        help="log records at this level and above to stderr: DEBUG adds every item and request (default: INFO)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of tables")
    spider = argparse.ArgumentParser(add_help=False)
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
    quotas = argparse.ArgumentParser(add_help=False)
    quotas.add_argument("--max-pages", type=int, help="stop after dispatching this many requests")
    quotas.add_argument("--max-items", type=int, help="stop after this many items")
    quotas.add_argument("--max-duration", type=float, metavar="SECONDS", help="stop dispatching after this long")

    p = commands.add_parser(
        "run",
        parents=[spider, quotas, logs],
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
    p.add_argument("--allow-failures", action="store_true", help=_ALLOW_FAILURES)
    p.add_argument("--json", action="store_true", help="print the final stats as JSON on stdout instead of a table")
    p.set_defaults(func=run)

    for name, func, text, more in (
        (
            "coordinator",
            coordinator,
            "accept submitted crawls and run them (the service's coordinator)",
            "Loads the spiders submitted to the service's Redis, runs their callbacks and dispatches their "
            "requests to the worker pools. Run several for high availability: a crawl whose coordinator dies "
            "is taken over by another.",
        ),
        (
            "worker",
            worker,
            "serve the jobs of one session kind (a member of a pool)",
            "Fetches the requests of every crawl's sids of one session kind (http: curl_cffi; dynamic and "
            "stealth: Chromium through Playwright) until SIGTERM or Ctrl+C.",
        ),
    ):
        p = commands.add_parser(name, parents=[service, logs], help=text, description=more)
        p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
        p.set_defaults(func=func)
        if name == "coordinator":
            p.add_argument("--dashboard-port", type=int, help="also serve the web dashboard on this port")
            p.add_argument(
                "--dashboard-host",
                default="127.0.0.1",
                help="the dashboard's address (default 127.0.0.1; any other needs $SHOAL_DASHBOARD_TOKEN)",
            )
        if name == "worker":
            p.add_argument(
                "--kind", choices=["http", "dynamic", "stealth"], required=True, help="the session kind to serve"
            )
            p.add_argument("--sid", action="append", help="serve only this sid (repeatable; default: every sid)")
            p.add_argument("--capacity", type=int, help="jobs held at once (default: 64 for http, 4 for browsers)")
            p.add_argument(
                "--drain",
                type=float,
                help="on SIGTERM, seconds to finish held jobs before handing the rest back (default 10)",
            )

    p = commands.add_parser(
        "submit",
        parents=[spider, service, quotas],
        help="submit a spider file to the service",
        description="Send a spider file to the service and print the crawl's id once a coordinator accepted "
        "it. A spider that fails to load is an error here, with its traceback.",
    )
    p.add_argument("-o", "--output", help="wait for the crawl to end, then write its items to this file, here")
    p.add_argument("--wait", action="store_true", help="wait until the crawl ends")
    p.add_argument("--allow-failures", action="store_true", help=_ALLOW_FAILURES)
    p.set_defaults(func=submit)

    p = commands.add_parser(
        "status",
        parents=[service, as_json],
        help="crawls with their per-sid queues",
        description="Show every crawl (or one): state, pages, items, errors, pages/s and its coordinator; and "
        "per sid: frontier, queued (waiting for a worker: a growing number means the pool needs more "
        "workers), in flight, live workers, pages/s. --json prints a list of crawls (one object for CRAWL), "
        "each with its whole stats.",
    )
    p.add_argument("crawl", nargs="?", metavar="CRAWL", help=_CRAWL_HELP + "; default: every crawl")
    p.set_defaults(func=status)

    p = commands.add_parser(
        "top",
        parents=[service, as_json],
        help="status and workers, refreshed live",
        description="`shoal status` and `shoal workers`, refreshed until Ctrl+C: redrawn in place in a "
        "terminal, printed one after the other otherwise (--json: a JSON line per refresh).",
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default: %(default)s)")
    p.set_defaults(func=top)

    p = commands.add_parser(
        "items",
        parents=[service],
        help="a crawl's items (JSON lines, or -o FILE)",
        description="Print a crawl's items from the first, one JSON object a line, or write them to a file.",
    )
    p.add_argument("crawl", metavar="CRAWL", help=_CRAWL_HELP)
    p.add_argument("-o", "--output", help="items file: .jsonl, .json, .csv or .xml")
    p.add_argument("--follow", action="store_true", help="keep printing new items until the crawl ends")
    p.set_defaults(func=items)

    for action, text in (
        ("pause", "stop dispatching a crawl's requests; those in flight finish, nothing is lost"),
        ("resume", "dispatch the requests of a paused crawl again"),
        ("cancel", "end a crawl now: nothing more is dispatched, and its state says cancelled"),
    ):
        p = commands.add_parser(
            action, parents=[service], help=f"{action} a crawl", description=text[0].upper() + text[1:] + "."
        )
        p.add_argument("crawl", metavar="CRAWL", help=_CRAWL_HELP)
        p.set_defaults(func=_control(action))

    p = commands.add_parser(
        "delete",
        parents=[service],
        help="delete an ended crawl: its items, stats and state",
        description="Remove an ended (finished, failed or cancelled) crawl's items, stats, failed requests and "
        "state from Redis now, instead of at the end of their retention. A running or paused crawl is refused: "
        "cancel it first.",
    )
    p.add_argument("crawl", metavar="CRAWL", help=_CRAWL_HELP)
    p.set_defaults(func=delete)

    p = commands.add_parser(
        "failed",
        parents=[service, as_json],
        help="a crawl's failed requests, with their errors",
        description="List a crawl's requests whose fetch failed after their retries: when, the kind of error "
        "(timeout, dns, connection ...), sid, URL and message (--json: a JSON line each).",
    )
    p.add_argument("crawl", metavar="CRAWL", help=_CRAWL_HELP)
    p.set_defaults(func=failed)

    p = commands.add_parser(
        "retry",
        parents=[service],
        help="re-queue a crawl's failed requests (runs it again)",
        description="Put a crawl's failed requests back in their frontiers; a crawl that had ended runs again "
        "on a coordinator of the service.",
    )
    p.add_argument("crawl", metavar="CRAWL", help=_CRAWL_HELP)
    p.set_defaults(func=retry)

    p = commands.add_parser(
        "workers",
        parents=[service, as_json],
        help="registered workers, alive or dead",
        description="List every registered worker: pool, sids, live or dead, jobs held, capacity, pages "
        "fetched, memory, last heartbeat, host and pid.",
    )
    p.set_defaults(func=workers)

    p = commands.add_parser(
        "dashboard",
        parents=[service, logs],
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
    p.set_defaults(func=dashboard)

    p = commands.add_parser(
        "health",
        parents=[service],
        help="exit 0 if Redis and this host's ROLE are alive",
        description="Exit 0 when Redis answers and a ROLE process on this host sent a recent heartbeat, else "
        "1: a container's health check.",
    )
    p.add_argument("role", choices=["worker", "coordinator"], help="which process of this host to check")
    p.set_defaults(func=health)
    return root


class _Terminated(Exception):
    """SIGTERM reached a command that does not handle it itself."""


def _stop_now(signum: int, frame: object) -> None:
    """Ctrl+C or SIGTERM outside the commands that handle them (service processes, a crawl of shoal run):
    raised where the program is. Not asyncio.run's Ctrl+C, which cancels the command's task: a Redis
    command cancelled at the wrong moment can swallow that, and ``shoal items --follow`` went on."""
    raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    before = {sig: signal.signal(sig, _stop_now) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        console.print("shoal: stopped (Ctrl+C)")
        sys.exit(130)
    except _Terminated:
        console.print("shoal: stopped (SIGTERM)")
        sys.exit(143)
    except BrokenPipeError:  # the reader went away (`shoal items ... | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
