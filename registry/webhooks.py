"""Webhook receivers and their deliveries (the outbox `registry.changes.record` fills).

A receiver gets every decision change recorded after it was added, each POSTed once it is
delivered (jobs/webhooks.py sends them). Receivers and deliveries are operational rows: a
delivery's attempts and status move; the changes themselves are the credit file's."""

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa

from registry.vocabulary import DeliveryStatus

SECRET_PREFIX = "whsec_"


class WebhookError(ValueError):
    """A receiver that cannot be registered or found; the message says why."""


@dataclass(frozen=True, slots=True)
class Receiver:
    id: int
    name: str
    url: str
    secret: str
    after_change_id: int
    created_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Delivery:
    receiver_id: int
    receiver_name: str
    change_id: int
    credit_code: str
    status: str
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "\x00" in url:
        raise WebhookError(f"{url!r} is not an http(s) URL")
    return url


def add(conn: sa.Connection, *, name: str, url: str) -> Receiver:
    """Register a receiver for the changes recorded from now on."""
    name = name.strip()
    if not name or "\x00" in name:
        raise WebhookError("a receiver needs a name")
    row = conn.execute(
        sa.text(
            """
            INSERT INTO webhook_receiver (name, url, secret, after_change_id)
            VALUES (:name, :url, :secret,
                    (SELECT coalesce(max(id), 0) FROM decision_change))
            RETURNING *
            """
        ),
        {"name": name, "url": _check_url(url), "secret": new_secret()},
    ).one()
    return Receiver(**row._mapping)


def receivers(conn: sa.Connection, *, removed: bool = False) -> list[Receiver]:
    rows = conn.execute(
        sa.text(
            "SELECT * FROM webhook_receiver WHERE CAST(:removed AS bool) OR removed_at IS NULL "
            "ORDER BY id"
        ),
        {"removed": removed},
    )
    return [Receiver(**r._mapping) for r in rows]


def remove(conn: sa.Connection, receiver_id: int) -> Receiver:
    """Stop delivering to a receiver; its delivery history stays."""
    row = conn.execute(
        sa.text(
            "UPDATE webhook_receiver SET removed_at = now() "
            "WHERE id = :id AND removed_at IS NULL RETURNING *"
        ),
        {"id": receiver_id},
    ).first()
    if row is None:
        raise WebhookError(f"no active webhook receiver {receiver_id}")
    return Receiver(**row._mapping)


def deliveries(
    conn: sa.Connection, *, failed_only: bool = False, limit: int = 100
) -> list[Delivery]:
    """The newest deliveries (or the failed ones), newest first."""
    rows = conn.execute(
        sa.text(
            f"""
            SELECT d.receiver_id, r.name AS receiver_name, d.change_id, co.credit_code,
                   d.status, d.attempts, d.first_attempt_at, d.next_attempt_at,
                   d.delivered_at, d.last_error
            FROM webhook_delivery d
            JOIN webhook_receiver r ON r.id = d.receiver_id
            JOIN decision_change c ON c.id = d.change_id
            JOIN company co ON co.id = c.company_id
            WHERE NOT CAST(:failed AS bool) OR d.status = '{DeliveryStatus.FAILED}'
            ORDER BY d.change_id DESC, d.receiver_id
            LIMIT :limit
            """
        ),
        {"failed": failed_only, "limit": limit},
    )
    return [Delivery(**r._mapping) for r in rows]


def retry_failed(conn: sa.Connection) -> int:
    """Failed deliveries become pending again, with a new 24-hour retry period."""
    return conn.execute(
        sa.text(
            f"""
            UPDATE webhook_delivery SET status = '{DeliveryStatus.PENDING}', first_attempt_at = NULL,
                   next_attempt_at = NULL
            WHERE status = '{DeliveryStatus.FAILED}'
              AND receiver_id IN (SELECT id FROM webhook_receiver WHERE removed_at IS NULL)
            """
        )
    ).rowcount
