"""Plain HTTP routes for operators: liveness, readiness and Prometheus metrics."""

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from litestar import MediaType, Request, Response, get
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST

from api.context import Services
from api.observability import log
from registry import db
from registry.vocabulary import JobStatus


@dataclass
class Health:
    status: str


@dataclass
class Readiness:
    ready: bool
    database: str  # ok | unreachable
    schema_revision: str | None
    head_revision: str | None
    problems: list[str] = field(default_factory=list)


@get("/healthz", tags=["operations"], summary="Liveness: the process answers.")
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: the database is reachable and its schema is at the code's head revision.",
    responses={
        503: ResponseSpec(Readiness, description="Not ready: `problems` says why."),
    },
)
async def readyz(request: Request) -> Response[Readiness]:
    services: Services = request.app.state.services
    head = request.app.state.head_revision
    current, problems, database = None, [], "ok"
    try:
        # through the pool every request's reads take: ready means they can get a
        # connection and a query answered now
        async with services.reads.connect() as conn:
            current = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    except sa.exc.ProgrammingError:
        problems.append("the database has no schema: run `geocredit migrate`")
    except db.UNREACHABLE as e:  # no pooled connection in time included
        database = "unreachable"
        problems.append(f"database unreachable: {' '.join(str(e).split())[:200]}")
    if database == "ok" and current != head:
        problems.append(f"schema at {current}, code expects {head}: run `geocredit migrate`")
    ready = not problems
    body = Readiness(ready, database, current, head, problems)
    return Response(body, status_code=200 if ready else 503)


_JOB_RUNS = sa.text(
    f"""
    SELECT job,
           max(finished_at) FILTER (WHERE status = '{JobStatus.SUCCEEDED}') AS succeeded,
           max(finished_at) FILTER (WHERE status = '{JobStatus.FAILED}') AS failed
    FROM job_run GROUP BY job
    """
)


async def _refresh_gauges(services: Services) -> None:
    """Ingest lag and job runs live in the database: read them at scrape time."""
    metrics = services.metrics
    async with services.reads.connect() as conn:
        marks = (
            await conn.execute(sa.text("SELECT source, result_time FROM ingest_watermark"))
        ).all()
        jobs = (await conn.execute(_JOB_RUNS)).all()
    now = time.time()
    for source, result_time in marks:
        metrics.ingest_watermark.labels(source).set(result_time.timestamp())
        metrics.ingest_lag.labels(source).set(max(0.0, now - result_time.timestamp()))
    for job, succeeded, failed in jobs:
        if succeeded is not None:
            metrics.job_last_success.labels(job).set(succeeded.timestamp())
        if failed is not None:
            metrics.job_last_failure.labels(job).set(failed.timestamp())


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics: requests and latency per route and GraphQL operation, decisions "
    "by outcome, ingest lag, last job runs.",
    media_type=MediaType.TEXT,
)
async def metrics(request: Request) -> Response[bytes]:
    services: Services = request.app.state.services
    try:
        await _refresh_gauges(services)
    except sa.exc.SQLAlchemyError as e:  # metrics must still answer while the database is down
        log.warning("metrics: database gauges not refreshed", error=str(e).splitlines()[0])
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


ROUTES = [healthz, readyz, metrics]
