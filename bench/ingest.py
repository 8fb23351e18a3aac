"""Benchmark: `geocredit pull` of ~1M observations end to end, against a raw COPY in the same run.

    .venv/bin/python -m bench.ingest [--wells 700] [--days 5] [--page-size 10000] [--profile]

Starts monitorsim (scenario `bench`, frozen `--now`, seed 7, every row's JSON pregenerated — the
issue's "1M pre-generated observations": the platform's own cost stays off this 2-core machine)
on a loopback port, and pulls its whole feed into a fresh database (GEOCREDIT_DATABASE_URL's
server, else the embedded one in <tmp>/geocredit-bench): Things sync, then every page checked,
converted and merged.
Reports observations/s of the feed; the same rows COPY'd raw (binary) into `observation` of a
second fresh database, and the ratio of the two; the CPU seconds of this process, of the
PostgreSQL backend that stored the rows and of monitorsim; the pull's peak RSS
(resource.getrusage) and its RSS after each tenth of the pages (flat = memory bounded).
Goals: ≥ 100k observations/s and ≥ 0.3 of the raw COPY. `--profile` adds cProfile's top functions.
`--rollup` then times the rollup of everything pulled (daily rows of every datastream-day, the
scenario's ~10 % cumulative meters classified, then the months).
"""

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa

from bench.common import ROOT, drop_database, fresh_database
from jobs import ingest
from jobs.observations import APPLICATION_NAME
from registry import db, heap

NOW = "2026-12-31T00:00:00Z"  # after every row of the bench scenario: the whole feed is visible
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def start_monitorsim(args) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "monitorsim", "serve", "--port", "0", "--seed", "7"]
    command += ["--scenario", "bench", "--now", NOW, "--wells", str(args.wells)]
    command += ["--days", str(args.days), "--page-max", str(args.page_size), "--pregenerate"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("monitorsim serving "):
        proc.kill()
        raise SystemExit(f"monitorsim did not start: {line!r}")
    return proc, line.split()[-1]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process on this machine (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 2**20


def backend_pid(url: str) -> int | None:
    with psycopg.connect(db.libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
        ).fetchone()
    return row[0] if row else None


async def run_pull(url: str, base: str, args, samples: list) -> tuple[ingest.PullResult, dict]:
    """The pull, with the storing backend's pid found once it connects."""
    found: dict = {}

    def progress(result: ingest.PullResult) -> None:
        samples.append((result.pages, rss_mb()))
        if "backend" not in found:
            found["backend"] = backend_pid(url)
        found["backend_cpu"] = cpu_seconds(found["backend"])  # it exits with the pull

    now = datetime.fromisoformat(NOW)  # the feed's rows are checked against the platform's now
    result = await ingest.pull(url, base, page_size=args.page_size, progress=progress, now=now)
    return result, found


def raw_copy(source: str) -> tuple[int, float]:
    """COPY the stored observations (binary) into a second fresh database: rows, seconds."""
    target = fresh_database("raw")
    try:
        data = io.BytesIO()
        with psycopg.connect(db.libpq_url(source)) as conn:
            months = [
                m
                for (m,) in conn.execute(
                    "SELECT DISTINCT date_trunc('month', phenomenon_time AT TIME ZONE 'UTC')::date "
                    "FROM observation"
                )
            ]
            with conn.cursor().copy(
                "COPY (SELECT * FROM observation) TO STDOUT (FORMAT binary)"
            ) as copy:
                for chunk in copy:
                    data.write(chunk)
            rows = conn.execute("SELECT count(*) FROM observation").fetchone()[0]
        with psycopg.connect(db.libpq_url(target), options="-c timezone=UTC") as conn:
            for month in months:
                conn.execute("SELECT geocredit_ensure_observation_partition(%s)", (month,))
            conn.commit()
            view = data.getbuffer()
            started = time.perf_counter()
            with conn.cursor().copy("COPY observation FROM STDIN (FORMAT binary)") as copy:
                for i in range(0, len(view), 1 << 20):
                    copy.write(view[i : i + (1 << 20)])
            conn.commit()
            seconds = time.perf_counter() - started
            del view
        return rows, seconds
    finally:
        drop_database(target)


def time_rollup(url: str) -> str:
    """The rollup of everything pulled, timed: days (from the observations), then months."""
    from jobs.rollup import run_rollup

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            meters = conn.scalar(
                sa.text("SELECT count(*) FROM datastream WHERE accumulation = 'cumulative'")
            )
        stages: dict[str, float] = {}
        started = time.perf_counter()
        result = run_rollup(
            engine, progress=lambda stage, *_: stages.setdefault(stage, time.perf_counter())
        )
        ended = time.perf_counter()
    finally:
        engine.dispose()
    days = stages.get("months", ended) - stages.get("days", started)
    n = result.datastream_days
    return (
        f"rollup of the pulled data: {ended - started:.1f} s — days {days:.1f} s for {n:,} "
        f"datastream-days ({days / max(n, 1) * 1e6:,.0f} µs each; {meters} of the datastreams "
        f"are cumulative meters), months {ended - started - days:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", type=int, default=760)
    parser.add_argument("--days", type=float, default=5)
    parser.add_argument("--page-size", type=int, default=ingest.PAGE_SIZE)
    parser.add_argument("--profile", action="store_true", help="cProfile the pull")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--rollup", action="store_true", help="time the rollup after the pull")
    args = parser.parse_args()

    sim, base = start_monitorsim(args)
    url = fresh_database("ingest")
    try:
        truth = httpx.get(f"{base}/truth", timeout=600).json()["totals"]
        samples: list[tuple[int, float]] = []
        profiler = cProfile.Profile() if args.profile else None
        ours0, sim0 = time.process_time(), cpu_seconds(sim.pid)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        with heap.tuned_for_a_pull():  # as `geocredit pull` runs
            result, backend = asyncio.run(run_pull(url, base, args, samples))
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        ours, sim_cpu = time.process_time() - ours0, cpu_seconds(sim.pid) - sim0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sync = sum(s.seconds for s in result.things)
        feed = wall - sync
        rows, copy_seconds = raw_copy(url)
        rolled = time_rollup(url) if args.rollup else None
    finally:
        sim.terminate()
        sim.wait(10)
        if not args.keep:
            drop_database(url)

    rate, raw = result.rows / feed, rows / copy_seconds
    ok = (
        result.stored == truth["stored"]
        and sum(result.quarantined.values()) == truth["quarantinedRows"]
    )
    tenth = max(1, len(samples) // 10)
    print(f"pull: {result.summary()}")
    print(f"  matches /truth (stored, quarantined): {ok}")
    print(f"  Things sync (first, {result.things[0].written} registry writes): {sync:.1f} s")
    print(f"  feed: {result.rows:,} observations in {feed:.1f} s = {rate:,.0f} observations/s")
    print(f"  end to end: {wall:.1f} s = {result.rows / wall:,.0f} observations/s")
    print(f"raw COPY of the {rows:,} stored rows: {copy_seconds:.1f} s = {raw:,.0f} rows/s")
    print(f"ratio feed / raw COPY: {rate / raw:.2f}   (goals: ≥ 100,000/s, ≥ 0.3)")
    print(
        f"CPU seconds during the pull: this process {ours:.1f}, PostgreSQL backend "
        f"{backend.get('backend_cpu', 0.0):.1f}, monitorsim {sim_cpu:.1f} (wall {wall:.1f})"
    )
    print(
        f"peak RSS {peak:.0f} MiB; RSS by page: "
        + ", ".join(f"{p}: {mb:.0f}" for p, mb in samples[::tenth])
    )
    if rolled:
        print(rolled)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
