"""What the shoal command prints, run as scripts run it: output to pipes, no terminal, no COLUMNS.

Reading commands print whole lines (or JSON), errors name the user's line and what to check, --help
explains every command and argument, and a crawl's items stay off the console unless asked for.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shoal.client import Client
from shoal.common import keys
from shoal.spiders import Request, Response, Spider
from tests.faulty_site import closed_port
from tests.test_service import Service

#: A spider name, hence crawl ids, too long for 80 columns of table.
LONG_NAME = "a-spider-whose-name-alone-is-longer-than-the-eighty-columns-of-a-default-console"


def shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``shoal ARGS`` as a script runs it: stdout and stderr are pipes, no COLUMNS, no REDIS_URL."""
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "REDIS_URL")}
    command = [sys.executable, "-m", "shoal", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**environ, **(env or {})})


def spider_file(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "spider.py"
    path.write_text(source)
    return path


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` holding ``text``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


class LongNamed(Spider):
    """One product page of the shop, and one request to a closed port, which fails."""

    name = LONG_NAME
    logging_level = 50

    def __init__(self, url: str, refused: int):
        self.page, self.refused = f"{url}/product/1", f"http://127.0.0.1:{refused}/gone"
        super().__init__()

    async def start_requests(self):
        yield Request(self.page)
        yield Request(self.refused, retries=0)

    async def parse(self, response: Response):
        yield {"url": response.url}


@pytest.fixture
def crawled(shop, redis_url) -> tuple[str, str]:
    """A finished crawl kept in the test Redis: its id, and the URL of its failed request."""
    spider = LongNamed(shop.url, closed_port())
    result = spider.start(redis_url=redis_url)
    assert len(result.items) == 1 and len(result.failed) == 1
    return result.crawl_id, spider.refused


@pytest.fixture
def worker(redis_url, tmp_path):
    """A live ``shoal worker`` of the http pool, registered: (its process, its worker id)."""
    service = Service(redis_url, tmp_path)
    process = service.start("worker", "--kind", "http")
    deadline = time.monotonic() + 60
    client = redis.Redis.from_url(redis_url)
    while not (ids := [raw.decode() for raw in client.hkeys(keys.WORKERS) if raw.decode().endswith(f"-{process.pid}")]):
        assert process.poll() is None and time.monotonic() < deadline, "the worker did not register"
        time.sleep(0.05)
    client.close()
    yield process, ids[0]
    service.stop()


# -- item 9: whole lines without a terminal, and JSON ---------------------------------------------


def test_reading_commands_print_whole_lines_when_their_output_is_not_a_terminal(crawled, worker, redis_url):
    crawl, refused = crawled
    process, worker_id = worker
    status = shoal("status", "--redis", redis_url)
    one = shoal("status", crawl, "--redis", redis_url)
    workers = shoal("workers", "--redis", redis_url)
    failed = shoal("failed", crawl, "--redis", redis_url)
    for done in (status, one, workers, failed):
        assert done.returncode == 0, done.stderr
    assert crawl in status.stdout and crawl in one.stdout
    assert re.search(rf"{worker_id} .* {process.pid} ", workers.stdout), workers.stdout
    assert refused in failed.stdout
    unknown = "no-such-crawl-" + "x" * 100
    missing = shoal("items", unknown, "--redis", redis_url)
    assert missing.returncode == 1
    assert missing.stderr == f"shoal: no crawl '{unknown}'\n"  # one line, not wrapped at 80 columns


def test_status_shows_a_failed_crawl_s_reason_as_it_is(redis_url):
    reason = "spider.py, line 3, in parse\nTypeError: expected list[str], got [bold] (see [Errno 111])"
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.state("broken"), mapping={"state": "failed", "spider": "broken", "error": reason})
    client.sadd(keys.CRAWLS, "broken")
    client.close()
    done = shoal("status", "--redis", redis_url)
    assert done.returncode == 0 and f"broken failed:\n{reason}\n" in done.stdout


def test_reading_commands_print_json_for_scripts(crawled, worker, redis_url):
    crawl, refused = crawled
    process, worker_id = worker
    [listed] = json.loads(shoal("status", "--json", "--redis", redis_url).stdout)
    assert listed["crawl"] == crawl and listed["state"] == "finished"
    assert listed["stats"]["items_scraped"] == 1 and listed["sids"]["default"]["pages"] == 1
    one = json.loads(shoal("status", crawl, "--json", "--redis", redis_url).stdout)
    assert one["crawl"] == crawl and one["stats"]["failed_requests_by_kind"] == {"connection": 1}
    [registered] = json.loads(shoal("workers", "--json", "--redis", redis_url).stdout)
    assert registered["alive"] and registered["info"]["id"] == worker_id and registered["info"]["pid"] == process.pid
    [failed] = [json.loads(line) for line in shoal("failed", crawl, "--json", "--redis", redis_url).stdout.splitlines()]
    assert failed["kind"] == "connection" and failed["request"]["url"] == refused and failed["message"]


def test_shoal_run_prints_its_final_stats_as_json(tmp_path, shop, redis_url):
    done = shoal("run", str(spider_file(tmp_path, ITEMS_SPIDER)), "-a", f"url={shop.url}", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stats"]["items_scraped"] == 3 and result["crawl"].startswith("products-") and not result["paused"]


def _top(redis_url: str, *args: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    command = [sys.executable, "-m", "shoal", "top", "--redis", redis_url, "--interval", "0.2", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)


def test_top_without_a_terminal_prints_each_refresh_in_full_and_with_json_a_line_each(crawled, redis_url):
    crawl, _ = crawled
    top, views = _top(redis_url), []
    for line in top.stdout:
        if line.startswith("shoal top, "):
            views.append([])
        elif views:
            views[-1].append(line)
        if len(views) == 3:
            break
    top.send_signal(signal.SIGINT)
    top.communicate(timeout=30)
    for view in views[:2]:  # each a whole view: the crawl, its queues and the workers
        assert sum(crawl in line for line in view) == 2 and any(line.strip() == "workers" for line in view)
    top = _top(redis_url, "--json")
    refreshes = [json.loads(top.stdout.readline()) for _ in range(2)]
    top.send_signal(signal.SIGINT)
    top.communicate(timeout=30)
    for refresh in refreshes:
        assert [c["crawl"] for c in refresh["crawls"]] == [crawl] and refresh["workers"] == []
    assert refreshes[1]["time"] > refreshes[0]["time"]


# -- item 15: a crawl's items stay off the console below DEBUG ------------------------------------

ITEMS_SPIDER = """
from shoal.spiders import Request, Spider


class Products(Spider):
    name = "products"
    url = ""

    async def start_requests(self):
        for n in (1, 2, 3):
            yield Request(f"{self.url}/product/{n}")

    async def parse(self, response):
        yield {"name": response.css("h1::text").get()}
"""


def test_shoal_run_shows_the_items_log_lines_only_at_debug_level_and_keeps_them_in_the_log_file(
    tmp_path, shop, redis_url
):
    spider, log_file = spider_file(tmp_path, ITEMS_SPIDER), tmp_path / "spider.log"
    args = ["run", str(spider), "-a", f"url={shop.url}", "--redis", redis_url]
    quiet = shoal(*args, "-a", f"log_file={log_file}")
    assert quiet.returncode == 0, quiet.stderr
    assert "Scraped from" not in quiet.stderr and re.search(r"items_scraped +│ 3 ", quiet.stderr)
    assert log_file.read_text().count("Scraped from") == 3  # the spider's logging_level (DEBUG) still rules its file
    loud = shoal(*args, "--log-level", "debug")
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.count("Scraped from") == 3


# -- item 11: the user's line first ---------------------------------------------------------------

BAD_SESSION_SPIDER = """
from shoal.fetchers import FetcherSession
from shoal.spiders import Spider


class BadSession(Spider):
    name = "bad-session"
    start_urls = ["http://127.0.0.1:1/"]

    def configure_sessions(self, manager):
        manager.add("http", FetcherSession(impersonat="chrome"))

    async def parse(self, response):
        yield {"url": response.url}
"""

BAD_SID_SPIDER = """
from shoal.spiders import Request, Spider


class BadSid(Spider):
    name = "bad-sid"

    async def start_requests(self):
        yield Request("http://127.0.0.1:1/", sid="nope")

    async def parse(self, response):
        yield {"url": response.url}
"""


def test_a_spider_that_cannot_be_built_shows_its_own_line_first_then_the_reason_without_shoals_frames(tmp_path):
    spider = spider_file(tmp_path, BAD_SESSION_SPIDER)
    done = shoal("run", str(spider))
    assert done.returncode == 2
    line = line_of(spider, "impersonat=")
    assert done.stderr.splitlines() == [
        f"shoal: {spider}, line {line}, in configure_sessions",
        '    manager.add("http", FetcherSession(impersonat="chrome"))',
        "TypeError: unknown FetcherSession argument 'impersonat' (did you mean 'impersonate'?)",
    ]
    debug = shoal("run", str(spider), "--log-level", "debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "shoal/common/sessions.py" in debug.stderr


def test_a_request_for_a_sid_no_session_has_is_shown_at_the_spider_line_that_yielded_it(tmp_path, redis_url):
    spider = spider_file(tmp_path, BAD_SID_SPIDER)
    done = shoal("run", str(spider), "--redis", redis_url)
    where = f"{spider}, line {line_of(spider, 'sid=')}, in start_requests: "
    assert where in done.stderr and "names sid 'nope', which no session has (sessions: default)" in done.stderr
    assert "Traceback" not in done.stderr
    debug = shoal("run", str(spider), "--redis", redis_url, "--log-level", "debug")
    assert where in debug.stderr and "Traceback" in debug.stderr


# -- item 12: Redis that cannot be reached, URLs that are not Redis URLs --------------------------


EXAMPLE = str(Path(__file__).parent.parent / "examples" / "shop.py")


@pytest.mark.parametrize(
    "command", [["status"], ["health", "worker"], ["run", EXAMPLE]], ids=["status", "health", "run"]
)
def test_a_command_on_a_redis_that_does_not_answer_says_so_with_the_url_masked_and_what_to_check(command):
    url = f"redis://:do-not-print-me@127.0.0.1:{closed_port()}/0"
    done = shoal(*command, "--redis", url)
    assert done.returncode == 1
    [said] = [line for line in done.stderr.splitlines() if line.startswith("shoal: ")]
    assert f"cannot reach Redis at {url.replace('do-not-print-me', '***')} (" in said
    assert "Check that redis-server runs there" in said and "do-not-print-me" not in done.stderr


async def test_the_client_gives_up_on_a_redis_that_never_answered_after_two_seconds():
    url = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    async with Client(url) as client:
        with pytest.raises(RedisConnectionError, match=rf"cannot reach Redis at {re.escape(url)} "):
            await client.crawls()
    assert 1.9 < time.monotonic() - started < 6  # it retried for 9 s
    with pytest.raises(ValueError, match=r"http://127.0.0.1:6379/0 is not a Redis URL: use redis://"):
        Client("http://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "command",
    [
        ["run", "spider.py"],
        ["coordinator"],
        ["worker", "--kind", "http"],
        ["submit", "spider.py"],
        ["status"],
        ["top"],
        ["items", "crawl"],
        ["pause", "crawl"],
        ["cancel", "crawl"],
        ["failed", "crawl"],
        ["retry", "crawl"],
        ["workers"],
        ["dashboard"],
        ["health", "worker"],
    ],
    ids=lambda command: command[0],
)
def test_a_redis_url_of_another_scheme_is_refused_naming_the_accepted_ones(command):
    for given in (["--redis", "http://:secret@127.0.0.1:6379/0"], []):
        done = shoal(*command, *given, env={"REDIS_URL": "http://:secret@127.0.0.1:6379/0"})
        assert done.returncode == 2
        assert "argument --redis: http://:***@127.0.0.1:6379/0 is not a Redis URL: use redis://" in done.stderr
        assert "rediss://" in done.stderr and "unix://" in done.stderr
        assert "Traceback" not in done.stderr and "secret" not in done.stderr


# -- item 14: --help and spider arguments ---------------------------------------------------------


def _commands() -> list[str]:
    text = shoal("--help").stdout
    listing = text.split("\ncommands:\n")[1]
    return [line.split()[0] for line in listing.splitlines()[1:] if re.match(r"    \S", line)]


def _entries_without_help(text: str) -> list[str]:
    """The arguments listed in a --help text with no words of help."""
    lines, missing, listing = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if line and not line.startswith(" "):
            listing = line in ("positional arguments:", "options:")
        elif listing and re.match(r"  \S", line):
            explained = "  " in line.strip() or (i + 1 < len(lines) and re.match(r"   +\S", lines[i + 1]))
            if not explained:
                missing.append(line.strip())
    return missing


def test_every_command_has_a_description_and_every_argument_a_help_text_in_plain_words():
    commands = _commands()
    assert {"run", "coordinator", "worker", "submit", "status", "top", "items", "failed", "workers"} <= set(commands)
    for command in commands:
        text = shoal(command, "--help").stdout
        usage, description = text.split("\n\n")[:2]
        assert usage.startswith(f"usage: shoal {command}") and len(description.split()) >= 5, (command, text)
        assert _entries_without_help(text) == [], command
        assert "``" not in text, command
        if "--redis" in text:
            assert "$REDIS_URL" in " ".join(text.split()), command
    assert "redis://127.0.0.1:6379/0" in " ".join(shoal("status", "--help").stdout.split())
    assert "(default: 1.0)" in shoal("top", "--help").stdout
    assert "--log-level" in shoal("run", "--help").stdout
    assert "``" not in shoal("--help").stdout


ARGUMENTS_SPIDER = """
from shoal.spiders import Spider


class Arguments(Spider):
    name = "arguments"
    url = ""

    def __init__(self, category: str = "all", **kwargs):
        self.category = category
        super().__init__(**kwargs)

    async def start_requests(self):
        return
        yield
"""


def test_a_spider_argument_the_spider_neither_takes_nor_has_is_warned_about_with_a_did_you_mean(tmp_path, redis_url):
    spider = spider_file(tmp_path, ARGUMENTS_SPIDER.replace(", **kwargs", "").replace("**kwargs", ""))
    args = ["-a", "urll=http://127.0.0.1:1/", "-a", "url=http://127.0.0.1:1/", "-a", "category=books"]
    done = shoal("run", str(spider), *args, "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "spider argument" in line]
    assert len(warned) == 1 and "spider argument 'urll' is neither a parameter of Arguments.__init__" in warned[0]
    assert "(did you mean 'url'?)" in warned[0]
    anything = spider_file(tmp_path, ARGUMENTS_SPIDER.replace("super().__init__(**kwargs)", "super().__init__()"))
    done = shoal("run", str(anything), "-a", "urll=x", "--redis", redis_url)  # __init__(**kwargs) takes any
    assert done.returncode == 0 and "spider argument" not in done.stderr, done.stderr
