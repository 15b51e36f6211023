"""``shoal run``: crawl with a spider file on this machine, then show the stats and say what failed."""

import argparse
import contextlib
import os
import traceback
from typing import Any

from redis.exceptions import RedisError
from rich.live import Live

from shoal.cli import views
from shoal.cli.terminal import console, error, log_to_console, print_json

#: ``shoal run`` lists at most this many failed requests when its Redis was private.
_FAILED_SHOWN = 20


def quota_args(args: argparse.Namespace) -> dict[str, float]:
    """The quotas given on the command line, as the spider arguments that set them."""
    given = {name: getattr(args, name) for name in ("max_pages", "max_items", "max_duration")}
    return {name: value for name, value in given.items() if value is not None}


def key_values(pairs: list[str], what: str) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"shoal: {what} takes key=value, got {pair!r}")
        result[key] = value
    return result


def output_ok(output: str | None) -> bool:
    """Whether items can be written to ``output`` (no file, or a known extension); says why not."""
    from shoal.spiders.result import check_export_path

    try:
        if output:
            check_export_path(output)
    except ValueError as e:
        error(f"{e}")
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """``shoal run``: crawl with the spider in a file, on this machine."""
    from shoal.local.run import LocalOptions, run_spider
    from shoal.spiders import SessionConfigurationError
    from shoal.spiders.loader import create_spider, describe_error, load_spider_file

    log_to_console(args.log_level)
    spider_args: dict[str, Any] = {**key_values(args.arg, "-a"), **quota_args(args)}
    try:
        cls, source = load_spider_file(args.spider_file, args.spider)
        spider = create_spider(cls, spider_args)
        spider.crawldir = args.crawldir or spider.crawldir
    except Exception as e:  # the spider's own code, or what it asks for, failed: its line first
        error(describe_error(e, str(args.spider_file)))
        if args.log_level == "DEBUG":
            console.print("".join(traceback.format_exception(e)), markup=False, highlight=False)
        return 2
    workers = {sid: int(n) for sid, n in key_values(args.workers, "--workers").items()}
    if not output_ok(args.output):
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
        error(f"the crawl stopped: {type(e).__name__}: {e}")
        return 1
    stats = result.stats
    if args.json:
        summary = {"crawl": result.crawl_id, "stats": stats.to_dict(), "paused": result.paused}
        print_json({**summary, "stop_reason": result.stop_reason, "failed": len(result.failed)})
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
    return exit_code(stats, args.allow_failures)


def exit_code(stats: Any, allow_failures: bool) -> int:
    """1 when a request failed for good or a spider error dropped work (unless ``allow_failures``), else 0."""
    errors = stats.custom_stats.get("callback_errors", 0)
    if not (stats.failed_requests_count or errors) or allow_failures:
        return 0
    what = [f"{stats.failed_requests_count} requests failed"] if stats.failed_requests_count else []
    what += [f"{errors} callbacks or hooks raised"] if errors else []
    error(f"exit 1: {' and '.join(what)} (--allow-failures to exit 0 all the same)")
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
