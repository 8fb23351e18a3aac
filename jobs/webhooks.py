"""Delivering decision changes to webhook receivers (Standard Webhooks).

One pass drains every pending delivery of every active receiver, oldest change first, and
stops for a receiver at its first failure (so each receiver gets changes in order). A failed
attempt is retried with exponential backoff; after FAIL_AFTER of failures the delivery is
marked FAILED (visible; `geocredit webhook deliver --retry-failed` sends it again) and later
changes go on. Each POST carries `webhook-id` (the same on every retry), `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.

A delivery is marked only after the receiver answered 2xx, so a process killed in between sends
it again: delivery is at least once."""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook

from jobs.runs import job_lock
from registry import changes, webhooks
from registry.vocabulary import DeliveryStatus
from scoring.decision import StandingSummary

log = logging.getLogger(__name__)

EVENT_TYPE = "decision.changed"
FAIL_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=5)
BATCH = 200
TIMEOUT_S = 10.0


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed_attempts: int = 0
    marked_failed: int = 0
    receivers_waiting: list[str] = field(default_factory=list)  # stopped at a failure

    def counts(self) -> dict:
        return {
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "marked_failed": self.marked_failed,
            "receivers_waiting": len(self.receivers_waiting),
        }


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 5 s, 10 s, 20 s… up to 5 minutes."""
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


def message_id(change_id: int) -> str:
    return f"geocredit-change-{change_id}"


def event_data(change: changes.Change) -> dict:
    """The event's `data`: the change as docs/api.md (Webhooks) shapes it (camelCase, ISO 8601
    times with offset)."""

    def summary(s: StandingSummary | None) -> dict | None:
        if s is None:
            return None
        return {
            "decision": s.decision.value,
            "grade": None if s.grade is None else s.grade.value,
            "score": s.score,
            "restrictedUntil": None
            if s.restricted_until is None
            else s.restricted_until.isoformat(),
        }

    return {
        "creditCode": change.credit_code,
        "changedAt": change.changed_at.isoformat(),
        "previous": summary(change.previous),
        "current": summary(change.current),
        "rulebookVersion": change.rulebook_version,
        "cursor": change.cursor,
    }


def body(change: changes.Change) -> bytes:
    event = {
        "type": EVENT_TYPE,
        "timestamp": change.changed_at.isoformat(),
        "data": event_data(change),
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


_PENDING = sa.text(
    f"""
    SELECT d.change_id, d.attempts, d.first_attempt_at, d.next_attempt_at
    FROM webhook_delivery d
    WHERE d.receiver_id = :receiver AND d.status = '{DeliveryStatus.PENDING}'
    ORDER BY d.change_id
    LIMIT :limit
    """
)


def deliver(
    engine: sa.Engine,
    *,
    client: httpx.Client | None = None,
    now=None,
    retry_failed: bool = False,
) -> DeliveryReport:
    """One delivery pass; `now` (a callable giving the time) is for tests."""
    clock = now or (lambda: datetime.now(UTC))
    report = DeliveryReport()
    own_client = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S)
    try:
        if retry_failed:
            with engine.begin() as conn:
                webhooks.retry_failed(conn)
        with engine.connect() as conn:
            active = webhooks.receivers(conn)
        for receiver in active:
            _deliver_to(engine, client, receiver, clock, report)
    finally:
        if own_client:
            client.close()
    return report


def _deliver_to(
    engine: sa.Engine,
    client: httpx.Client,
    receiver: webhooks.Receiver,
    clock,
    report: DeliveryReport,
) -> None:
    signer = Webhook(receiver.secret)
    # Two passes must not send one receiver's changes side by side, out of order.
    with job_lock(engine, f"webhook.{receiver.id}") as held:
        if held is None:
            return
        while True:
            with engine.connect() as conn:
                pending = conn.execute(_PENDING, {"receiver": receiver.id, "limit": BATCH}).all()
                found = changes.by_ids(conn, [p.change_id for p in pending])
            if not pending:
                return
            delivered: list[int] = []
            stopped = False
            for p in pending:
                at = clock()
                if p.next_attempt_at is not None and p.next_attempt_at > at:
                    stopped = True
                    break
                error = _post(client, signer, receiver.url, found[p.change_id], at)
                if error is None:
                    delivered.append(p.change_id)
                    continue
                if not _failed(engine, receiver, p, error, at, report):
                    stopped = True
                    break
            _mark_delivered(engine, receiver.id, delivered, clock())
            report.delivered += len(delivered)
            if stopped:
                report.receivers_waiting.append(receiver.name)
                return


def _post(
    client: httpx.Client, signer: Webhook, url: str, change: changes.Change, at: datetime
) -> str | None:
    """None when the receiver took it (2xx), else what went wrong."""
    data = body(change)
    msg_id = message_id(change.id)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(msg_id, at, data),
    }
    try:
        response = client.post(url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _failed(
    engine: sa.Engine,
    receiver: webhooks.Receiver,
    pending: sa.Row,
    error: str,
    at: datetime,
    report: DeliveryReport,
) -> bool:
    """Record a failed attempt; True when the delivery is given up (marked FAILED)."""
    attempts = pending.attempts + 1
    first = pending.first_attempt_at or at
    give_up = at - first >= FAIL_AFTER
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                UPDATE webhook_delivery SET attempts = :attempts, first_attempt_at = :first,
                       last_attempt_at = :at, next_attempt_at = :next, last_error = :error,
                       status = :status
                WHERE receiver_id = :receiver AND change_id = :change
                """
            ),
            {
                "attempts": attempts,
                "first": first,
                "at": at,
                "next": None if give_up else at + backoff(attempts),
                "error": error,
                "status": DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING,
                "receiver": receiver.id,
                "change": pending.change_id,
            },
        )
    report.failed_attempts += 1
    report.marked_failed += give_up
    log.warning(
        "webhook %s (%s): change %s not delivered (attempt %s): %s",
        receiver.id,
        receiver.name,
        pending.change_id,
        attempts,
        error,
    )
    return give_up


def _mark_delivered(engine: sa.Engine, receiver_id: int, ids: list[int], at: datetime) -> None:
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"""
                UPDATE webhook_delivery SET status = '{DeliveryStatus.DELIVERED}', delivered_at = :at,
                       last_attempt_at = :at, attempts = attempts + 1, last_error = NULL
                WHERE receiver_id = :receiver AND change_id = ANY(:ids)
                """
            ),
            {"at": at, "receiver": receiver_id, "ids": ids},
        )
