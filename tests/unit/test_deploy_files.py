"""compose.yaml and the Dockerfile, checked without a Docker engine: the YAML loads, every
taskrelay command they run parses with the real CLI, images are pinned, order is enforced by
health conditions, and the image runs as a non-root user from the lock file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
TASKRELAY_SERVICES = {"migrate", "api", "relay-1", "relay-2", "worker"}


@pytest.fixture(name="compose", scope="module")
def compose_fixture() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_has_the_whole_system(compose: dict[str, Any]) -> None:
    backing = {"postgres", "rabbitmq", "redis", "prometheus", "grafana"}
    assert set(compose["services"]) == backing | TASKRELAY_SERVICES


@pytest.mark.parametrize("name", sorted(TASKRELAY_SERVICES))
def test_every_command_parses_with_the_cli(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    args = build_parser().parse_args(service["command"])
    assert args.command == service["command"][0]
    assert service["build"] == "."
    assert service["environment"]["TASKRELAY_SECRET"].startswith("${TASKRELAY_SECRET:?")


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+[\w.-]*", image), (name, image)
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            assert re.match(r"FROM python:3\.11\.\d+-slim-bookworm", line), line


def test_start_order_follows_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "rabbitmq", "redis", "api", "relay-1", "worker", "prometheus"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in TASKRELAY_SERVICES - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["rabbitmq"]["condition"] == "service_healthy", name


def test_image_is_slim_non_root_and_locked() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-runtime.lock" in dockerfile
    assert re.search(r"^USER taskrelay$", dockerfile, re.M)
    assert 'ENTRYPOINT ["taskrelay"]' in dockerfile
    lock = (ROOT / "requirements-runtime.lock").read_text()
    for package in ("litestar", "sqlalchemy", "asyncpg", "aio-pika", "rq", "redis"):
        assert re.search(rf"^{package}==", lock, re.M | re.I), package
    assert not re.search(r"^(pytest|mypy|ruff|schemathesis|playwright)==", lock, re.M | re.I)


def test_every_taskrelay_process_is_scraped_on_the_port_it_serves(compose: dict[str, Any]) -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {"api:8000", "relay-1:8001", "relay-2:8001", "worker:8002"}
    services = compose["services"]
    assert services["api"]["command"][-1] == "8000"
    args = build_parser().parse_args(services["worker"]["command"])
    assert args.metrics_port == 8002
    for name in ("relay-1", "worker"):  # they listen on 127.0.0.1 unless told otherwise
        environment = services[name]["environment"]
        assert "0.0.0.0" in {environment.get(k) for k in environment if k.endswith("_HOST")}
    for name in ("api", "relay-1", "worker"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["grafana"]["volumes"]
    for source in ("./deploy/grafana/provisioning", "./deploy/grafana/dashboards"):
        assert any(mount.startswith(source + ":") for mount in mounts), source
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/taskrelay.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}
    assert datasource["url"] == "http://prometheus:9090"


def test_processes_run_under_an_init_and_rabbitmq_keeps_its_node_name(
    compose: dict[str, Any],
) -> None:
    for name in TASKRELAY_SERVICES:
        assert compose["services"][name]["init"] is True, name
    assert compose["services"]["rabbitmq"]["hostname"] == "rabbitmq"


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "**/__pycache__"} <= ignored
    for needed in ("pyproject.toml", "README.md", "requirements-runtime.lock"):
        assert needed not in ignored
