"""`geocredit webhook …`: receivers of decision changes (registry/webhooks.py) and delivery
passes (jobs/webhooks.py). docs/api.md says what a receiver gets and how to verify it."""

from __future__ import annotations

import typer
from rich.table import Table

from registry.vocabulary import DeliveryStatus

webhooks_app = typer.Typer(rich_markup_mode=None)
webhook_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Webhook receivers of decision changes (Standard Webhooks).",
)
webhooks_app.add_typer(webhook_app, name="webhook")

_JSON = typer.Option(False, "--json", help="Print one JSON list instead of a table.")


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


@webhook_app.command("add", short_help="Register a receiver; prints its secret.")
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
    cli.emit(receiver.secret)


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
        cli.emit_json(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "url": r.url,
                    "afterChange": r.after_change_id,
                    "createdAt": r.created_at,
                    "removedAt": r.removed_at,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        cli.emit("no webhook receivers (geocredit webhook add)")
        return
    table = Table("id", "name", "url", "added", "removed", title=f"times in {cli.local_zone()}")
    for r in rows:
        table.add_row(
            str(r.id), r.name, r.url, cli.local_time(r.created_at), cli.local_time(r.removed_at)
        )
    cli.show(table)


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
        cli.emit_json(
            [
                {
                    "receiverId": d.receiver_id,
                    "receiver": d.receiver_name,
                    "change": d.change_id,
                    "creditCode": d.credit_code,
                    "status": d.status,
                    "attempts": d.attempts,
                    "firstAttemptAt": d.first_attempt_at,
                    "nextAttemptAt": d.next_attempt_at,
                    "deliveredAt": d.delivered_at,
                    "lastError": d.last_error,
                }
                for d in rows
            ]
        )
        return
    if not rows:
        cli.emit("no deliveries")
        return
    table = Table(
        "receiver", "change", "company", "status", "attempts", "next / delivered", "error",
        title=f"times in {cli.local_zone()}",
    )  # fmt: skip
    for d in rows:
        when = d.delivered_at if d.status == DeliveryStatus.DELIVERED else d.next_attempt_at
        table.add_row(
            d.receiver_name, str(d.change_id), d.credit_code, d.status, str(d.attempts),
            cli.local_time(when, seconds=True), d.last_error or "",
        )  # fmt: skip
    cli.show(table)


@webhook_app.command("deliver", short_help="Send what is pending, now.")
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
