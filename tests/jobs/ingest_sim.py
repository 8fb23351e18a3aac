"""monitorsim as the ingest tests use it: a real server process on a loopback port."""

import contextlib
import math
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

from registry import db

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def monitorsim(*args: str) -> Iterator[str]:
    """`monitorsim serve --port 0 ARGS` in its own process; yields its base URL."""
    command = [sys.executable, "-m", "monitorsim", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        [*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("monitorsim serving "), f"monitorsim did not start: {line!r}"
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)


def get(base: str, path: str) -> dict:
    return httpx.get(base + path, timeout=300).json()


def faults(base: str, **changes) -> dict:
    return httpx.post(base + "/faults", json=changes, timeout=30).json()


def stored_by_datastream(url: str) -> dict[str, tuple[int, float]]:
    """platform id -> (observations, fsum of their latest revisions)."""
    with psycopg.connect(db.libpq_url(url)) as conn:
        rows = conn.execute(
            """
            SELECT d.platform_id, o.value
            FROM (SELECT DISTINCT ON (datastream_id, phenomenon_time) datastream_id, value
                  FROM observation ORDER BY datastream_id, phenomenon_time, revision DESC) o
            JOIN datastream d ON d.id = o.datastream_id
            """
        ).fetchall()
    values: dict[str, list[float]] = defaultdict(list)
    for platform_id, value in rows:
        values[platform_id].append(value)
    return {ds: (len(v), math.fsum(v)) for ds, v in values.items()}


def quarantined_by_datastream(url: str, ignore: frozenset[int] = frozenset()) -> dict[str, Counter]:
    """platform id -> reason -> rows, leaving out the rows whose @iot.id is in `ignore`."""
    with psycopg.connect(db.libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT datastream_platform_id, reason, count(*) FROM quarantine "
            "WHERE platform_obs_id IS NULL OR NOT platform_obs_id = ANY(%s) GROUP BY 1, 2",
            (list(ignore),),
        ).fetchall()
    out: dict[str, Counter] = defaultdict(Counter)
    for ds, reason, n in rows:
        out[ds][reason] = n
    return out


def assert_matches_truth(url: str, truth: dict, ignore: frozenset[int] = frozenset()) -> None:
    """Stored observations and the quarantine equal monitorsim's /truth, datastream by datastream
    (quarantined rows whose @iot.id is in `ignore`, which /truth knows nothing of, left out)."""
    stored = stored_by_datastream(url)
    quarantined = quarantined_by_datastream(url, ignore)
    for ds, expected in truth["datastreams"].items():
        n, total = stored.get(ds, (0, 0.0))
        assert n == expected["stored"], f"datastream {ds}: {n} stored, truth {expected['stored']}"
        assert math.isclose(total, expected["sum"], rel_tol=1e-12, abs_tol=1e-9), (
            f"datastream {ds}: sum {total!r}, truth {expected['sum']!r}"
        )
        assert dict(quarantined.get(ds, {})) == expected["quarantined"], f"datastream {ds}"
    assert set(stored) <= set(truth["datastreams"])
    assert set(quarantined) <= set(truth["datastreams"])


def table_state(url: str) -> dict:
    """Everything the ingest writes, for before/after comparisons."""
    with psycopg.connect(db.libpq_url(url)) as conn:
        return {
            "observation": conn.execute(
                "SELECT well_id, datastream_id, phenomenon_time, revision, value, result_time, "
                "platform_obs_id FROM observation ORDER BY 1, 2, 3, 4"
            ).fetchall(),
            "quarantine": conn.execute(
                "SELECT reason, detail, datastream_platform_id, platform_obs_id, "
                "phenomenon_time, result_time, raw FROM quarantine ORDER BY platform_obs_id, reason"
            ).fetchall(),
            "dirty_day": conn.execute("SELECT * FROM dirty_day ORDER BY 1, 2").fetchall(),
            "watermark": conn.execute(
                "SELECT source, result_time, platform_obs_id FROM ingest_watermark"
            ).fetchall(),
            "datastream": conn.execute(
                "SELECT platform_id, well_id, indicator, unit, accumulation FROM datastream "
                "ORDER BY 1"
            ).fetchall(),
        }
