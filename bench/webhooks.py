"""Benchmark: webhook delivery of decision changes to a local receiver.

    .venv/bin/python -m bench.webhooks [--changes 10000]

Records N decision changes (100 companies, alternating standings) with one receiver registered,
then times one delivery pass (`geocredit webhook deliver`): read the outbox, sign, POST, mark
delivered. The baseline, in the same run, POSTs the same number of same-sized bodies to the same
receiver with a plain httpx client and nothing else: the ratio is what the outbox costs on top of
HTTP itself. The receiver runs in a process of its own (HTTP/1.1 keep-alive, answers 204)."""

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from bench.common import drop_database, fresh_database
from jobs import webhooks as delivery
from registry import changes, db, webhooks
from scoring.decision import StandingSummary
from scoring.model import DecisionKind, Grade

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


def _record(engine: sa.Engine, n: int) -> None:
    summaries = [
        StandingSummary(DecisionKind.BLOCK, Grade.D, 40.0, datetime(2027, 12, 1, tzinfo=UTC)),
        StandingSummary(DecisionKind.ALLOW, Grade.A, 95.0, None),
    ]
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'bench', true)"))
        ids = [
            conn.scalar(
                sa.text("INSERT INTO company (credit_code) VALUES (:c) RETURNING id"),
                {"c": f"B{i:017d}"},
            )
            for i in range(100)
        ]
    at = datetime.now(UTC)
    for round_ in range(n // len(ids)):
        with engine.begin() as conn:
            changes.record(
                conn,
                dict.fromkeys(ids, summaries[round_ % 2]),
                at=at,
                rulebook_version="2026.2",
                actor="bench",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    args = parser.parse_args()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    url = fresh_database("webhooks")
    engine = db.make_engine(url)
    try:
        port = int(receiver.stdout.readline())
        hook = f"http://127.0.0.1:{port}/hook"
        with engine.begin() as conn:
            webhooks.add(conn, name="bench", url=hook)
        _record(engine, args.changes)
        with engine.connect() as conn:
            pending = conn.scalar(sa.text("SELECT count(*) FROM webhook_delivery"))
            sample = next(iter(changes.by_ids(conn, [1]).values()))
        body = delivery.body(sample)

        with httpx.Client(timeout=10) as client:
            started = time.perf_counter()
            for i in range(pending):
                client.post(hook, content=body, headers={"webhook-id": str(i)}).raise_for_status()
            baseline = time.perf_counter() - started

        started = time.perf_counter()
        report = delivery.deliver(engine)
        took = time.perf_counter() - started
        assert report.delivered == pending, report.counts()

        print(f"{pending:,} changes, one receiver")
        print(f"plain POSTs (baseline)   {baseline:6.2f} s  {pending / baseline:8,.0f} /s")
        print(f"webhook deliver          {took:6.2f} s  {pending / took:8,.0f} changes/s")
        print(f"deliver / baseline: {took / baseline:.2f}×")
    finally:
        engine.dispose()
        drop_database(url)
        receiver.terminate()


if __name__ == "__main__":
    main()
