"""What we ship for deployment, checked without a Docker engine: the compose file against the Compose
specification, its commands against shoal's own CLI, the Dockerfiles' install steps against what CI
runs, and the Kubernetes manifests against the metrics the coordinator exports."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

from shoal.cli import parser
from shoal.client import CrawlStatus, SidStatus
from shoal.metrics import ServiceCollector

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
    return parser().parse_args(args)


def test_the_compose_file_is_valid_and_every_pool_scales_on_its_own():
    services = _compose()["services"]
    assert {"redis", "coordinator", *(f"{pool}-worker" for pool in POOLS), "prometheus"} == set(services)
    for pool in POOLS:
        worker = services[f"{pool}-worker"]
        args = _shoal_command(worker["command"])
        assert (args.command, args.kind) == ("worker", pool)
        assert "container_name" not in worker  # a fixed name would forbid --scale
        assert _seconds(worker["stop_grace_period"]) >= 20  # a worker waits up to 10 s for its jobs
        assert worker["healthcheck"]["test"] == ["CMD", "shoal", "health", "worker"]
        assert worker["deploy"]["resources"]["limits"]["memory"]
        dockerfile = worker["build"]["dockerfile"]
        if pool == "http":
            assert dockerfile == "deploy/Dockerfile"
        else:
            assert dockerfile == "deploy/Dockerfile.browser"
            assert {"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 2**30}} in worker["volumes"]
    coordinator = services["coordinator"]
    assert _shoal_command(coordinator["command"]).command == "coordinator"
    assert coordinator["healthcheck"]["test"] == ["CMD", "shoal", "health", "coordinator"]
    assert services["prometheus"]["profiles"] == ["metrics"]


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
    assert re.search(r"^USER shoal$", text, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    for step in _run_steps(dockerfile):
        if step.startswith("useradd "):
            continue
        script = Path(shlex.split(step)[0]).name
        assert (ROOT / "deploy" / script).exists(), step
        assert f"deploy/{script}" in ci, f"CI never runs {script}, which {name} runs"
    assert "playwright install" not in text  # no download a registry mirror cannot serve


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
