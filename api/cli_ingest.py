"""CLI commands for reading the monitoring platform: pull, monitorsim (logic in jobs/)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer

ingest_app = typer.Typer(rich_markup_mode=None)


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


@ingest_app.command()
def pull(
    page_size: int = typer.Option(
        10_000, "--page-size", min=1, metavar="N", help="Observations asked per page ($top)."
    ),
    platform_url: str | None = typer.Option(
        None,
        "--platform-url",
        metavar="URL",
        help="SensorThings service root (default GEOCREDIT_PLATFORM_URL).",
    ),
) -> None:
    """Sync Things, then read the observation feed to its end.

    As the scheduled pull does, from the stored watermark on (docs/platform.md)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from jobs import ingest
    from jobs.platform import utc_text
    from registry import heap

    cli = _cli()
    if platform_url is not None:
        platform_url = cli.check_platform_url(platform_url, "--platform-url")
    cli._engine()
    url = cli.db.database_url()
    key = "manual:" + datetime.now(UTC).isoformat(timespec="microseconds")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=cli.err,
        transient=False,
    ) as bar:
        task = bar.add_task("syncing Things, then reading the feed", total=None)

        def progress(result: ingest.PullResult) -> None:
            mark = utc_text(result.watermark[0])[:16] if result.watermark else "none"
            rate = result.rows / max(bar.tasks[task].elapsed or 0.0, 1e-9)
            quarantined = sum(result.quarantined.values())
            bar.update(
                task,
                description=f"{result.rows:,} rows · {rate:,.0f}/s · {quarantined:,} "
                f"quarantined · up to {mark}",
            )

        try:
            with heap.tuned_for_a_pull():  # this process does nothing else
                result = asyncio.run(
                    ingest.pull_job(key, url, platform_url, page_size=page_size, progress=progress)
                )
        except ingest.PullBusy as exc:
            raise cli.CliError(str(exc)) from None
        except ingest.PullFailed as exc:
            bar.stop()
            _line(f"pull stopped: {exc.result.summary()}")
            raise cli.CliError(
                f"pull incomplete, the watermark stays at the last stored page: {exc}"
            ) from None
    _line(f"pulled {result.summary()}")


def _line(text: str) -> None:
    _cli().out.print(text, markup=False, highlight=False, soft_wrap=True)


@ingest_app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def monitorsim(ctx: typer.Context) -> None:
    """Start the stand-in monitoring platform (monitorsim serve).

    The options are monitorsim serve's: geocredit monitorsim --help lists them."""
    from monitorsim.cli import main

    args = list(ctx.args)
    if args[:1] != ["serve"]:
        args.insert(0, "serve")
    raise typer.Exit(main(args))
