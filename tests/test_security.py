"""Security: no pickle on the wire, Redis AUTH and TLS everywhere, secrets never shown, and what a
spider's objects let it reach."""

import ast
import contextlib
import gc
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import msgspec
import psutil
import pytest
import redis
import redis.asyncio

import shoal
from shoal.client import Client, SubmissionError
from shoal.common import keys
from shoal.coordinator.engine import CrawlEngine
from shoal.coordinator.queues import CrawlQueues
from shoal.spiders import Response, Spider
from shoal.store.connection import masked
from shoal.store.server import RedisServer, TlsFiles, find_redis_server
from tests import test_service
from tests.test_service import SHOP_SPIDER, Service, expected, found, wait_for

service = test_service.service  # the fixture, shared

PASSWORD = "p@ss:w/rd%42 x"  # reserved characters, percent-encoded in URLs
SECRET = "cluster-secret-7f3a"

# -- no pickle --------------------------------------------------------------------------------------

DESERIALIZERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle", "joblib"}


def test_no_module_of_shoal_imports_pickle_or_another_object_deserializer():
    offenders = []
    for path in Path(shoal.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} {name}" for name in names if name.split(".")[0] in DESERIALIZERS]
    assert offenders == []


async def test_a_submission_crosses_redis_as_msgpack_not_pickle(redis_url, tmp_path):
    spider = tmp_path / "spider.py"
    spider.write_text(SHOP_SPIDER)
    async with Client(redis_url, secret="") as client:
        with pytest.raises(TimeoutError):  # no coordinator: the job stays queued, as it went over the wire
            await client.submit(spider, crawl_id="wire-check", accept_timeout=0.3, url="http://127.0.0.1:1")
    raw = redis.Redis.from_url(redis_url).get("arq:job:wire-check")
    assert not raw.startswith(b"\x80")  # every pickle protocol >= 2 starts so
    job = msgspec.msgpack.decode(raw)
    assert job["f"] == "accept" and b"class ShopSpider" in job["a"][0]


class _Planted:
    """Unpickling this creates ``path`` as a directory: proof that something ran pickle.loads."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


async def test_a_pickled_job_slipped_into_the_submission_queue_is_rejected_never_unpickled(
    service, redis_url, tmp_path
):
    planted = tmp_path / "unpickled"
    payload = pickle.dumps({"t": 1, "f": "accept", "a": (_Planted(str(planted)),), "k": {}, "et": 0})
    assert b"mkdir" in payload
    client = redis.Redis.from_url(redis_url)
    client.set("arq:job:planted", payload)
    client.zadd(keys.SUBMISSIONS, {"planted": time.time() * 1000})  # arq's score: when the job may run
    log = tmp_path / "coordinator.log"
    coordinator = service.start("coordinator", "--log-level", "INFO", log=log)
    await wait_for(lambda: _gone(client, keys.SUBMISSIONS, "planted"), timeout=30)
    assert not planted.exists()
    assert "deserializing job planted failed" in log.read_text()
    assert coordinator.poll() is None  # it goes on serving


async def _gone(client, queue: str, job: str) -> bool:
    return client.zscore(queue, job) is None


# -- Redis AUTH --------------------------------------------------------------------------------------


@pytest.fixture
def password_redis():
    with RedisServer(password=PASSWORD, unix_socket=False) as server:
        yield server


def _run_and_watch(command: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``command`` to its end; also return the command lines of every process it started, as ``ps``
    would show them to any user of the machine."""
    process = psutil.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    seen = set()
    while process.poll() is None:
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # it exited meanwhile
                seen.add(" ".join(child.cmdline()))
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), "\n".join(seen)


def _shoal_run(url: str, site, tmp_path: Path) -> tuple[subprocess.CompletedProcess, str, Path]:
    """``shoal run`` on ``url``, given as $REDIS_URL: no command line holds it unless shoal put it there (a
    worker caught between fork and exec still shows its parent's command line)."""
    spider, output = tmp_path / "spider.py", tmp_path / "items.jsonl"
    spider.write_text(SHOP_SPIDER)
    command = [sys.executable, "-m", "shoal", "run", str(spider), "-a", f"url={site.url}"]
    finished, command_lines = _run_and_watch([*command, "-o", str(output)], env={"REDIS_URL": url})
    return finished, command_lines, output


def _items(output: Path) -> list[dict]:
    return [msgspec.json.decode(line) for line in output.read_text().splitlines()]


def test_shoal_run_works_on_a_redis_with_a_password_and_keeps_it_off_the_workers_command_lines(
    password_redis, shop, tmp_path
):
    assert "%40" in password_redis.url  # the password's reserved characters are percent-encoded
    finished, command_lines, output = _shoal_run(password_redis.url, shop, tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert found(_items(output)) == expected(shop)
    assert "shoal worker" in command_lines.replace("-m shoal", "shoal")  # it did watch the workers
    assert PASSWORD not in command_lines and password_redis.url not in command_lines


async def _crawl_on_the_service(url: str, site, tmp_path: Path) -> None:
    """A coordinator and a worker on ``url`` run a crawl a client submits, to exactly its items."""
    service = Service(url, tmp_path)
    try:
        service.start("coordinator")
        service.start("worker", "--kind", "http")
        async with Client(url) as client:
            crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=site.url)
            await crawl.wait(60)
            assert found([item async for item in crawl.items()]) == expected(site)
        listed = service.cli("workers")
        assert listed.returncode == 0 and "live" in listed.stdout
    finally:
        service.stop()


async def test_coordinator_worker_and_client_work_on_a_redis_with_a_password(password_redis, shop, tmp_path):
    await _crawl_on_the_service(password_redis.url, shop, tmp_path)


@pytest.mark.parametrize("role", ["worker", "coordinator"])
def test_a_service_process_refused_by_redis_exits_at_once_saying_so_without_the_password(password_redis, role):
    wrong = password_redis.url.replace("%40", "%41")
    command = [sys.executable, "-m", "shoal", role, "--redis", wrong, *(["--kind", "http"] if role == "worker" else [])]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=30)
    said = " ".join(finished.stderr.split())
    assert finished.returncode == 1
    assert "refused the credentials" in said and ":***@127.0.0.1" in said
    assert "p%41ss" not in said and "p@ss" not in said


def test_a_cli_command_refused_by_redis_says_so_without_the_password(password_redis):
    wrong = password_redis.url.replace("%40", "%41")
    finished = subprocess.run(
        [sys.executable, "-m", "shoal", "status", "--redis", wrong], capture_output=True, text=True, timeout=60
    )
    said = finished.stderr
    assert finished.returncode == 1 and "Redis at redis://:***@127.0.0.1" in said and "refused the credentials" in said
    assert "p%41ss" not in said and "invalid username-password pair" in said


def test_redis_urls_are_printed_with_the_password_masked():
    assert masked("redis://:p%40ss@host:6379/0") == "redis://:***@host:6379/0"
    assert (
        masked("rediss://user:pw@host:6380/1?ssl_ca_certs=/ca.pem")
        == "rediss://user:***@host:6380/1?ssl_ca_certs=/ca.pem"
    )
    assert masked("unix://:pw@/run/redis.sock") == "unix://:***@/run/redis.sock"
    assert masked("redis://host/0?password=pw&db=2") == "redis://host/0?password=***&db=2"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    tls = "rediss://:hunter2@redis.internal:6380/3?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
    assert masked(tls) == tls.replace("hunter2", "***")


# -- TLS ---------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TlsFiles:
    """A CA, and a certificate it signed for 127.0.0.1, made with openssl for this test run."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make test certificates with")
    try:
        find_redis_server(tls=True)
    except RuntimeError as e:
        pytest.skip(str(e))
    directory = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=shoal test CA", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "redis.key", "-out", "redis.csr",
             "-subj", "/CN=127.0.0.1", cwd=directory)  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "redis.crt", "-days", "1", "-extfile", "san.cnf", cwd=directory)  # fmt: skip
    return TlsFiles(cert=directory / "redis.crt", key=directory / "redis.key", ca=directory / "ca.crt")


@pytest.fixture
def tls_redis(tls_files):
    with RedisServer(tls=tls_files, password=PASSWORD) as server:
        yield server


def test_shoal_run_works_over_tls_with_a_verified_certificate(tls_redis, shop, tmp_path):
    assert tls_redis.url.startswith("rediss://") and "ssl_cert_reqs=required" in tls_redis.url
    finished, _, output = _shoal_run(tls_redis.url, shop, tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert found(_items(output)) == expected(shop)


async def test_coordinator_worker_and_client_work_over_tls(tls_redis, shop, tmp_path):
    await _crawl_on_the_service(tls_redis.url, shop, tmp_path)


async def test_a_tls_redis_whose_certificate_does_not_verify_is_refused(tls_redis):
    untrusted = tls_redis.url.split("&ssl_ca_certs=")[0]  # verify against the system's CAs instead
    plain = tls_redis.url.replace("rediss://", "redis://").split("?")[0]
    async with Client(untrusted) as client:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            await client.redis.ping()
        assert time.monotonic() - started < 2  # refused at once, not retried
    async with Client(plain, retries=0) as client:
        with pytest.raises(redis.ConnectionError):
            await client.redis.ping()


# -- secrets are never shown -------------------------------------------------------------------------


def _everything_in(url: str) -> bytes:
    """Every key and value in a Redis, whatever its type."""
    client, dumped = redis.Redis.from_url(url), []
    for key in client.scan_iter(count=1000):
        read = {
            b"string": client.get,
            b"hash": client.hgetall,
            b"list": lambda key: client.lrange(key, 0, -1),
            b"set": client.smembers,
            b"zset": lambda key: client.zrange(key, 0, -1),
            b"stream": client.xrange,
        }[client.type(key)]
        dumped.append(repr((key, read(key))).encode())
    return b"\n".join(dumped)


async def test_the_redis_password_and_shoal_secret_appear_in_no_log_output_record_or_error(
    password_redis, shop, tmp_path
):
    env = {"SHOAL_SECRET": SECRET}
    service = Service(password_redis.url, tmp_path)
    logs = [tmp_path / "coordinator.log", tmp_path / "worker.log"]
    outputs = []
    try:
        service.start("coordinator", "--log-level", "DEBUG", env=env, log=logs[0])
        service.start("worker", "--kind", "http", "--log-level", "DEBUG", env=env, log=logs[1])
        async with Client(password_redis.url, secret=SECRET) as client:
            crawl = await client.submit(service.spider_file(SHOP_SPIDER), url=shop.url)
            await crawl.wait(60)
            with pytest.raises(SubmissionError) as refused:
                await client.submit(service.spider_file("import no_such_module\n" + SHOP_SPIDER))
            outputs.append(str(refused.value))
            await wait_for(lambda: _coordinator_listed(client))
        for command in (["status"], ["status", crawl.id], ["workers"], ["items", crawl.id], ["health", "worker"]):
            shown = service.cli(*command)
            assert shown.returncode == 0, (command, shown.stderr)
            outputs += [shown.stdout, shown.stderr]
        outputs.append(_top(password_redis.url))
        wrong = password_redis.url.replace("%40", "%41")
        outputs.append(subprocess.run([sys.executable, "-m", "shoal", "workers", "--redis", wrong],
                                      capture_output=True, text=True, timeout=60).stderr)  # fmt: skip
    finally:
        service.stop()
    stored = _everything_in(password_redis.url)
    assert b"ShopSpider" in stored and "serving" in logs[0].read_text()  # there was something to look at
    shown = "\n".join([*outputs, *(log.read_text() for log in logs)])
    for secret in (PASSWORD, password_redis.url.split("@")[0], SECRET):
        assert secret not in shown
        assert secret.encode() not in stored
    assert "redis://:***@127.0.0.1" in shown


def test_the_error_of_a_local_worker_that_cannot_start_does_not_show_the_password(password_redis, shop):
    with pytest.raises(RuntimeError, match=r"a worker \(worker .*--kind http.*\) exited with code 2") as stopped:
        _ShopSpider(shop.url).start(redis_url=password_redis.url, capacity="not-a-number")
    assert PASSWORD not in str(stopped.value) and password_redis.url.split("@")[0] not in str(stopped.value)


async def _coordinator_listed(client) -> bool:
    return bool(await client.coordinators())


def _top(url: str) -> str:
    """What ``shoal top`` shows until it has drawn its first view, when it is stopped with Ctrl+C."""
    top = subprocess.Popen(
        [sys.executable, "-m", "shoal", "top", "--redis", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    shown = []
    for line in top.stdout:  # without a terminal, each view is printed in full: its last table is the workers
        shown.append(line)
        if line.strip() == "workers":
            break
    top.send_signal(signal.SIGINT)
    rest, _ = top.communicate(timeout=30)
    assert any(line.strip() == "workers" for line in shown), "".join(shown)
    return "".join(shown) + rest


class _ShopSpider(Spider):
    name = "shop-secrets"
    logging_level = 50

    def __init__(self, base: str) -> None:
        self.start_urls = [f"{base}/products"]
        super().__init__()

    async def parse(self, response: Response):
        yield {"url": response.url}


# -- what a spider can reach -------------------------------------------------------------------------

#: Objects through which a spider could read or write any crawl's keys.
REDIS_HANDLES = (
    redis.asyncio.Redis,
    redis.asyncio.ConnectionPool,
    redis.asyncio.connection.AbstractConnection,
    redis.Redis,
    redis.ConnectionPool,
    CrawlEngine,
    CrawlQueues,
)
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, str, bytes)


def _reachable(*roots: object) -> list[object]:
    """Every object reachable from ``roots`` through attributes and container items (not through the
    globals of functions or modules, which any Python code can import anyway)."""
    seen, queue, found_objects = set(), list(roots), []
    while queue and len(found_objects) < 200_000:
        obj = queue.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        found_objects.append(obj)
        if isinstance(obj, types.MethodType):
            queue.append(obj.__self__)
        elif isinstance(obj, dict):
            queue += [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            queue += list(obj)
        else:
            queue += list(getattr(obj, "__dict__", {}).values())
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    queue.append(getattr(obj, slot))
            queue += [ref for ref in gc.get_referents(obj) if isinstance(ref, dict | list | tuple)]
    return found_objects


class ReachSpider(Spider):
    """Looks, from inside a callback, at everything its spider, response and request let it reach."""

    name = "reach"
    logging_level = 50

    def __init__(self, base: str) -> None:
        self.start_urls = [f"{base}/product/1"]
        super().__init__()

    async def parse(self, response: Response):
        reachable = _reachable(self, response, response.request)
        yield {
            "handles": sorted({type(obj).__name__ for obj in reachable if isinstance(obj, REDIS_HANDLES)}),
            "looked_at": sorted({type(obj).__name__ for obj in reachable}),
        }


def test_a_spider_s_objects_hold_no_redis_handle(shop, redis_url):
    [item] = ReachSpider(shop.url).start(redis_url=redis_url).items
    assert {"ReachSpider", "Response", "Request", "SessionManager", "Headers"} <= set(item["looked_at"])
    assert item["handles"] == []


def test_a_spider_s_objects_reach_a_redis_handle_if_one_is_attached():  # the check above can fail
    spider = ReachSpider("http://127.0.0.1:1")
    spider.helper = {"client": redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0")}
    assert any(isinstance(obj, REDIS_HANDLES) for obj in _reachable(spider))
