"""compose.yaml and the Dockerfile, checked without a Docker engine: the YAML loads, every
taskrelay command they run parses with the real CLI, images are pinned, order is enforced by
health conditions, and the image runs as a non-root user from the lock file."""

from __future__ import annotations

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
    assert set(compose["services"]) == {"postgres", "rabbitmq", "redis"} | TASKRELAY_SERVICES


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
        assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", image), (name, image)
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            assert re.match(r"FROM python:3\.11\.\d+-slim-bookworm", line), line


def test_start_order_follows_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "rabbitmq", "redis", "api", "relay-1"):
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
