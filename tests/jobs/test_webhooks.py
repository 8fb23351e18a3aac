"""The change feed and its webhooks, against a real receiver on a loopback port.

A change is recorded with whatever changed the standing (here: a reviewer's inspection and the
rescore in its transaction); each receiver gets it POSTed with a Standard Webhooks signature, in
order, at least once — also across a receiver that is down for a while and a delivering process
killed mid-POST."""

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from jobs import webhooks as delivery
from registry import changes, db, registration, reviews, webhooks
from registry.rescoring import rescore_in_session
from scoring.decision import StandingSummary
from scoring.model import DecisionKind, Grade

NOW = datetime(2026, 11, 25, 6, tzinfo=UTC)
CODES = ["91140100MA0K000017", "91350100M000100Y43"]


class Receiver:
    """A webhook receiver on 127.0.0.1: records what it gets; answers 503 while `down`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.down = False
        self.hold = threading.Event()  # set: answer; clear: block before answering
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["content-length"]))
                receiver.arrived.set()
                receiver.hold.wait()
                if receiver.down:
                    self.send_response(503)
                else:
                    receiver.received.append((dict(self.headers), data))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()


@pytest.fixture
def receiver(engine):
    r = Receiver()
    yield r
    r.close()
    with engine.begin() as conn:  # each test has its own receivers
        for old in webhooks.receivers(conn):
            webhooks.remove(conn, old.id)


@pytest.fixture(scope="module")
async def companies(db_url):
    engine = db.make_async_engine(db_url, pool_size=1)
    factory = db.session_factory(engine)
    ids = []
    for i, code in enumerate(CODES):
        async with db.transaction(factory, "admin") as s:
            company = await registration.register_company(
                s, registration.CompanyInput(credit_code=code, name=f"热能公司{i}"), "admin"
            )
            await registration.register_project(
                s,
                registration.ProjectInput(
                    code=f"WH-{i}", credit_code=code, name="地热项目", type="MEDIUM_DEEP",
                    city="运城",
                ),
                "admin",
            )  # fmt: skip
            ids.append(company.id)
    await engine.dispose()
    return ids


async def _inspect(db_url, code: str, severity: str, at: datetime) -> None:
    """A reviewer's inspection finding, recorded and rescored in one transaction."""
    engine = db.make_async_engine(db_url, pool_size=1)
    try:
        async with db.transaction(db.session_factory(engine), "reviewer:li") as s:
            inspection = await reviews.record_inspection(
                s,
                reviews.InspectionInput(
                    credit_code=code,
                    inspected_on=at.date(),
                    inspector="李",
                    findings=[{"severity": severity, "description": "回灌井停用"}],
                ),
                "reviewer:li",
            )
            await rescore_in_session(s, [inspection.company_id], now=at, actor="reviewer:li")
    finally:
        await engine.dispose()


def _all_changes(engine) -> list[changes.Change]:
    with engine.connect() as conn:
        page, more = changes.page(conn, after=0, first=changes.MAX_PAGE)
    assert not more
    return page


async def test_a_change_is_recorded_with_its_cause_and_only_when_the_standing_moves(
    engine, db_url, companies
):
    before = _all_changes(engine)
    await _inspect(db_url, CODES[0], "CRITICAL", NOW)
    after = _all_changes(engine)
    (change,) = after[len(before) :]
    assert change.credit_code == CODES[0]
    assert change.current.decision is DecisionKind.BLOCK and change.current.grade is Grade.D
    assert change.current.restricted_until is not None  # the listing the CRITICAL opened
    assert change.changed_at == NOW and change.rulebook_version

    # The same standing again (a second MINOR only lowers the score) is not a change.
    await _inspect(db_url, CODES[0], "MINOR", NOW + timedelta(minutes=1))
    assert _all_changes(engine) == after
    ids = [c.id for c in _all_changes(engine)]
    assert ids == list(range(1, len(ids) + 1))  # gap-free


async def test_receivers_get_every_change_signed_in_order_despite_an_outage(
    engine, db_url, companies, receiver
):
    with engine.begin() as conn:
        added = webhooks.add(conn, name="审批系统", url=receiver.url)
    assert added.secret.startswith("whsec_")
    clock = [NOW]
    receiver.down = True
    await _inspect(db_url, CODES[1], "CRITICAL", NOW)
    report = delivery.deliver(engine, now=lambda: clock[0])
    assert report.delivered == 0 and report.failed_attempts == 1
    with engine.connect() as conn:
        (pending,) = [d for d in webhooks.deliveries(conn) if d.receiver_id == added.id]
    assert pending.status == "PENDING" and pending.attempts == 1 and pending.last_error

    # An hour later the receiver is back: the next pass delivers what waited, in order.
    receiver.down = False
    clock[0] = NOW + timedelta(hours=1)
    delivery.deliver(engine, now=lambda: clock[0])
    events = receiver.events()
    assert [e["data"]["creditCode"] for e in events] == [CODES[1]]
    headers, body = receiver.received[0]
    assert events[0]["type"] == "decision.changed"
    assert (
        headers["webhook-id"]
        == f"geocredit-change-{changes.change_id_of(events[0]['data']['cursor'])}"
    )
    # The signature verifies with the secret, over the id and timestamp sent (the clock of this
    # test is a year in the past, so standardwebhooks' own 5-minute freshness check is skipped).
    expected = Webhook(added.secret).sign(
        headers["webhook-id"],
        datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC),
        body,
    )
    assert headers["webhook-signature"] == expected
    data = events[0]["data"]
    assert data["current"]["decision"] == "BLOCK" and data["previous"] is None
    with engine.connect() as conn:
        page, _ = changes.page(conn, after=changes.change_id_of(data["cursor"]) - 1, first=1)
    assert page[0].credit_code == CODES[1]


async def test_a_delivery_failing_for_a_day_is_marked_failed_and_can_be_sent_again(
    engine, db_url, companies, receiver
):
    with engine.begin() as conn:
        added = webhooks.add(conn, name="下线的系统", url=receiver.url)
    receiver.down = True
    await _inspect(db_url, CODES[0], "CRITICAL", NOW + timedelta(days=2))
    t = NOW + timedelta(days=2)
    delivery.deliver(engine, now=lambda: t)
    t = NOW + timedelta(days=3, minutes=1)  # more than 24 h after the first attempt
    report = delivery.deliver(engine, now=lambda: t)
    assert report.marked_failed == 1
    with engine.connect() as conn:
        failed = [
            d for d in webhooks.deliveries(conn, failed_only=True) if d.receiver_id == added.id
        ]
    assert len(failed) == 1 and failed[0].status == "FAILED"

    receiver.down = False
    report = delivery.deliver(engine, retry_failed=True)
    assert report.delivered >= 1
    assert CODES[0] in [e["data"]["creditCode"] for e in receiver.events()]


async def test_a_delivering_process_killed_mid_post_loses_nothing(
    engine, db_url, companies, receiver
):
    with engine.begin() as conn:
        added = webhooks.add(conn, name="重启的系统", url=receiver.url)
        summary = StandingSummary(DecisionKind.RESTRICT, Grade.C, 70.0, None)
        for company_id in companies:
            changes.record(
                conn, {company_id: summary}, at=NOW, rulebook_version="2026.1", actor="test"
            )
    with engine.connect() as conn:
        pending = [d for d in webhooks.deliveries(conn) if d.receiver_id == added.id]
    assert pending and all(d.status == "PENDING" for d in pending)

    receiver.hold.clear()  # the first POST hangs until the process is killed
    env = os.environ | {"GEOCREDIT_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "webhook", "deliver"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receiver.arrived.wait(60), "the delivering process never POSTed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    with engine.connect() as conn:
        assert {d.status for d in webhooks.deliveries(conn) if d.receiver_id == added.id} == {
            "PENDING"
        }
    receiver.hold.set()  # the killed process's request may still land: a duplicate, allowed

    delivery.deliver(engine)
    got = [e["data"]["cursor"] for e in receiver.events()]
    assert list(dict.fromkeys(got)) == [
        changes.cursor_of(d.change_id) for d in sorted(pending, key=lambda d: d.change_id)
    ]


def test_a_receiver_needs_an_http_url_and_a_name(engine):
    with engine.begin() as conn:
        for name, url in (("x", "ftp://example.org"), ("x", "not a url"), (" ", "http://a.b")):
            with pytest.raises(webhooks.WebhookError):
                webhooks.add(conn, name=name, url=url)


def test_cursors_are_checked():
    assert changes.change_id_of(changes.cursor_of(42)) == 42
    for bad in ("", "abc", changes.cursor_of(1)[:-2] + "!!"):
        with pytest.raises(changes.InvalidCursor):
            changes.change_id_of(bad)


def test_removed_receivers_get_nothing_more(engine):
    with engine.begin() as conn:
        added = webhooks.add(conn, name="临时", url="http://127.0.0.1:9/none")
        webhooks.remove(conn, added.id)
        with pytest.raises(webhooks.WebhookError):
            webhooks.remove(conn, added.id)
        assert added.id not in [r.id for r in webhooks.receivers(conn)]
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("webhook_delivery")


def test_the_webhook_commands(db_url, tmp_path):
    env = os.environ | {"GEOCREDIT_DATABASE_URL": db_url, "GEOCREDIT_DATA_DIR": str(tmp_path)}

    def geocredit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "api", "webhook", *args],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    added = geocredit("add", "--url", "https://approval.example/hook", "--name", "审批系统")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) > 40
    (receiver,) = [
        r for r in json.loads(geocredit("list", "--json").stdout) if r["name"] == "审批系统"
    ]
    assert receiver["url"] == "https://approval.example/hook" and "secret" not in receiver
    assert json.loads(geocredit("deliveries", "--failed", "--json").stdout) == []
    assert geocredit("remove", str(receiver["id"])).returncode == 0
    again = geocredit("remove", str(receiver["id"]))
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    bad = geocredit("add", "--url", "ftp://x", "--name", "x")
    assert bad.returncode == 1 and "is not an http(s) URL" in bad.stderr
