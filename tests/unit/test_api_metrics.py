"""The API's request series: one per (method, route template, status), bounded."""

from __future__ import annotations

from services.api.observability import ApiMetrics

RETRY = "/api/v1/tasks/{task_id:uuid}/retry"


def sample(metrics: ApiMetrics, name: str, labels: dict[str, str]) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


def test_each_answer_is_counted_and_timed_in_its_series() -> None:
    metrics = ApiMetrics()
    metrics.answered("POST", RETRY, 202, 0.004)
    metrics.answered("POST", RETRY, 202, 0.2)
    metrics.answered("POST", RETRY, 409, 0.003)
    labels = {"method": "POST", "route": RETRY, "status": "202"}
    assert sample(metrics, "taskrelay_http_requests_total", labels) == 2
    assert sample(metrics, "taskrelay_http_request_seconds_count", labels) == 2
    assert sample(metrics, "taskrelay_http_request_seconds_bucket", {**labels, "le": "0.005"}) == 1
    conflict = {**labels, "status": "409"}
    assert sample(metrics, "taskrelay_http_requests_total", conflict) == 1


def test_methods_a_client_makes_up_share_one_series() -> None:
    metrics = ApiMetrics()
    for n in range(50):
        metrics.answered(f"MADEUP{n}", "unmatched", 405, 0.001)
    other = {"method": "OTHER", "route": "unmatched", "status": "405"}
    assert sample(metrics, "taskrelay_http_requests_total", other) == 50
    methods = {
        s.labels["method"]
        for family in metrics.registry.collect()
        if family.name == "taskrelay_http_requests"
        for s in family.samples
    }
    assert methods == {"OTHER"}
