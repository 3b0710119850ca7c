"""deploy/kubernetes, checked offline: `kubectl kustomize` renders the base and the example
overlay, every object validates (strictly: no unknown field) against the Kubernetes 1.32 API
schemas that the `kubernetes-validate` package ships, and the objects say what
docs/operations.md promises: probes on /livez and /readyz on the port each process listens
on (0.0.0.0 in a pod), a grace period covering each process's drain, a PodDisruptionBudget per
process, resource requests, non-root read-only containers, config from a ConfigMap and
secrets from Secrets, TASKRELAY_SECRET in the API's pods only, and commands the CLI parses."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.cli import build_parser
from shared.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = "1.32"
"""The oldest Kubernetes the manifests are written for (PodDisruptionBudget policy/v1, the
`kubectl` here is 1.32)."""
PROCESSES = {"api": 8000, "relay": 8001, "worker": 8002}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (kubectl kustomize)"
)


def render(directory: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(name="base", scope="module")
def base_fixture() -> list[dict[str, Any]]:
    return render("deploy/kubernetes")


@pytest.fixture(name="example", scope="module")
def example_fixture() -> list[dict[str, Any]]:
    return render("deploy/kubernetes/overlays/example")


def named(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployment(objects: list[dict[str, Any]], process: str) -> dict[str, Any]:
    return named(objects, "Deployment")[f"taskrelay-{process}"]


@pytest.mark.parametrize("overlay", ["base", "example"])
def test_every_object_validates_against_the_kubernetes_schemas(
    overlay: str, request: pytest.FixtureRequest
) -> None:
    objects: list[dict[str, Any]] = request.getfixturevalue(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_validator_refuses_a_broken_object(base: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(deployment(base, "api"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    broken = copy.deepcopy(deployment(base, "relay"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_each_process_is_probed_where_it_listens(base: list[dict[str, Any]], process: str) -> None:
    pod = deployment(base, process)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == process
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports.values()) == [PROCESSES[process]]
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports[get["port"]] == PROCESSES[process]
    config = named(base, "ConfigMap")
    (config_name,) = config
    env = config[config_name]["data"]
    # Each listens on every address of the pod, as a probe and a scraper from outside need.
    if process == "api":
        assert (args.host, args.port) == ("0.0.0.0", 8000)
    elif process == "relay":
        assert args.health_port == 8001
        assert env["TASKRELAY_RELAY_HEALTH_HOST"] == "0.0.0.0"
    else:
        assert args.metrics_port == 8002
        assert env["TASKRELAY_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_grace_periods_cover_each_process_drain(base: list[dict[str, Any]]) -> None:
    settings = Settings.from_env({})
    grace = {
        p: deployment(base, p)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for p in PROCESSES
    }
    # Every process stops within 30 s of SIGTERM (protocol §2); the API's preStop comes first.
    api = deployment(base, "api")["spec"]["template"]["spec"]["containers"][0]
    pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
    assert grace["api"] >= pre_stop + 25 + 5  # uvicorn's timeout_graceful_shutdown
    assert grace["relay"] >= 30 + 5
    assert grace["worker"] >= 3 + settings.worker.shutdown_grace_seconds + 5  # consumer, jobs
    assert all(seconds >= 35 for seconds in grace.values())


def test_the_relay_runs_twice_and_every_process_has_a_disruption_budget(
    base: list[dict[str, Any]],
) -> None:
    assert deployment(base, "relay")["spec"]["replicas"] == 2
    budgets = named(base, "PodDisruptionBudget")
    for process in PROCESSES:
        selector = deployment(base, process)["spec"]["selector"]["matchLabels"]
        (budget,) = [
            b for b in budgets.values() if b["spec"]["selector"]["matchLabels"] == selector
        ]
        assert budget["spec"].get("minAvailable") == 1 or budget["spec"]["maxUnavailable"] == 1


def test_every_pod_asks_for_resources_and_runs_as_no_one(base: list[dict[str, Any]]) -> None:
    pods = [deployment(base, p)["spec"]["template"]["spec"] for p in PROCESSES]
    pods.append(named(base, "Job")["taskrelay-migrate"]["spec"]["template"]["spec"])
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_the_migration_job_migrates(base: list[dict[str, Any]]) -> None:
    job = named(base, "Job")["taskrelay-migrate"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(container["args"]).command == "migrate"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_config_and_secrets_and_the_token_secret_for_the_api_only(
    example: list[dict[str, Any]],
) -> None:
    secrets = named(example, "Secret")
    configs = named(example, "ConfigMap")
    holding = {name: set(s["data"]) for name, s in secrets.items()}
    (token,) = [name for name, keys in holding.items() if "TASKRELAY_SECRET" in keys]
    (connections,) = [name for name, keys in holding.items() if "DATABASE_URL" in keys]
    assert holding[connections] == {"DATABASE_URL", "AMQP_URL", "REDIS_URL"}
    assert holding[token] == {"TASKRELAY_SECRET"}
    for process in PROCESSES:
        (container,) = deployment(example, process)["spec"]["template"]["spec"]["containers"]
        sources = container["envFrom"]
        assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= set(configs)
        assert [s["secretRef"]["name"] for s in sources if "secretRef" in s] == [connections]
        from_token = [
            e["name"]
            for e in container.get("env", [])
            if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == token
        ]
        assert from_token == (["TASKRELAY_SECRET"] if process == "api" else []), process
    for obj in example:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "taskrelay", obj["metadata"]["name"]


def test_the_overlay_scales_and_swaps_the_image(example: list[dict[str, Any]]) -> None:
    assert deployment(example, "api")["spec"]["replicas"] == 3
    worker = deployment(example, "worker")["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(worker["args"]).processes == 4
    images = {
        c["image"]
        for p in PROCESSES
        for c in deployment(example, p)["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.com/taskrelay:0.1.0"}
