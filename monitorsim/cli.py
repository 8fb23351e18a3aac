"""`monitorsim serve …`: start the stand-in monitoring platform.

Exit 0 when stopped with Ctrl-C; a mistake in the options is one line on stderr and exit 2, a
server that cannot start one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Literal

import typer

from .config import DATA_FAULT_KINDS, METER_FAULT_KINDS, Config, parse_time

app = typer.Typer(
    name="monitorsim",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help, as `geocredit --help`
)


class _CannotServe(Exception):
    pass


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (YYYY-MM-DD, local midnight) or an ISO 8601 time"
        ) from None


@app.callback()
def _root() -> None:
    """The stand-in for Shanxi's geothermal monitoring platform: a seeded world of companies,
    projects, wells and 15-minute meter data, served over the OGC SensorThings API 1.1 with
    the faults a real platform has (monitorsim/README.md)."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(
        8765, "--port", metavar="PORT", min=0, max=65535, help="Port to listen on; 0 picks one."
    ),
    seed: int = typer.Option(7, "--seed", metavar="N", help="The same seed, the same world."),
    scenario: Literal["demo", "bench", "faults"] = typer.Option(
        "demo", "--scenario", help="What to generate (monitorsim/README.md)."
    ),
    start: str | None = typer.Option(
        None,
        "--start",
        metavar="TIME",
        help="First interval: a date (local midnight) or an ISO time.",
    ),
    end: str | None = typer.Option(
        None, "--end", metavar="TIME", help="Data ends here (exclusive)."
    ),
    days: float | None = typer.Option(None, "--days", metavar="N", help="Instead of --end."),
    now: str | None = typer.Option(
        None,
        "--now",
        metavar="TIME|wall",
        help="A frozen 'now' (ISO time), or 'wall' for the wall clock (the demo's default).",
    ),
    wells: int | None = typer.Option(
        None, "--wells", metavar="N", min=0, help="At least this many wells (bench: 760)."
    ),
    outage_start: str | None = typer.Option(
        None, "--outage-start", metavar="TIME", help="When the platform outage starts."
    ),
    outage_hours: float | None = typer.Option(
        None, "--outage-hours", metavar="H", help="How long it lasts; 0: none (default 6; bench 0)."
    ),
    outage_backfill_hours: str | None = typer.Option(
        None,
        "--outage-backfill-hours",
        metavar="H|never",
        help="The outage's data arrives this many hours after it, or never "
        "(default: faults 26, others never).",
    ),
    gap_fraction: float = typer.Option(
        0.15, "--gap-fraction", metavar="F", help="Share of slots missing for metering_gaps."
    ),
    data_fault: list[str] = typer.Option(
        [],
        "--data-fault",
        metavar="KIND=RATE",
        help=f"Per-row rate of a data fault (repeatable): {', '.join(DATA_FAULT_KINDS)}.",
    ),
    no_data_faults: bool = typer.Option(False, "--no-data-faults", help="Every data fault rate 0."),
    meter_fault: list[str] = typer.Option(
        [],
        "--meter-fault",
        metavar="KIND=RATE",
        help="Per-reading rate of a cumulative meter fault (repeatable): "
        f"{', '.join(METER_FAULT_KINDS)}.",
    ),
    meter_silence_hours: float = typer.Option(
        48.0, "--meter-silence-hours", metavar="H", help="How long a meter_silence lasts."
    ),
    registry_change: list[str] = typer.Option(
        [],
        "--registry-change",
        metavar="JSON",
        help='A registry change mid-season (repeatable), e.g. {"at": "2026-01-10", '
        '"project": "CODE", "operating": false} or {..., "projectType": "CLOSED_LOOP"}.',
    ),
    http_faults: str = typer.Option(
        "{}", "--http-faults", metavar="JSON", help="HTTP faults, as for POST /faults."
    ),
    page_max: int = typer.Option(
        10_000, "--page-max", metavar="N", min=1, help="Cap of $top on Observations."
    ),
    pregenerate: bool = typer.Option(
        False,
        "--pregenerate",
        help="Write every row's JSON before serving (~140 bytes a row): pages then cost nothing.",
    ),
) -> None:
    """Generate a scenario and serve it over SensorThings 1.1.

    Prints `monitorsim serving URL` on stdout once it listens (statistics go to stderr) and
    serves until Ctrl-C."""
    config = config_from_options(
        scenario=scenario,
        seed=seed,
        start=start,
        end=end,
        days=days,
        now=now,
        wells=wells,
        outage_start=outage_start,
        outage_hours=outage_hours,
        outage_backfill_hours=outage_backfill_hours,
        gap_fraction=gap_fraction,
        data_fault=data_fault,
        no_data_faults=no_data_faults,
        meter_fault=meter_fault,
        meter_silence_hours=meter_silence_hours,
        registry_change=registry_change,
        http_faults=http_faults,
        page_max=page_max,
    )
    from .server import serve as serve_world

    try:
        serve_world(config, host=host, port=port, pregenerate=pregenerate)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise _CannotServe(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def _rates(items: list[str], option: str) -> dict[str, float]:
    rates = {}
    for item in items:
        kind, _, rate = item.partition("=")
        try:
            rates[kind.strip()] = float(rate)
        except ValueError:
            raise typer.BadParameter(f"{item!r} is not KIND=RATE", param_hint=option) from None
    return rates


def config_from_options(
    *,
    scenario: str = "demo",
    seed: int = 7,
    start: str | None = None,
    end: str | None = None,
    days: float | None = None,
    now: str | None = None,
    wells: int | None = None,
    outage_start: str | None = None,
    outage_hours: float | None = None,
    outage_backfill_hours: str | None = None,
    gap_fraction: float = 0.15,
    data_fault: list[str] = (),
    no_data_faults: bool = False,
    meter_fault: list[str] = (),
    meter_silence_hours: float = 48.0,
    registry_change: list[str] = (),
    http_faults: str = "{}",
    page_max: int = 10_000,
) -> Config:
    """The resolved Config of `serve`'s options (as their text); a bad value is a
    typer.BadParameter naming it."""
    faults = dict.fromkeys(DATA_FAULT_KINDS, 0.0) if no_data_faults else {}
    faults.update(_rates(list(data_fault), "--data-fault"))
    backfill: float | None = -1.0
    if outage_backfill_hours is not None:
        never = outage_backfill_hours.strip().lower() in ("never", "none", "")
        try:
            backfill = None if never else float(outage_backfill_hours)
        except ValueError:
            raise typer.BadParameter(
                f"{outage_backfill_hours!r} is not a number of hours or never",
                param_hint="--outage-backfill-hours",
            ) from None
    wall = now is not None and now.strip().lower() == "wall"
    try:
        http = json.loads(http_faults)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"not JSON: {e}", param_hint="--http-faults") from None
    if not isinstance(http, dict):
        raise typer.BadParameter("give a JSON object", param_hint="--http-faults")
    changes = []
    for text in registry_change:
        try:
            changes.append(json.loads(text))
        except json.JSONDecodeError as e:
            raise typer.BadParameter(f"not JSON: {e}", param_hint="--registry-change") from None
    try:
        return Config(
            scenario=scenario,
            seed=seed,
            start=_time(start),
            end=_time(end),
            days=days,
            now=None if now is None or wall else _time(now),
            wall_clock=True if wall else None,
            wells=wells,
            outage_start=_time(outage_start),
            outage_hours=outage_hours,
            outage_backfill_hours=backfill,
            gap_fraction=gap_fraction,
            data_faults=faults,
            meter_faults=_rates(list(meter_fault), "--meter-fault"),
            meter_silence_hours=meter_silence_hours,
            registry_changes=changes,
            http_faults=http,
            page_max=page_max,
        ).resolved()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    try:
        result = app(args=argv, prog_name="monitorsim", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.TyperException as e:  # a mistake in the command line
        if type(e).__name__ == "NoArgsIsHelpError":  # `monitorsim` alone: its help
            print(e.format_message(), file=sys.stderr)
            return e.exit_code
        ctx: Any = getattr(e, "ctx", None)
        see = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        message = " ".join(e.format_message().replace("Value error, ", "").split())
        print(f"monitorsim: error: {message}{see}", file=sys.stderr)
        return e.exit_code
    except _CannotServe as e:
        print(f"monitorsim: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
