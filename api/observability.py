"""Logs (structlog, JSON, one line per event, with the request id) and Prometheus metrics."""

import contextlib
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import values as metric_values
from prometheus_client.metrics import MetricWrapperBase

REQUEST_ID_HEADER = "x-request-id"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""HTTP methods counted by name; any other is counted as `other` (labels are a bounded set)."""
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

log = structlog.get_logger("geocredit.api")

# Tracebacks as JSON, without local variables: they could hold tokens or personal data.
_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our logs and for the libraries' stdlib logging."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            _tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _tracebacks,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO (the webhook pass runs every 10 s): our
    # jobs log what they did themselves, so only its warnings and errors are kept.
    logging.getLogger("apscheduler.executors").setLevel(max(logging.WARNING, root.level))
    # strawberry logs every GraphQL error, expected ones too; api.schema.errors logs the
    # unexpected ones, with the request id.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_metrics(several_workers: bool, parent: Path) -> Iterator[None]:
    """With several worker processes, each counts into files of one folder, and /metrics adds
    them all up (prometheus-client's multiprocess mode): otherwise a scrape would show the
    counters of whichever worker answered it. The folder is made under `parent` (not /tmp,
    whose cleaners could remove it under a running server) before the workers start, and
    removed when the server stops; folders of servers that were killed are removed at the next
    start. An operator's own PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if not several_workers or MULTIPROCESS_DIR in os.environ:
        yield
        return
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob("metrics-*"):
        pid = old.name.removeprefix("metrics-")
        if not pid.isdigit() or not psutil.pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"metrics-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    os.environ[MULTIPROCESS_DIR] = str(folder)
    # prometheus-client picks its value class on import; this process may have imported it.
    previous, metric_values.ValueClass = metric_values.ValueClass, metric_values.get_value_class()
    try:
        yield
    finally:
        metric_values.ValueClass = previous
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(folder, ignore_errors=True)


class Metrics:
    """The service's Prometheus metrics, on a registry of their own (one per app)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "geocredit_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "geocredit_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=r,
        )
        self.graphql_operations = Counter(
            "geocredit_graphql_operations",
            "GraphQL operations by root fields and outcome (ok, error).",
            ["operation", "outcome"],
            registry=r,
        )
        self.graphql_latency = Histogram(
            "geocredit_graphql_operation_duration_seconds",
            "GraphQL operation latency by root fields.",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.decisions = Counter(
            "geocredit_decisions",
            "Decisions answered, by outcome, application kind and source (eligibility, screening).",
            ["decision", "kind", "source"],
            registry=r,
        )
        self.ingest_lag = Gauge(
            "geocredit_ingest_lag_seconds",
            "Age of the newest monitoring data stored (now − watermark resultTime), per feed.",
            ["source"],
            registry=r,
            multiprocess_mode="mostrecent",  # set at scrape time by the worker answering
        )
        self.ingest_watermark = Gauge(
            "geocredit_ingest_watermark_timestamp_seconds",
            "The ingest watermark's resultTime, per feed.",
            ["source"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.job_last_success = Gauge(
            "geocredit_job_last_success_timestamp_seconds",
            "When each job last finished successfully.",
            ["job"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.job_last_failure = Gauge(
            "geocredit_job_last_failure_timestamp_seconds",
            "When each job last failed.",
            ["job"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def exposition(self) -> bytes:
        """The text /metrics answers: this process's metrics, or every worker's added up."""
        if MULTIPROCESS_DIR not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    def labelled(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: prometheus-client takes a lock and builds the
        label key on every `labels` call, several times per request otherwise."""
        key = (metric._name, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give every HTTP request an id (the caller's X-Request-Id when sane), bind it to the logs,
    return it in X-Request-Id with the time the app took (Server-Timing), and count the request
    per route."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed_ms = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                    (b"server-timing", f"app;dur={elapsed_ms:.1f}".encode()),
                ]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            metrics: Metrics | None = scope["litestar_app"].state.get("metrics")
            if metrics is not None:
                route = scope.get("path_template") or "unmatched"
                method = scope["method"] if scope["method"] in METHODS else "other"
                metrics.labelled(metrics.http_requests, method, route, str(status)).inc()
                latency = metrics.labelled(metrics.http_latency, method, route)
                latency.observe(time.perf_counter() - started)

    return middleware
