"""Helpers of the API tests: a real `geocredit api` process, a GraphQL client, and credit files
written straight into the registry's tables."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from registry.creditcode import check_char
from registry.models import (
    Appeal,
    Company,
    CompanyVersion,
    CreditFinding,
    FindingEvent,
    Listing,
    ListingEnd,
    ScoreSnapshot,
)

NOW = datetime.now(UTC)


def code(n: int) -> str:
    """A valid unified social credit code, distinct per n."""
    first17 = f"91140100MA{n:07d}"
    return first17 + check_char(first17)


def wait_for(predicate, seconds: float, what: str) -> float:
    """Poll `predicate` until it holds; the seconds it took. Fails after `seconds`."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, f"{what} not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `geocredit api` process on a free port; its stderr (JSON log lines) goes to `log`."""

    db_url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Server":
        self.port = free_port()
        env = {**os.environ, "GEOCREDIT_DATABASE_URL": self.db_url, **self.env}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api",
                "api",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            cwd="/",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # granian's own lines are text
                lines.append(json.loads(line))
        return lines


class GraphQL:
    def __init__(self, url: str) -> None:
        # Idle connections are dropped after 1 s, before the server may close them: reusing
        # one the server is closing fails as "Server disconnected without sending a response".
        self.http = httpx.Client(
            base_url=url, timeout=30, limits=httpx.Limits(keepalive_expiry=1.0)
        )

    def post(self, query: str, variables: dict | None = None, token: str | None = None, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, **({"variables": variables} if variables else {})}
        return self.http.post("/graphql", json=body, headers=headers | kw.pop("headers", {}), **kw)

    def __call__(self, query: str, variables: dict | None = None, token: str | None = None):
        """The response body of a request answered with 200."""
        response = self.post(query, variables, token)
        assert response.status_code == 200, response.text
        return response.json()


def error_codes(body: dict) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or ()]


# ---------------------------------------------------------------- credit files


@dataclass
class FindingSpec:
    rule_id: str = "REINJ_RATIO"
    severity: str = "MAJOR"
    deduction: float = 15
    clause: str = "二(三)1"
    month: date = date(2026, 1, 1)
    final: bool = True
    source: str = "METRICS"
    voided: bool = False
    appealed: bool = False


def _actor(session: Session) -> None:
    session.exec(sa.text("SELECT set_config('geocredit.actor', 'tests', true)"))


def file_company(
    engine: sa.Engine,
    credit_code: str,
    name: str,
    *,
    grade: str | None = None,
    score: float | None = None,
    scored_at: datetime = NOW - timedelta(hours=1),
    findings: list[FindingSpec] = (),
    listing: str | None = None,  # None | "active" | "ended" | "expired"
    listing_min_end: datetime = NOW + timedelta(days=365),
    older_snapshot: str | None = None,  # grade of an earlier snapshot
) -> dict[str, Any]:
    """A company with a credit file, optionally scored and listed; returns the ids written."""
    with Session(engine) as session, session.begin():
        _actor(session)
        company = Company(credit_code=credit_code)
        session.add(company)
        session.flush()
        session.add(CompanyVersion(company_id=company.id, name=name, source="tests"))
        rows = []
        for i, spec in enumerate(findings):
            row = CreditFinding(
                company_id=company.id,
                key=f"{spec.rule_id}:{credit_code}:{spec.month:%Y-%m}:{i}",
                rule_id=spec.rule_id,
                policy_clause=spec.clause,
                severity=spec.severity,
                deduction=spec.deduction,
                window_start=spec.month,
                window_end=spec.month + timedelta(days=27),
                final=spec.final,
                source=spec.source,
                message=f"{name} {spec.month:%Y-%m} {spec.rule_id}",
                evidence={"ratio": 0.81, "month": f"{spec.month:%Y-%m}"},
                rulebook_version="2026.1",
            )
            session.add(row)
            session.flush()
            rows.append(row)
            if spec.voided:
                session.add(
                    FindingEvent(
                        finding_id=row.id, kind="VOIDED", reason="rescored", recorded_by="tests"
                    )
                )
            if spec.appealed:
                session.add(
                    Appeal(
                        company_id=company.id,
                        finding_id=row.id,
                        filed_on=NOW.date(),
                        grounds="meter was replaced",
                        recorded_by="tests",
                    )
                )
        ids = [r.id for r in rows]
        if older_snapshot:
            session.add(
                _snapshot(company.id, older_snapshot, 50, scored_at - timedelta(days=1), ids)
            )
        snapshot = None
        if grade:
            snapshot = _snapshot(company.id, grade, score, scored_at, ids)
            session.add(snapshot)
        listing_row = None
        if listing:
            started = NOW - timedelta(days=30)
            listing_row = Listing(
                company_id=company.id,
                started_at=started,
                min_end=listing_min_end,
                max_end=(NOW - timedelta(days=1))
                if listing == "expired"
                else NOW + timedelta(days=1000),
                critical=True,
                reason="CRITICAL finding",
                finding_ids=ids,
                recorded_by="tests",
            )
            session.add(listing_row)
            session.flush()
            if listing == "ended":
                session.add(
                    ListingEnd(
                        listing_id=listing_row.id,
                        ended_at=NOW - timedelta(days=1),
                        how="LIFTED",
                        reason="tests",
                        recorded_by="tests",
                    )
                )
        session.flush()
        return {
            "company_id": company.id,
            "finding_ids": ids,
            "snapshot": snapshot.id if snapshot else None,
            "listing": listing_row.id if listing_row else None,
        }


def _snapshot(company_id, grade, score, at, finding_ids) -> ScoreSnapshot:
    return ScoreSnapshot(
        company_id=company_id,
        computed_at=at,
        score=score if score is not None else 80,
        grade=grade,
        rulebook_version="2026.1",
        window_start=date(2024, 12, 1),
        window_end=at.date(),
        inputs_digest="tests",
        finding_ids=finding_ids,
    )


def add_snapshot(engine: sa.Engine, company_id: int, grade: str, score: float) -> None:
    with Session(engine) as session, session.begin():
        _actor(session)
        session.add(_snapshot(company_id, grade, score, datetime.now(UTC), []))
