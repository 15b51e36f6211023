"""The images users run, on a real Docker engine: both images built from this checkout, the compose file
started as a project of its own, and every pool driven from this machine through shoal.Client.

Needs a Docker engine with `docker compose`; without one the tests skip, unless SHOAL_REQUIRE_DOCKER=1
(.ci/run starts an engine and sets it), where they fail. The project's Redis is published on a free
port of 127.0.0.1; the demo shop and the bot-check page are containers on the project's network, so
no traffic leaves this machine. The project is always taken down with its volumes.
`pytest -s tests/test_images.py` prints the figures the README quotes.
"""

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from shoal.client import Client, Crawl
from shoal.demo import ShopSite
from tests.pool_spiders import PoolsSpider, ProbeSpider

#: Building the images from nothing, starting the project and the crawls take minutes, not the default 120 s.
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).parent.parent
BOTD = Path(__file__).parent / "botd"
FILES = ("docker-compose.yml", "deploy/compose.host.yml", "tests/compose.images.yml")
IMAGES = {"SHOAL_IMAGE": "shoal:test", "SHOAL_BROWSER_IMAGE": "shoal-browser:test"}
STEALTH_WORKERS = 2
#: The slowed-down shop: 10 listing pages and 200 product pages, each answered after DELAY s, so that a
#: crawl at concurrency 8 lasts about a minute and a half.
PRODUCTS, DELAY = 200, 2.5
#: The shop at full speed, for the stealth pool's pages/s.
FAST_PRODUCTS = 100
BROWSER_SERVICES = ("dynamic-worker", "stealth-worker")

#: Run with `python -c` in a container: its Chromium browser processes (not their helpers) and zombies.
PROCESSES = """
import json, os
browsers, zombies = [], 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if state == "Z":
        zombies += 1
    elif command[0].endswith(b"/chromium") and not any(arg.startswith(b"--type=") for arg in command):
        browsers.append(int(pid))
print(json.dumps({"browsers": browsers, "zombies": zombies}))
"""

#: Run with `python -c` in the browser image: every ELF file of Chromium and of the drivers' node, and
#: what `ldd` finds missing for each.
MISSING_LIBRARIES = """
import json, pathlib, subprocess, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
files = [*site.glob("*/driver/node"), *pathlib.Path("/usr/lib/chromium").rglob("*")]
checked, missing = [], {}
for path in files:
    if path.is_file() and not path.is_symlink() and path.open("rb").read(4) == b"\\x7fELF":
        checked.append(str(path))
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        if lost := [line.strip() for line in out.splitlines() if "not found" in line]:
            missing[str(path)] = lost
print(json.dumps({"checked": checked, "missing": missing}))
"""


def _engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0 and (
        subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Project:
    """A compose project of its own: the repository's compose file, Redis on a free loopback port,
    the test's demo services (--profile demo), the images tagged for the test."""

    def __init__(self, env_file: Path) -> None:
        self.name = f"shoal-test-{uuid.uuid4().hex[:8]}"
        self.password = secrets.token_hex(8)
        port = _free_port()
        self.redis_url = f"redis://:{self.password}@127.0.0.1:{port}/0"
        settings = {
            **IMAGES,
            "REDIS_PASSWORD": self.password,
            "REDIS_HOST_PORT": str(port),
            "SHOAL_SECRET": "",
            "HTTP_WORKERS": "1",
            "DYNAMIC_WORKERS": "1",
            "STEALTH_WORKERS": str(STEALTH_WORKERS),
            "DEMO_PRODUCTS": str(PRODUCTS),
            "DEMO_DELAY": str(DELAY),
            "DEMO_FAST_PRODUCTS": str(FAST_PRODUCTS),
        }
        env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.env_file = env_file
        self.figures: dict[str, object] = {}

    def compose(self, *args: str, timeout: float = 300, profile: str = "demo") -> str:
        files = [arg for name in FILES for arg in ("-f", name)]
        command = ["compose", "-p", self.name, "--env-file", str(self.env_file), *files, "--profile", profile]
        return _docker(*command, *args, timeout=timeout)

    def down(self) -> None:
        """``down -v`` with every profile, as the README says (a plain ``down`` may leave the containers
        of a profile running, and then fails to remove the network); checks that nothing is left."""
        try:
            self.compose("down", "-v", "--timeout", "10", timeout=180, profile="*")
        finally:
            project = f"label=com.docker.compose.project={self.name}"
            left = _docker("ps", "-aq", "--filter", project).split()
            left += _docker("volume", "ls", "-q", "--filter", project).split()
            left += _docker("network", "ls", "-q", "--filter", project).split()
            if left:
                self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180, profile="*")
        assert not left, f"`docker compose --profile '*' down -v` left {left}"

    def containers(self, service: str) -> list[str]:
        """The ids of the service's running containers."""
        return self.compose("ps", "-q", "--status", "running", service).split()

    def processes(self, container: str) -> dict:
        return json.loads(_docker("exec", container, "python", "-c", PROCESSES))

    def kill_browsers(self, container: str) -> list[int]:
        """SIGKILL the container's Chromium browser processes (as a crash would); returns their pids."""
        pids = self.processes(container)["browsers"]
        assert pids, f"no Chromium runs in {container[:12]}"
        _docker("exec", container, "python", "-c", f"import os; [os.kill(pid, 9) for pid in {pids}]")
        return pids


async def _until(condition, timeout: float, what: str, every: float = 0.5):
    """Poll an async ``condition`` until it returns something truthy; fail saying ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(every)
    return value


async def _running(crawl: Crawl, before: str) -> None:
    status = await crawl.status()
    assert status.state == "running", f"the crawl was {status.state} before {before}: make the demo shop slower"


def _items(items: list[dict]) -> list[tuple[str, str]]:
    return sorted((item["name"], item["price"]) for item in items)


@pytest.fixture(scope="module")
def project(tmp_path_factory, request):
    if not _engine():
        if os.environ.get("SHOAL_REQUIRE_DOCKER") == "1":
            pytest.fail("SHOAL_REQUIRE_DOCKER=1 but no Docker engine with `docker compose` answers")
        pytest.skip("no Docker engine (.ci/run starts one)")
    if not (BOTD / "node_modules" / "@fingerprintjs" / "botd").is_dir():
        subprocess.run(["npm", "ci", "--silent"], cwd=BOTD, check=True, timeout=300)
    service = Project(tmp_path_factory.mktemp("compose") / "env")
    failed_before, up = request.session.testsfailed, False
    try:
        started = time.monotonic()
        service.compose("build", timeout=1800)
        service.figures["build_s"] = round(time.monotonic() - started, 1)
        for name, tag in IMAGES.items():
            size = int(_docker("image", "inspect", "--format", "{{.Size}}", tag))
            service.figures[f"{name}_MB"] = round(size / 1e6)
        started = time.monotonic()
        service.compose("up", "-d", "--wait", "--wait-timeout", "240", timeout=300)
        service.figures["up_to_healthy_s"] = round(time.monotonic() - started, 1)
        up = True
        yield service
    finally:
        if not up or request.session.testsfailed > failed_before:
            with contextlib.suppress(AssertionError):  # the project may not exist
                print(service.compose("logs", "--no-color", "--tail", "40", timeout=60))
        print("image test figures:", json.dumps(service.figures))
        service.down()


def test_every_container_turns_healthy_and_a_health_check_costs_a_fraction_of_a_second_of_cpu(project):
    states = [json.loads(line) for line in project.compose("ps", "--format", "json").splitlines()]
    shoal = [s for s in states if s["Service"] in ("coordinator", "http-worker", *BROWSER_SERVICES)]
    assert len(shoal) == 3 + STEALTH_WORKERS, states
    assert all(s["State"] == "running" and s["Health"] == "healthy" for s in shoal), states
    for service, role in (("coordinator", "coordinator"), ("http-worker", "worker"), ("stealth-worker", "worker")):
        container = project.containers(service)[0]
        timed = (
            "import resource, subprocess; "
            f"code = subprocess.run(['shoal', 'health', '{role}']).returncode; "
            "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(code, usage.ru_utime + usage.ru_stime)"
        )
        code, cpu = _docker("exec", container, "python", "-c", timed).split()
        assert code == "0", f"shoal health {role} failed in {service}"
        project.figures[f"health_cpu_s_{service}"] = round(float(cpu), 2)
        assert float(cpu) < 1.0, f"shoal health {role} took {cpu} s of CPU in {service}"


def test_every_binary_of_chromium_and_the_drivers_finds_its_shared_libraries(project):
    found = json.loads(
        _docker("run", "--rm", "--entrypoint", "python", IMAGES["SHOAL_BROWSER_IMAGE"], "-c", MISSING_LIBRARIES)
    )
    assert found["missing"] == {}
    checked = found["checked"]
    assert sum(path.endswith("/driver/node") for path in checked) == 2, checked  # playwright's and patchright's
    assert "/usr/lib/chromium/chromium" in checked


async def test_a_crawl_over_every_pool_keeps_its_exact_items_while_stealth_scales_browsers_crash_a_worker_dies_and_the_coordinator_restarts(  # noqa: E501
    project,
):
    async with Client(project.redis_url) as client:
        crawl = await client.submit(PoolsSpider, url="http://demo:8000")
        first = set(project.containers("stealth-worker"))

        async def stealth_fetched() -> set[str]:
            return {w.info.host for w in await client.workers() if w.info.kind == "stealth" and w.info.fetched}

        await _until(stealth_fetched, 120, "no stealth worker fetched a page")
        await _running(crawl, "scaling stealth")
        project.compose("up", "-d", "--scale", "stealth-worker=3", "--no-recreate", timeout=300)
        (added,) = set(project.containers("stealth-worker")) - first

        async def added_fetched() -> bool:
            return added[:12] in await stealth_fetched()  # a container's host name is its id's first 12 digits

        await _until(added_fetched, 120, "the added stealth worker took no job")

        await _running(crawl, "crashing the browsers")
        browsers = [c for service in BROWSER_SERVICES for c in project.containers(service)]
        killed = {container: project.kill_browsers(container) for container in browsers}

        async def relaunched() -> bool:
            return all(set(project.processes(c)["browsers"]) - set(pids) for c, pids in killed.items())

        await _until(relaunched, 120, "a worker did not relaunch its Chromium")

        await _running(crawl, "killing a stealth worker")
        _docker("kill", sorted(first)[0])
        await _running(crawl, "restarting the coordinator")
        project.compose("restart", "coordinator", timeout=120)

        status = await crawl.wait(600)
        assert status.state == "finished"
        assert _items([item async for item in crawl.items()]) == _items(ShopSite(products=PRODUCTS).expected_items())
        sids = (await crawl.stats()).sessions_requests_count
        assert set(sids) == {"http", "dynamic", "stealth"}, sids

    for container in (c for service in BROWSER_SERVICES for c in project.containers(service)):
        # a killed browser's processes are zombies until their parent or the container's init reaps them: a
        # few may still wait on a loaded machine, but none stays
        async def reaped(container: str = container) -> bool:
            return project.processes(container)["zombies"] <= 2

        await _until(reaped, 60, f"zombie processes stayed in {container[:12]}")
        project.figures.setdefault("zombies_after_relaunch", []).append(project.processes(container)["zombies"])


def test_a_plain_up_keeps_the_workers_per_pool_that_the_env_file_sets(project):
    project.compose("up", "-d", "--wait", timeout=300)
    assert len(project.containers("stealth-worker")) == STEALTH_WORKERS


async def test_both_browser_pools_render_webgl_in_their_image_and_stealth_passes_botd(project):
    async with Client(project.redis_url) as client:
        crawl = await client.submit(ProbeSpider, page="http://probe:8000/botd.html")
        await crawl.wait(300)
        items = {item["sid"]: item for item in [i async for i in crawl.items()]}
    stealth, dynamic = items["stealth"], items["dynamic"]
    project.figures["webgl"] = {sid: (item["webglVendor"], item["webglRenderer"]) for sid, item in items.items()}
    assert stealth["botd"] == {"bot": False}, stealth
    assert stealth["webdriver"] is False and "HeadlessChrome" not in stealth["userAgent"]
    assert "llvmpipe" in (stealth["webglRenderer"] or ""), stealth  # Mesa through ANGLE, not SwiftShader
    assert stealth["webglVendor"] and stealth["webgl2"] is True, stealth
    assert dynamic["webglRenderer"] and dynamic["webgl2"] is True, dynamic
    assert dynamic["botd"].get("bot") is True, dynamic  # the page's checks work: plain headless is caught


async def test_the_stealth_pool_crawls_at_full_speed_with_exact_items(project):
    workers = len(project.containers("stealth-worker"))
    async with Client(project.redis_url) as client:
        crawl = await client.submit(
            PoolsSpider,
            url="http://demo-fast:8000",
            browser_sids=["stealth"],
            concurrent_requests=4 * workers,
        )
        status = await crawl.wait(600)
        items = [item async for item in crawl.items()]
    assert _items(items) == _items(ShopSite(products=FAST_PRODUCTS).expected_items())
    sid = status.sids["stealth"]
    project.figures["stealth_pages_per_s_per_worker"] = round(sid.pages_per_second / workers, 2)
