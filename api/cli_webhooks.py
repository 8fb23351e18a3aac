"""`geocredit webhook …`: receivers of decision changes (registry/webhooks.py) and delivery
passes (jobs/webhooks.py). docs/api.md says what a receiver gets and how to verify it."""

from __future__ import annotations

import json

import typer
from rich.table import Table

webhooks_app = typer.Typer()
webhook_app = typer.Typer(
    no_args_is_help=True, help="Webhook receivers of decision changes (Standard Webhooks)."
)
webhooks_app.add_typer(webhook_app, name="webhook")

_JSON = typer.Option(False, "--json", help="Print JSON (one object per line).")


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


def _local(value) -> str:
    from scoring.rulebook import load_rulebook

    return "" if value is None else f"{value.astimezone(load_rulebook().zone):%Y-%m-%d %H:%M:%S}"


@webhook_app.command("add")
def add(
    url: str = typer.Option(..., "--url", help="Where to POST each change (http or https)."),
    name: str = typer.Option(..., "--name", help="Who receives, e.g. the approval system."),
) -> None:
    """Register a receiver for the changes recorded from now on; its signing secret is
    printed once, alone on the last line of stdout."""
    from registry import webhooks

    cli = _cli()
    with cli._engine().begin() as conn:
        try:
            receiver = webhooks.add(conn, name=name, url=url)
        except webhooks.WebhookError as exc:
            raise cli.CliError(str(exc)) from None
    cli.err.print(f"receiver {receiver.id} ({receiver.name}, {receiver.url}); signing secret:")
    print(receiver.secret)


@webhook_app.command("list")
def list_receivers(
    removed: bool = typer.Option(False, "--removed", help="Include removed receivers."),
    as_json: bool = _JSON,
) -> None:
    """The receivers (without their secrets)."""
    from registry import webhooks

    cli = _cli()
    with cli._engine().connect() as conn:
        rows = webhooks.receivers(conn, removed=removed)
    if as_json:
        for r in rows:
            print(
                json.dumps(
                    {
                        "id": r.id,
                        "name": r.name,
                        "url": r.url,
                        "afterChange": r.after_change_id,
                        "createdAt": r.created_at.isoformat(),
                        "removedAt": None if r.removed_at is None else r.removed_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("id", "name", "url", "added", "removed")
    for r in rows:
        table.add_row(str(r.id), r.name, r.url, _local(r.created_at), _local(r.removed_at))
    cli.out.print(table if rows else "no webhook receivers")


@webhook_app.command("remove")
def remove(receiver_id: int = typer.Argument(..., help="The receiver's id.")) -> None:
    """Stop delivering to a receiver (its delivery history stays)."""
    from registry import webhooks

    cli = _cli()
    with cli._engine().begin() as conn:
        try:
            receiver = webhooks.remove(conn, receiver_id)
        except webhooks.WebhookError as exc:
            raise cli.CliError(str(exc)) from None
    cli.err.print(f"receiver {receiver.id} ({receiver.name}) removed")


@webhook_app.command("deliveries")
def deliveries(
    failed: bool = typer.Option(False, "--failed", help="Only deliveries given up on."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many to show."),
    as_json: bool = _JSON,
) -> None:
    """The newest deliveries, newest first."""
    from registry import webhooks

    cli = _cli()
    with cli._engine().connect() as conn:
        rows = webhooks.deliveries(conn, failed_only=failed, limit=limit)
    if as_json:
        for d in rows:
            print(
                json.dumps(
                    {
                        "receiverId": d.receiver_id,
                        "receiver": d.receiver_name,
                        "change": d.change_id,
                        "creditCode": d.credit_code,
                        "status": d.status,
                        "attempts": d.attempts,
                        "nextAttemptAt": None
                        if d.next_attempt_at is None
                        else d.next_attempt_at.isoformat(),
                        "deliveredAt": None
                        if d.delivered_at is None
                        else d.delivered_at.isoformat(),
                        "lastError": d.last_error,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(
        "receiver", "change", "company", "status", "attempts", "next / delivered", "error"
    )
    for d in rows:
        when = _local(d.delivered_at) if d.status == "DELIVERED" else _local(d.next_attempt_at)
        table.add_row(
            d.receiver_name, str(d.change_id), d.credit_code, d.status, str(d.attempts), when,
            d.last_error or "",
        )  # fmt: skip
    cli.out.print(table if rows else "no deliveries")


@webhook_app.command("deliver")
def deliver(
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Send deliveries given up on again first."
    ),
) -> None:
    """One delivery pass now: every pending delivery of every receiver, in order, stopping
    for a receiver only at its first failure."""
    from jobs import webhooks as delivery

    cli = _cli()
    report = delivery.deliver(cli._engine(), retry_failed=retry_failed)
    cli.err.print(
        f"delivered {report.delivered}, failed attempts {report.failed_attempts}, "
        f"given up {report.marked_failed}"
        + (f"; waiting: {', '.join(report.receivers_waiting)}" if report.receivers_waiting else "")
    )
