"""Ingest: the platform's global Observations feed into the observation table (docs/platform.md).

A pull syncs Things, then reads the feed from the watermark — the (resultTime, @iot.id) of the
last stored row — page by page, to its end. Each page is checked row by row (Splitter; the rules
are in jobs/validation.py): every rejected row goes to the quarantine with its reason, good rows
are converted to canonical units and stored with the watermark in one transaction
(jobs/observations.py), idempotently on (datastream, phenomenonTime). Memory holds a few pages at
most: page k is stored (in a worker thread) while page k+1 is fetched and checked. A failed pull
leaves the watermark at the last stored page; the next pull resumes there.

No row stops a pull: whatever a row holds, it is stored or quarantined. The watermark is always
a row read whose resultTime is at most 10 minutes ahead of now; a row from further ahead is
quarantined (once) and read again by every pull until it is due, so no later row is skipped.
"""

import asyncio
import contextlib
import gc
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs import runs, validation
from jobs.observations import (
    WATERMARK_SOURCE,
    Batch,
    Busy,
    Store,
    Stored,
    Target,
    month_of,
    to_datetime,
)
from jobs.platform import (
    MAX_ID,
    MIN_ID,
    NextLinkLoop,
    PlatformClient,
    PlatformError,
    as_json_row,
    parse_feed_page,
    utc_text,
)
from jobs.things import SyncResult, sync_things
from jobs.validation import (
    BAD_UNIT,
    EARLY_TIME,
    FUTURE_TIME,
    MALFORMED,
    NOT_A_NUMBER,
    UNKNOWN_DATASTREAM,
)
from registry import db
from registry.settings import get_settings
from scoring.rulebook import load_rulebook

__all__ = ["WATERMARK_SOURCE", "PullBusy", "PullFailed", "PullResult", "pull", "pull_job"]

JOB = "pull"
PAGE_SIZE = 10_000  # $top asked of the platform (it may send fewer)
THINGS_PAGE_SIZE = 1_000
# Rows whose phenomenonTime is older than this before the watermark always take the merge path,
# so that finding the latest stored time per datastream reads only recent partitions.
NEW_PATH_DAYS = 35

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
EARLIEST_US = (validation.EARLIEST - EPOCH) // _US
_MIN_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // _US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // _US

PullBusy = Busy


class PullFailed(RuntimeError):
    """A pull stopped before the end of the feed; `result` says what it stored first."""

    def __init__(self, message: str, result: "PullResult"):
        super().__init__(message)
        self.result = result


@dataclass
class PullResult:
    pages: int = 0
    rows: int = 0  # rows read from the feed, overlap included
    overlap: int = 0  # rows at or below the watermark (already stored), skipped
    stored: int = 0  # new (datastream, phenomenonTime) observations
    revisions: int = 0  # new values for stored ones
    duplicates: int = 0  # good rows that repeated the stored value
    quarantined: Counter = field(default_factory=Counter)
    watermark: tuple[datetime, int] | None = None
    things: list[SyncResult] = field(default_factory=list)
    complete: bool = False  # read to the end of the feed
    error: str | None = None
    seconds: float = 0.0

    def add(self, batch: Batch, rows: int, stored: Stored) -> None:
        """Count a stored page."""
        self.pages += 1
        self.rows += rows
        self.overlap += batch.overlap
        self.stored += stored.stored
        self.revisions += stored.revisions
        self.duplicates += stored.duplicates
        self.quarantined.update(q[0] for q in batch.quarantine)
        self.quarantined.update(q[0] for q in batch.reread)
        if batch.last is not None:
            self.watermark = (to_datetime(batch.last[0]), batch.last[1])

    def counts(self) -> dict:
        """For job_run.counts."""
        return {
            "pages": self.pages,
            "rows": self.rows,
            "overlap": self.overlap,
            "stored": self.stored,
            "revisions": self.revisions,
            "duplicates": self.duplicates,
            "quarantined": dict(sorted(self.quarantined.items())),
            "watermark": None
            if self.watermark is None
            else {"resultTime": utc_text(self.watermark[0]), "@iot.id": self.watermark[1]},
            "things": self.things[-1].things if self.things else None,
            "registry_writes": sum(s.written for s in self.things),
            "things_rejected": len(self.things[-1].rejected) if self.things else 0,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line for people."""
        q = sum(self.quarantined.values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(self.quarantined.items()))
        mark = (
            "none"
            if self.watermark is None
            else f"{utc_text(self.watermark[0])} #{self.watermark[1]}"
        )
        rate = self.rows / self.seconds if self.seconds else 0.0
        return (
            f"{self.rows:,} rows in {self.pages:,} pages ({rate:,.0f}/s): {self.stored:,} stored, "
            f"{self.revisions:,} revisions, {self.duplicates:,} duplicates, {self.overlap:,} "
            f"overlap, {q:,} quarantined{f' ({reasons})' if reasons else ''}; watermark {mark}"
        )


# ---------------------------------------------------------------- rows: check and convert


@dataclass(frozen=True, slots=True)
class Stream:
    """A known datastream: how its rows are checked and where they go."""

    target: Target
    rule: validation.StreamRule
    indicator: str
    unit: str
    divisor: float  # to canonical units (1 for a bad unit: its rows never pass `low`..`high`)
    low: float
    high: float

    @classmethod
    def of(cls, target: Target, indicator: str, unit: str, accumulation: str) -> "Stream":
        rule = validation.stream_rule(indicator, unit, accumulation)
        if rule.divisor is None:
            return cls(target, rule, indicator, unit, 1.0, math.inf, -math.inf)
        return cls(target, rule, indicator, unit, rule.divisor, rule.low, rule.high)


def streams_by_ref(rows: list[tuple]) -> dict:
    """Datastreams by platform id, as text and (where it is one) as an integer: feeds use both."""
    out: dict = {}
    for platform_id, ds_id, well_id, indicator, unit, accumulation in rows:
        stream = Stream.of(Target.of(well_id, ds_id), indicator, unit, accumulation)
        out[platform_id] = stream
        digits = platform_id.isascii() and platform_id.isdigit() and len(platform_id) <= 19
        if digits and str(int(platform_id)) == platform_id:
            out[int(platform_id)] = stream
    return out


SLOT_US = 15 * 60 * 1_000_000  # an observation closes a 15-minute slot


class _Times(dict):
    """ISO 8601 text -> epoch µs, for one page (its rows share times); None when unparseable or
    outside [2000-01-01, `due`], so that only rows within take the fast path."""

    def __init__(self, due: int):
        super().__init__()
        self.due = due

    def __missing__(self, text: str) -> int | None:
        value = _parse_time(text)
        if value is not None and not EARLIEST_US <= value <= self.due:
            value = None
        self[text] = value
        return value


def _parse_time(text: object) -> int | None:
    if type(text) is not str:
        return None
    if "/" in text:  # an interval start/end: the observation closes at its end
        text = text.rpartition("/")[2]
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        return None  # a time without an offset is ambiguous
    us = (t - EPOCH) // _US
    return us if _MIN_US <= us <= _MAX_US else None  # an instant within UTC's years 1-9999


class _Days(dict):
    """phenomenonTime µs -> ordinal of its local day: the day of the slot's start (µs − 15 min)."""

    def __init__(self, timezone: str):
        super().__init__()
        self.zone = ZoneInfo(timezone)

    def __missing__(self, us: int) -> int:
        self[us] = day = (EPOCH + (us - SLOT_US) * _US).astimezone(self.zone).toordinal()
        return day


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def _raw(row: object) -> str:
    """The row as JSON text for the quarantine's jsonb: as received where JSON can say it (an
    integer beyond 64 bits too), else the text of its Python value."""
    try:
        text = orjson.dumps(row).decode()
    except TypeError:
        try:
            text = json.dumps(row, allow_nan=False, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = orjson.dumps(_repr(row)).decode()
    return _clean(text).replace("\\u0000", "\\ufffd")  # nor can jsonb


def _repr(row: object) -> str:
    try:
        return repr(row)[:10_000]
    except (ValueError, RecursionError):  # an integer of more digits than repr writes
        return f"<unprintable {type(row).__name__}>"


def _ref_text(ref: object) -> str | None:
    return None if ref is None else _clean(str(ref))[:200]


class Splitter:
    """Checks pages of the feed against the registry's datastreams (rules: jobs/validation.py).

    `latest` holds, per datastream id, a phenomenonTime (µs) at or after the latest one stored
    (`floor` when none is known): a good row later than it cannot collide with a stored row and
    takes the cheap "new" path. The hint only routes rows; one that is too high merely sends rows
    through the merge.

    `clock` gives "now" for each page: rows may lead it by `validation.MAX_AHEAD_US` at most.
    """

    def __init__(
        self,
        streams: dict,
        latest: dict[int, int],
        floor: int,
        timezone: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.streams = streams
        self.latest = latest
        self.floor = floor
        self.days = _Days(timezone)
        self.clock = clock

    def split(self, rows: list, position: tuple[int, int] | None) -> Batch:
        """Check every row of a page; rows at or below `position` (already stored) are skipped.

        The page's `last` — the watermark once it is stored — is the greatest (resultTime,
        @iot.id) read whose resultTime is due (at most `MAX_AHEAD_US` after now): a row from
        further ahead is quarantined, and read again by later pulls, until it is due."""
        batch = Batch()
        new, merge, dirty = batch.new.append, batch.merge.append, batch.dirty.add
        pts: set[int] = set()
        streams, latest, floor, days = self.streams, self.latest, self.floor, self.days
        due = (self.clock() - EPOCH) // _US + validation.MAX_AHEAD_US
        times = _Times(due)
        if len(days) > 10_000:
            days.clear()
        start = position or (-(2**63), -(2**63))
        last = start
        max_future = validation.MAX_FUTURE_US
        for seq, row in enumerate(rows):
            # The fast path takes a well-formed good row (a FeedRow: jobs/platform.py); `_slow`
            # decides the rest, on the row as received.
            try:
                rt = times[row.resultTime]
                pt = times[row.phenomenonTime]
                oid = row.id
                stream = streams[row.Datastream.id]
                value = row.result
                kind = type(value)
                fast = (
                    rt is not None  # and due (_Times)
                    and pt is not None  # and due, and not before 2000
                    and (kind is float or kind is int)
                    and pt - rt <= max_future
                    and stream.low <= (value := value / stream.divisor) <= stream.high
                )
            except (AttributeError, KeyError, OverflowError):
                fast = False
            if fast:
                pair = (rt, oid)
                if pair <= start:
                    batch.overlap += 1
                    continue
                if pair > last:
                    last = pair
            else:
                try:
                    pair, good = self._slow(as_json_row(row), start, due, batch)
                except Exception as exc:  # whatever a row holds, it must not stop the pull
                    detail = f"unreadable row: {type(exc).__name__}: {exc}"[:300]
                    self._reject(batch, MALFORMED, detail, row)
                    continue
                if pair is not None and pair > last:
                    last = pair
                if good is None:
                    continue
                stream, pt, value = good
            target = stream.target
            ds_id = target.datastream_id
            pts.add(pt)
            if pt > latest.get(ds_id, floor):
                latest[ds_id] = pt
                new((target, seq, pt, value, pair[0], pair[1]))
                dirty((ds_id, days[pt]))
            else:
                merge((target, seq, pt, value, pair[0], pair[1]))
        if last != start:
            batch.last = last
        batch.months = {month_of(pt) for pt in pts}
        return batch

    def _slow(self, row: object, start: tuple[int, int], due: int, batch: Batch) -> tuple:
        """A row off the fast path: (pair, (stream, phenomenon µs, canonical value)) when it is
        good, (pair, None) when it is quarantined, (None, None) when it must not move the
        watermark (skipped as overlap; no valid pair; not due yet)."""
        pair = self._pair(row)
        if pair is None:
            self._reject(batch, MALFORMED, "resultTime or @iot.id missing or invalid", row)
            return None, None
        if pair <= start:
            batch.overlap += 1
            return None, None
        if pair[0] > due:
            detail = f"resultTime {row['resultTime']!r} is more than 10 min ahead of now"[:300]
            self._reject(batch, FUTURE_TIME, detail, row, _ref(row), pair, again=True)
            return None, None
        return pair, self._verdict(row, pair, due, batch)

    def _pair(self, row: object) -> tuple[int, int] | None:
        """(resultTime µs, @iot.id) of a row, None when either is missing or invalid."""
        if not isinstance(row, dict):
            return None
        rt = _parse_time(row.get("resultTime"))
        oid = row.get("@iot.id")
        if type(oid) is str and oid.isascii() and oid.isdigit() and len(oid) <= 19:
            oid = int(oid)
        if rt is None or type(oid) is not int or not MIN_ID <= oid <= MAX_ID:
            return None
        return rt, oid

    def _verdict(self, row: dict, pair: tuple[int, int], due: int, batch: Batch) -> tuple | None:
        """Every rule, in order: (stream, phenomenon µs, canonical value), or None (quarantined)."""
        rt = pair[0]
        ref = _ref(row)
        pt = _parse_time(row.get("phenomenonTime"))
        if pt is None:
            self._reject(batch, MALFORMED, "phenomenonTime missing or invalid", row, ref, pair)
            return None
        if pt < EARLIEST_US:
            detail = f"phenomenonTime {row['phenomenonTime']!r} is before 2000-01-01"[:300]
            self._reject(batch, EARLY_TIME, detail, row, ref, pair, pt)
            return None
        if pt > due:
            detail = f"phenomenonTime {row['phenomenonTime']!r} is more than 10 min ahead of now"
            self._reject(batch, FUTURE_TIME, detail[:300], row, ref, pair, pt)
            return None
        try:
            stream = self.streams.get(ref)
        except TypeError:  # an unhashable id
            stream = None
        if stream is None:
            batch.unknown.add(_ref_text(ref))
            self._reject(batch, UNKNOWN_DATASTREAM, "datastream not registered", row, ref, pair, pt)
            return None
        if stream.rule.divisor is None:
            detail = f"unit {stream.unit!r} is not accepted for {stream.indicator!r}"
            self._reject(batch, BAD_UNIT, detail, row, ref, pair, pt)
            return None
        result = row.get("result")
        value = validation.as_number(result)
        if value is None:
            detail = f"result {_repr(result)[:200]} is not a number"
            self._reject(batch, NOT_A_NUMBER, detail, row, ref, pair, pt)
            return None
        value /= stream.divisor
        problem = validation.check_value(stream.rule, value)
        if problem is not None:
            self._reject(batch, *problem, row, ref, pair, pt)
            return None
        if pt - rt > validation.MAX_FUTURE_US:
            detail = f"phenomenonTime {(pt - rt) / 6e7:.1f} min after resultTime"
            self._reject(batch, FUTURE_TIME, detail, row, ref, pair, pt)
            return None
        return stream, pt, value

    @staticmethod
    def _reject(batch: Batch, reason, detail, row, ref=None, pair=None, pt=None, again=False):
        """Quarantine a row. Rows that later pulls read again — without a valid pair, or not due
        yet — are kept apart: they are stored once however often they are read."""
        rt, oid = pair or (None, None)
        entry = (reason, detail, _ref_text(ref), oid, to_datetime(pt), to_datetime(rt), _raw(row))
        (batch.reread if again or not pair else batch.quarantine).append(entry)


def _ref(row: dict) -> object:
    ds = row.get("Datastream")
    return ds.get("@iot.id") if isinstance(ds, dict) else None


# ---------------------------------------------------------------- the pull


Progress = Callable[["PullResult"], None]


async def pull(
    url: str | None = None,
    platform_url: str | None = None,
    *,
    page_size: int = PAGE_SIZE,
    timezone: str | None = None,
    client: PlatformClient | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    when_locked: Callable[[], Awaitable[None]] | None = None,
) -> "PullResult":
    """Sync Things, then read the feed to its end.

    Raises PullFailed (carrying what was stored before the failure), or PullBusy when another
    pull is running.

    `url` is the database (SQLAlchemy URL; default: the configured one); `platform_url` the
    SensorThings service root (default: GEOCREDIT_PLATFORM_URL). `now` fixes the time rows are
    checked against (default: the clock, at each page). `when_locked` is awaited once this pull
    holds the pull lock, before anything is read. Registry changes the Things sync finds
    take effect at `now` (default: when synced).
    """
    settings = get_settings()
    url = url or db.database_url()
    timezone = timezone or load_rulebook().timezone
    result = PullResult()
    started = time.perf_counter()
    engine = db.make_async_engine(url, pool_size=1, max_overflow=0)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if client is None:
                client = await stack.enter_async_context(
                    PlatformClient(platform_url or settings.platform_url)
                )
            store = stack.enter_context(Store.open(url, timezone))
            if when_locked is not None:
                await when_locked()
            factory = db.session_factory(engine)
            clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
            await _pull(store, factory, client, page_size, clock, timezone, result, progress, now)
    except (PlatformError, psycopg.Error, sa.exc.SQLAlchemyError, OSError) as exc:
        result.error = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise PullFailed(result.error, result) from exc
    finally:
        result.seconds = time.perf_counter() - started
        await engine.dispose()
    return result


async def _pull(
    store: Store,
    factory: async_sessionmaker[AsyncSession],
    client: PlatformClient,
    page_size: int,
    clock: Callable[[], datetime],
    timezone: str,
    result: "PullResult",
    progress: Progress | None,
    synced_at: datetime | None = None,
) -> None:
    result.things.append(await sync_things(factory, client, THINGS_PAGE_SIZE, synced_at))
    mark = await asyncio.to_thread(store.watermark)
    result.watermark = mark
    position = None if mark is None else ((mark[0] - EPOCH) // _US, mark[1])
    since = min(mark[0] if mark else datetime.now(UTC), datetime.now(UTC))
    since -= timedelta(days=NEW_PATH_DAYS)
    splitter = Splitter(
        streams_by_ref(await asyncio.to_thread(store.datastreams)),
        await asyncio.to_thread(store.latest_stored, since),
        (since - EPOCH) // _US,
        timezone,
        clock,
    )
    resynced = False
    storing: asyncio.Task | None = None

    async def store_page(batch: Batch, rows: int) -> tuple[Batch, int, Stored]:
        return batch, rows, await asyncio.to_thread(store.store, batch)

    async def finish_storing() -> None:
        nonlocal storing
        if storing is not None:
            task, storing = storing, None
            result.add(*await task)
            if progress is not None:
                progress(result)

    def check(page, position) -> Batch:
        """Checked and encoded while PostgreSQL still stores the page before."""
        return splitter.split(page.rows, position).encode()

    feed = client.walk(
        client.observations_url(None if mark is None else mark[0], page_size),
        parse=parse_feed_page,
    )
    try:
        async with contextlib.aclosing(feed):
            async for page in feed:
                batch = check(page, position)
                # The page's tuples are freed by now; what the young generations still hold is
                # mostly the HTTP layer's cycles of the page before: collected here, they do not
                # age into full collections (RSS stays flat, 114 MiB; 131 without).
                gc.collect(1)
                if batch.unknown and not resynced:
                    # A well added since the last sync: sync Things once more, then decide.
                    resynced = True
                    await finish_storing()
                    result.things.append(
                        await sync_things(factory, client, THINGS_PAGE_SIZE, synced_at)
                    )
                    splitter.streams = streams_by_ref(await asyncio.to_thread(store.datastreams))
                    batch = check(page, position)
                # Store this page while the next one is fetched and checked.
                await finish_storing()
                storing = asyncio.ensure_future(store_page(batch, len(page.rows)))
                await asyncio.sleep(0)  # let it start: the next page may be ready already
                position = batch.last or position
                if page.loop:
                    await finish_storing()
                    raise NextLinkLoop(page.loop)
            await finish_storing()
    finally:
        if storing is not None:  # a failure elsewhere: let the page in flight finish or fail
            with contextlib.suppress(Exception):
                await finish_storing()
    result.complete = True


async def pull_job(
    window_key: str,
    url: str | None = None,
    platform_url: str | None = None,
    **kw,
) -> "PullResult":
    """A pull recorded in job_run as (JOB, window_key).

    Raises PullBusy when that window already has a run or another pull is running, and PullFailed
    after recording the failure. A pull still RUNNING in job_run when this one holds the pull
    lock was killed: it is marked abandoned.
    """
    url = url or db.database_url()
    engine = db.make_async_engine(url, pool_size=1, max_overflow=0)
    factory = db.session_factory(engine)
    run_id: int | None = None

    async def claim() -> None:
        nonlocal run_id
        run_id = await runs.start_run(factory, JOB, window_key, abandon_running=True)
        if run_id is None:
            raise PullBusy(f"{JOB} {window_key} has run already")

    try:
        try:
            result = await pull(url, platform_url, when_locked=claim, **kw)
        except PullFailed as exc:
            if run_id is not None:
                await runs.finish_run(factory, run_id, exc.result.counts(), error=str(exc))
            raise
        except BaseException as exc:
            if run_id is not None:
                await runs.finish_run(factory, run_id, {}, error=f"{type(exc).__name__}: {exc}")
            raise
        assert run_id is not None
        await runs.finish_run(factory, run_id, result.counts())
        return result
    finally:
        await engine.dispose()
