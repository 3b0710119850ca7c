"""Figures that work horses produce and their `taskrelay worker` serves (docs/protocol.md §10).

Items are generated in RQ work horses, short-lived forks of the RQ worker processes, while
`/metrics` is served by the worker's supervisor. They meet through prometheus-client's
multiprocess mode: the supervisor gives its RQ processes a directory of their own
(PROMETHEUS_MULTIPROC_DIR), each horse adds to memory-mapped files there, and the supervisor
sums the files when scraped. The files are named after the RQ worker process, not the horse:
RQ runs one horse at a time per process, so they never write at once, and a process that has run
10,000 jobs leaves one set of files, not 10,000 (each scrape reads every file).

The `openai` generator's series (`taskrelay_model_*`, `record_model_request`) are written the
same way, from the same horses. The series are made on first use, in the process that records:
nothing is opened at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
ITEM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 900)


@dataclass(frozen=True, slots=True)
class ItemMetrics:
    items: Counter
    item_seconds: Histogram
    in_flight: Gauge
    turns: Counter
    wait_seconds: Histogram


_items: ItemMetrics | None = None


def _item_metrics() -> ItemMetrics:
    global _items
    if _items is None:
        # registry=None: in multiprocess mode the files are the registry; in-process (a test
        # running a job directly) nothing serves them, and nothing global is touched.
        _items = ItemMetrics(
            Counter(
                "taskrelay_worker_items",
                "Content items whose result was stored, by outcome",
                ["outcome"],
                registry=None,
            ),
            Histogram(
                "taskrelay_worker_item_seconds",
                "Time to generate one content item (generator call to stored result)",
                buckets=ITEM_BUCKETS,
                registry=None,
            ),
            Gauge(
                "taskrelay_worker_items_in_flight",
                "Content items being generated now, over every job of this worker",
                registry=None,
                multiprocess_mode="livesum",
            ),
            Counter(
                "taskrelay_worker_turns",
                "How jobs' turns on a task ended: handed_back (a slice ended while other tasks "
                "waited, or a shutdown), deferred (given to a fairer user's task)",
                ["outcome"],
                registry=None,
            ),
            Histogram(
                "taskrelay_worker_task_wait_seconds",
                "From a task becoming runnable to a job taking it and starting its items",
                buckets=WAIT_BUCKETS,
                registry=None,
            ),
        )
    return _items


def record_item(*, failed: bool, seconds: float) -> None:
    """One item's result was stored (counted once, however often its transaction was tried)."""
    metrics = _item_metrics()
    metrics.items.labels("failed" if failed else "completed").inc()
    metrics.item_seconds.observe(max(0.0, seconds))


def items_in_flight(change: int) -> None:
    """`change` items started (positive) or ended (negative) in this process."""
    _item_metrics().in_flight.inc(change)


def record_turn_end(outcome: str) -> None:
    """A job gave its task back: `handed_back` or `deferred` (never a failure)."""
    _item_metrics().turns.labels(outcome).inc()


def record_wait(seconds: float) -> None:
    """A task waited `seconds` for a worker before its items started."""
    _item_metrics().wait_seconds.observe(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    requests: Counter
    request_seconds: Histogram
    tokens: Counter


_model: ModelMetrics | None = None
MODEL_OUTCOMES = ("ok", "rate_limited", "server_error", "timeout", "malformed", "rejected")


def _model_metrics() -> ModelMetrics:
    global _model
    if _model is None:
        _model = ModelMetrics(
            Counter(
                "taskrelay_model_requests",
                "Model requests by outcome: ok, rate_limited (429), server_error (5xx or a "
                "reset connection), timeout, malformed (an unusable 2xx), rejected (other 4xx)",
                ["outcome"],
                registry=None,
            ),
            Histogram(
                "taskrelay_model_request_seconds",
                "Time of one model request, sent to answered (the wait for a slot excluded)",
                buckets=ITEM_BUCKETS,
                registry=None,
            ),
            Counter(
                "taskrelay_model_tokens",
                "Tokens the provider reported, by kind: prompt or completion",
                ["kind"],
                registry=None,
            ),
        )
    return _model


def record_model_request(
    outcome: str, seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0
) -> None:
    """One model request ended with `outcome` (one of MODEL_OUTCOMES) after `seconds`."""
    metrics = _model_metrics()
    metrics.requests.labels(outcome).inc()
    metrics.request_seconds.observe(max(0.0, seconds))
    if prompt_tokens:
        metrics.tokens.labels("prompt").inc(prompt_tokens)
    if completion_tokens:
        metrics.tokens.labels("completion").inc(completion_tokens)


def write_files_as(process_id: int) -> None:
    """In a process under a metrics directory: name its files (and its forks') `process_id`.

    Call in the RQ worker process's composition root, before any series is made.
    """
    if os.environ.get(MULTIPROC_DIR):
        values.ValueClass = values.MultiProcessValue(lambda: process_id)  # type: ignore[no-untyped-call]


def collect_directory(registry: CollectorRegistry, path: str) -> None:
    """Serve, on `registry`, the sum of what every process wrote under `path`."""
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
