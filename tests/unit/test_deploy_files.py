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
    secret = service["environment"].get("TASKRELAY_SECRET")
    if name == "api":  # the one process that checks tokens (and mints them for `exec`)
        assert secret.startswith("${TASKRELAY_SECRET:?"), secret
    else:  # the relay and the worker (and its content generator) never sign or check one
        assert secret is None, (name, secret)


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
    for needed in (
        "pyproject.toml",
        "README.md",
        "requirements-runtime.lock",
        "requirements-build.lock",
    ):
        assert needed not in ignored


BACKING = ("postgres", "rabbitmq", "redis")


def test_backing_services_take_their_passwords_from_the_environment(
    compose: dict[str, Any],
) -> None:
    text = (ROOT / "compose.yaml").read_text()
    for weak in ("guest:guest", "postgres:postgres", "POSTGRES_PASSWORD: postgres"):
        assert weak not in text, weak
    services = compose["services"]
    required = {
        "postgres": services["postgres"]["environment"]["POSTGRES_PASSWORD"],
        "rabbitmq": services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"],
        "redis": services["redis"]["environment"]["REDISCLI_AUTH"],
    }
    for name, value in required.items():
        assert re.fullmatch(r"\$\{[A-Z_]+_PASSWORD:\?[^}]+\}", value), (name, value)
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"] != "guest"
    for name in TASKRELAY_SERVICES:
        env = services[name]["environment"]
        for variable, scheme in (
            ("DATABASE_URL", "postgresql://postgres:${POSTGRES_PASSWORD:?"),
            ("AMQP_URL", "amqp://taskrelay:${RABBITMQ_PASSWORD:?"),
            ("REDIS_URL", "redis://:${REDIS_PASSWORD:?"),
        ):
            assert env[variable].startswith(scheme), (name, variable)


def test_redis_requires_its_password_without_showing_it(compose: dict[str, Any]) -> None:
    """The password reaches redis-server in a file, never on its command line (which the
    host's process list shows every local user), and the image's entrypoint still drops to the
    redis user."""
    redis = compose["services"]["redis"]
    shell, flag, script = redis["command"]
    assert (shell, flag) == ("sh", "-c")
    assert "requirepass %s" in script
    assert '"$$REDISCLI_AUTH" > /tmp/redis.conf' in script
    assert script.startswith("umask 077 && ")
    start = script.rsplit("exec ", 1)[1].split()
    assert start[:3] == ["docker-entrypoint.sh", "redis-server", "/tmp/redis.conf"], start
    assert "REDIS_PASSWORD" not in " ".join(start)
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]  # REDISCLI_AUTH


def test_redis_is_not_older_than_its_last_fix(compose: dict[str, Any]) -> None:
    version = compose["services"]["redis"]["image"].split(":")[1].split("-")[0]
    assert tuple(map(int, version.split("."))) >= (7, 4, 6)  # CVE-2025-49844


def test_only_the_api_is_published_and_the_backend_is_internal(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api"}
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert compose["networks"]["backend"] == {"internal": True}
    for name in BACKING:
        assert services[name]["networks"] == ["backend"], name
    # The API joins the network its port is published on; the worker one with a way out to a
    # model endpoint (no port published there). Every other service is on `backend` only.
    outside = {"api": ["backend", "frontend"], "worker": ["backend", "egress"]}
    for name, service in services.items():
        assert service["networks"] == outside.get(name, ["backend"]), name
        assert "network_mode" not in service, name
    for name in set(compose["networks"]) - {"backend"}:
        assert "internal" not in compose["networks"][name], name


def test_the_local_ports_overlay_only_adds_ports_on_localhost() -> None:
    overlay = yaml.safe_load((ROOT / "deploy" / "compose.local-ports.yaml").read_text())
    for name, service in overlay["services"].items():
        assert set(service) == {"networks", "ports"}, name
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name


def _requirements(text: str) -> dict[str, str]:
    """`name` (normalised) -> the whole requirement (its line and the continuation lines)."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z])", "\n" + text):
        first = block.strip().split("\n", 1)[0]
        if first and not first.startswith("#"):
            name = re.split(r"[=<> \\]", first, maxsplit=1)[0]
            entries[name.lower().replace("_", "-")] = block
    return entries


@pytest.mark.parametrize("lock", ["requirements-runtime.lock", "requirements-build.lock"])
def test_every_image_dependency_is_pinned_with_its_hashes(lock: str) -> None:
    entries = _requirements((ROOT / lock).read_text())
    assert entries, lock
    for name, block in entries.items():
        assert re.match(rf"^\s*{re.escape(name)}==\S+ \\$", block.lower().replace("_", "-"), re.M)
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), (lock, name)


def test_the_image_installs_only_hash_checked_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n&]*", dockerfile)
    assert installs, dockerfile
    for install in installs:  # each from a hashed lock, or the wheel just built, offline
        assert "--require-hashes" in install or "--no-index" in install, install
    assert "--no-build-isolation" in dockerfile  # no unpinned build backend fetched


def test_the_runtime_lock_pins_what_the_dev_lock_pins() -> None:
    runtime = _requirements((ROOT / "requirements-runtime.lock").read_text())
    dev = (ROOT / "requirements.lock").read_text().lower().replace("_", "-")
    for name, block in runtime.items():
        version = block.split("==", 1)[1].split()[0]
        assert re.search(rf"^{re.escape(name)}=={re.escape(version)}$", dev, re.M), name
