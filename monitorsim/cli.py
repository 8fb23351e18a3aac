"""``monitorsim serve ...``: start the stand-in monitoring platform."""

from __future__ import annotations

import argparse
import json
import sys

from .config import DATA_FAULT_KINDS, METER_FAULT_KINDS, SCENARIOS, Config, parse_time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitorsim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="generate a scenario and serve it over SensorThings 1.1")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--scenario", choices=SCENARIOS, default="demo")
    s.add_argument("--start", type=parse_time, help="date (local midnight) or ISO time")
    s.add_argument("--end", type=parse_time, help="data ends here (exclusive)")
    s.add_argument("--days", type=float, help="instead of --end")
    s.add_argument(
        "--now", help="frozen 'now' (ISO time), or 'wall' for the wall clock (demo default)"
    )
    s.add_argument("--wells", type=int, help="at least this many wells (bench default 760)")
    s.add_argument("--outage-start", type=parse_time)
    s.add_argument("--outage-hours", type=float, help="0 disables (default 6; bench 0)")
    s.add_argument(
        "--outage-backfill-hours",
        help="outage data arrives this many hours after the outage, or 'never' "
        "(default: faults 26, others never)",
    )
    s.add_argument("--gap-fraction", type=float, default=0.15)
    s.add_argument(
        "--data-fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"per-row rate of a data fault; kinds: {', '.join(DATA_FAULT_KINDS)}",
    )
    s.add_argument("--no-data-faults", action="store_true", help="all data fault rates 0")
    s.add_argument(
        "--meter-fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"per-reading rate of a cumulative meter fault; kinds: {', '.join(METER_FAULT_KINDS)}",
    )
    s.add_argument(
        "--meter-silence-hours", type=float, default=48.0, help="length of a meter_silence"
    )
    s.add_argument("--http-faults", default="{}", help="JSON, as for POST /faults")
    s.add_argument("--page-max", type=int, default=10_000, help="cap of $top on Observations")
    s.add_argument(
        "--pregenerate",
        action="store_true",
        help="write every row's JSON before serving (~140 bytes a row): pages then cost nothing",
    )
    return p


def config_from_args(a: argparse.Namespace) -> Config:
    faults = dict.fromkeys(DATA_FAULT_KINDS, 0.0) if a.no_data_faults else {}
    for item in a.data_fault:
        kind, _, rate = item.partition("=")
        faults[kind.strip()] = float(rate)
    meter_faults = {}
    for item in a.meter_fault:
        kind, _, rate = item.partition("=")
        meter_faults[kind.strip()] = float(rate)
    backfill: float | None = -1.0
    if a.outage_backfill_hours is not None:
        never = a.outage_backfill_hours.strip().lower() in ("never", "none", "")
        backfill = None if never else float(a.outage_backfill_hours)
    wall = a.now is not None and a.now.strip().lower() == "wall"
    return Config(
        scenario=a.scenario,
        seed=a.seed,
        start=a.start,
        end=a.end,
        days=a.days,
        now=None if a.now is None or wall else parse_time(a.now),
        wall_clock=True if wall else None,
        wells=a.wells,
        outage_start=a.outage_start,
        outage_hours=a.outage_hours,
        outage_backfill_hours=backfill,
        gap_fraction=a.gap_fraction,
        data_faults=faults,
        meter_faults=meter_faults,
        meter_silence_hours=a.meter_silence_hours,
        http_faults=json.loads(a.http_faults),
        page_max=a.page_max,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args).resolved()
    except (ValueError, json.JSONDecodeError) as e:
        print(f"monitorsim: {e}", file=sys.stderr)
        return 2
    from .server import serve

    try:
        serve(config, host=args.host, port=args.port, pregenerate=args.pregenerate)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"monitorsim: {e}", file=sys.stderr)
        return 1
    return 0
