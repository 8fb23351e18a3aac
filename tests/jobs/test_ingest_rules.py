"""The row rules of the ingest (agreed with monitorsim's /truth), on single rows, no database."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs import validation
from jobs.ingest import EPOCH, Splitter, streams_by_ref
from jobs.platform import parse_feed_page
from tests.jobs.ingest_fake import obs

T = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
STREAMS = [
    # platform id, id, well id, indicator, unit, accumulation
    ("1", 1, 10, "extraction_volume", "m3", "interval"),
    ("2", 2, 10, "reinjection_volume", "L", "interval"),
    ("3", 3, 10, "extraction_volume", "m3", "cumulative"),
    ("4", 4, 10, "water_level", "m", "interval"),
    ("5", 5, 10, "water_temperature", "degC", "interval"),
    ("6", 6, 10, "water_quality_tds", "mg/L", "interval"),
    ("7", 7, 10, "water_quality_ph", "pH", "interval"),
    ("8", 8, 10, "water_temperature", "K", "interval"),
    ("9", 9, 10, "extraction_volume", "gal", "interval"),
]


def split(rows, position=None):
    """Check rows as the pull does: parsed from the page's JSON (typed where they fit)."""
    splitter = Splitter(streams_by_ref(STREAMS), {}, 0, "Asia/Shanghai")
    page = json.dumps({"value": rows}).encode()
    return splitter.split(parse_feed_page(page)["value"], position)


def verdict(ds, result, pt=T, rt=None):
    """(reason or None, canonical value or None) of one row."""
    batch = split([obs(1, ds, pt, result, rt)])
    if batch.quarantine:
        return batch.quarantine[0][0], None
    (row,) = batch.new + batch.merge
    return None, row[3]


@pytest.mark.parametrize(
    "ds, result, expected",
    [
        (1, 12.5, (None, 12.5)),
        (1, 0, (None, 0.0)),
        (1, 10_000, (None, 10_000.0)),
        (1, 10_000.001, ("out_of_range", None)),
        (1, -0.5, ("negative_value", None)),
        (2, 2500.0, (None, 2.5)),  # litres -> m³
        (2, 10_000_000.0, (None, 10_000.0)),
        (2, 10_000_001.0, ("out_of_range", None)),
        (2, -1.0, ("negative_value", None)),
        (3, 987_654.321, (None, 987_654.321)),  # a meter reading is stored as read
        (3, 1e10, (None, 1e10)),
        (3, 1.5e10, ("out_of_range", None)),
        (3, -3.0, ("negative_value", None)),
        (4, -1.8, (None, -1.8)),  # artesian: water above ground
        (4, -100.0, (None, -100.0)),
        (4, -100.5, ("out_of_range", None)),
        (4, 2000.0, (None, 2000.0)),
        (4, 5000.0, ("out_of_range", None)),
        (5, -5.0, (None, -5.0)),
        (5, -5.1, ("out_of_range", None)),
        (5, 150.0, (None, 150.0)),
        (5, 999.9, ("out_of_range", None)),
        (6, 0.0, (None, 0.0)),
        (6, 100_000.0, (None, 100_000.0)),
        (6, 250_000.0, ("out_of_range", None)),
        (6, -1.0, ("out_of_range", None)),
        (7, 7.2, (None, 7.2)),
        (7, 14.0, (None, 14.0)),
        (7, 15.5, ("out_of_range", None)),
        (7, -0.1, ("out_of_range", None)),
        (1, None, ("not_a_number", None)),
        (1, "NaN", ("not_a_number", None)),
        (1, "n/a", ("not_a_number", None)),
        (1, float("nan"), ("not_a_number", None)),
        (1, float("inf"), ("not_a_number", None)),
        (1, True, ("not_a_number", None)),
        (1, [1.0], ("not_a_number", None)),
        (1, "12.5", (None, 12.5)),  # a number sent as text is still a number
        (8, 20.0, ("bad_unit", None)),
        (9, 20.0, ("bad_unit", None)),
        (404, 1.0, ("unknown_datastream", None)),
        ("1", 3.0, (None, 3.0)),  # ids as text or integer
    ],
)
def test_values(ds, result, expected):
    assert verdict(ds, result) == expected


def test_a_missing_result_is_not_a_number():
    row = obs(1, 1, T, 1.0)
    del row["result"]
    assert split([row]).quarantine[0][0] == "not_a_number"


def test_future_time_is_more_than_15_minutes_after_result_time():
    fifteen = timedelta(minutes=15)
    assert verdict(1, 1.0, pt=T + fifteen, rt=T) == (None, 1.0)  # clock skew: still good
    assert verdict(1, 1.0, pt=T + fifteen + timedelta(seconds=1), rt=T)[0] == "future_time"
    assert verdict(1, 1.0, pt=T - timedelta(days=3), rt=T) == (None, 1.0)  # days late: good


@pytest.mark.parametrize(
    "change",
    [
        {"resultTime": "yesterday"},
        {"resultTime": None},
        {"@iot.id": None},
        {"@iot.id": "x1"},
        {"@iot.id": True},
        {"@iot.id": 2**63},  # platform_obs_id is a bigint
        {"@iot.id": -(2**63) - 1},
    ],
)
def test_rows_without_a_valid_result_time_and_id_are_malformed(change):
    batch = split([obs(1, 1, T, 1.0) | change])
    assert [q[0] for q in batch.reread] == ["malformed"]
    assert batch.last is None and not batch.quarantine


@pytest.mark.parametrize(
    "change",
    [{"phenomenonTime": "2026-12-01T12:00:00"}, {"phenomenonTime": 5}, {"Datastream": None}],
)
def test_rows_with_a_valid_pair_but_broken_fields_are_quarantined_and_advance(change):
    batch = split([obs(7, 1, T, 1.0) | change])
    (entry,) = batch.quarantine
    assert entry[0] in ("malformed", "unknown_datastream") and entry[3] == 7
    assert batch.last is not None  # quarantined rows are stored rows: the watermark passes them


def test_not_an_object_is_malformed():
    batch = split(["oops", 5, None])
    assert [q[0] for q in batch.reread] == ["malformed"] * 3


def test_the_quarantine_keeps_the_raw_row_and_its_platform_ids():
    row = obs(42, 1, T, -7.0)
    (entry,) = split([row]).quarantine
    reason, detail, ds, oid, pt, rt, raw = entry
    assert (reason, ds, oid) == ("negative_value", "1", 42)
    assert pt == T and rt == T + timedelta(minutes=2)
    assert '"result":-7.0' in raw and "-7.0" in detail


def test_rows_at_or_below_the_watermark_pair_are_skipped():
    rt = T + timedelta(minutes=2)
    rows = [obs(i, 1, T - timedelta(minutes=15 * i), 1.0, rt) for i in (5, 6, 7)]
    position = (int((rt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6), 6)
    batch = split(rows, position)
    assert batch.overlap == 2 and len(batch.new) == 1
    assert batch.last == (position[0], 7)


def test_phenomenon_time_may_be_an_interval_its_end_counts():
    row = obs(1, 1, T, 1.0)
    row["phenomenonTime"] = "2026-12-01T11:45:00+08:00/2026-12-01T12:00:00+08:00"
    (good,) = split([row]).new
    assert good[2] == int((T - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)


def test_new_and_merge_paths():
    """A row later than anything stored for its datastream is new; the rest are merged."""
    rows = [obs(1, 1, T, 1.0), obs(2, 1, T, 2.0), obs(3, 1, T - timedelta(hours=1), 3.0)]
    batch = split(rows)
    assert [r[3] for r in batch.new] == [1.0]
    assert [r[3] for r in batch.merge] == [2.0, 3.0]


def test_dirty_day_is_the_local_day_of_the_slot_start():
    midnight_local = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 00:00 on 2 Dec in Shanghai
    batch = split([obs(1, 1, midnight_local, 1.0)])
    ((ds, day),) = batch.dirty
    assert ds == 1 and day == datetime(2026, 12, 1).toordinal()  # the 23:45–24:00 slot


def test_thresholds_live_in_one_place():
    assert validation.MAX_INTERVAL_VOLUME_M3 == 10_000
    assert validation.MAX_METER_READING_M3 == 1e10
    assert validation.MAX_FUTURE_US == 15 * 60 * 10**6


# ---------------------------------------------------------------- rows that must not stop a pull

NOW = T + timedelta(hours=1)


def split_at(rows, now=NOW, position=None, raw: bytes | None = None):
    """As `split`, with the clock at `now`; `raw` is the page's body as sent, when given."""
    splitter = Splitter(streams_by_ref(STREAMS), {}, 0, "Asia/Shanghai", clock=lambda: now)
    page = raw if raw is not None else json.dumps({"value": rows}).encode()
    return splitter.split(parse_feed_page(page)["value"], position)


def reasons(batch) -> list[str]:
    return [q[0] for q in batch.quarantine + batch.reread]


@pytest.mark.parametrize("digits", [20, 400, 5000])
def test_an_integer_too_large_for_a_float_is_out_of_range_and_the_page_goes_on(digits):
    huge = "9" * digits
    good = json.dumps(obs(2, 1, T, 1.5))
    poison = json.dumps(obs(1, 1, T, 0)).replace('"result": 0', f'"result": {huge}')
    batch = split_at([], raw=f'{{"value": [{poison}, {good}]}}'.encode())
    assert reasons(batch) == ["out_of_range"]
    assert [r[3] for r in batch.new + batch.merge] == [1.5]
    assert batch.last[1] == 2  # both rows were read: the watermark passes them
    assert huge[:100] in batch.quarantine[0][-1]  # the raw row keeps the number as sent


def test_a_negative_integer_too_large_for_a_float_is_a_negative_volume():
    assert reasons(split_at([obs(1, 1, T, -(10**400))])) == ["negative_value"]


@pytest.mark.parametrize(
    "text", ["0001-01-01T08:00:00+08:00", "1900-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]
)
def test_a_phenomenon_time_before_2000_is_quarantined_and_needs_no_partition(text):
    batch = split_at([obs(1, 1, T, 1.0) | {"phenomenonTime": text}])
    assert reasons(batch) == ["early_time"] and batch.months == set()
    assert batch.last is not None  # read: the watermark passes it


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"])
def test_times_outside_utc_years_1_to_9999_are_malformed(text):
    assert reasons(split_at([obs(1, 1, T, 1.0) | {"phenomenonTime": text}])) == ["malformed"]


def test_a_phenomenon_time_more_than_10_minutes_ahead_of_now_is_quarantined():
    ten = timedelta(minutes=10)
    assert reasons(split_at([obs(1, 1, NOW + ten, 1.0, rt=NOW)])) == []
    late = split_at([obs(1, 1, NOW + ten + timedelta(seconds=1), 1.0, rt=NOW)])
    assert reasons(late) == ["future_time"] and late.months == set()


def test_a_result_time_ahead_of_now_never_moves_the_watermark():
    ten = timedelta(minutes=10)
    due = obs(1, 1, T, 1.0, rt=NOW + ten)  # clock skew: still due
    ahead = obs(2, 1, T + timedelta(minutes=15), 2.0, rt=NOW + ten + timedelta(seconds=1))
    far = obs(3, 1, datetime(2099, 1, 1, tzinfo=UTC), 3.0, rt=datetime(2099, 1, 1, tzinfo=UTC))
    batch = split_at([due, ahead, far])
    assert [r[3] for r in batch.new] == [1.0]
    assert batch.last == (int((NOW + ten - EPOCH).total_seconds() * 1e6), 1)
    # kept apart: every later pull reads them again, and they are stored once
    assert [(q[0], q[3]) for q in batch.reread] == [("future_time", 2), ("future_time", 3)]
    assert not batch.quarantine and batch.months == {T.date().replace(day=1)}
    # once due, the same row is good
    assert reasons(split_at([ahead], now=NOW + timedelta(minutes=1))) == []


def test_a_page_of_rows_from_the_future_only_leaves_the_watermark_alone():
    far = datetime(2099, 1, 1, tzinfo=UTC)
    batch = split_at([obs(1, 1, far, 1.0, rt=far)], position=(5, 5))
    assert batch.last is None and reasons(batch) == ["future_time"]


@pytest.mark.parametrize(
    "change",
    [
        {"@iot.id": "²"},  # a digit to str.isdigit, not to int()
        {"@iot.id": "1" * 5000},
        {"resultTime": "2026-12-01T04:00:00+99:00"},
        {"result": {"value": 1}},
        {"Datastream": {"@iot.id": [1]}},
        {"phenomenonTime": ["2026-12-01T04:00:00Z"]},
    ],
)
def test_odd_values_anywhere_in_a_row_quarantine_the_row_only(change):
    batch = split_at([obs(1, 1, T, 1.0) | change, obs(2, 1, T + timedelta(minutes=15), 2.0)])
    assert len(reasons(batch)) == 1
    assert [r[3] for r in batch.new] == [2.0]


def test_a_row_whose_checks_fail_unexpectedly_is_quarantined_not_raised(monkeypatch):
    def broken(row, pair, due, batch):
        raise ZeroDivisionError("a bug of ours")

    splitter = Splitter(streams_by_ref(STREAMS), {}, 0, "Asia/Shanghai", clock=lambda: NOW)
    monkeypatch.setattr(splitter, "_verdict", broken)
    page = json.dumps({"value": [obs(1, 1, T, -1.0), obs(2, 1, T, 2.0)]}).encode()
    batch = splitter.split(parse_feed_page(page)["value"], None)
    assert [(q[0], q[1]) for q in batch.reread] == [
        ("malformed", "unreadable row: ZeroDivisionError: a bug of ours")
    ]
    assert [r[3] for r in batch.new] == [2.0]


def test_datastream_ids_that_are_not_plain_digits_are_kept_as_text_only():
    odd = [(ref, i, 10, "water_level", "m", "interval") for i, ref in enumerate(["²", "9" * 5000])]
    streams = streams_by_ref([*odd, ("12", 3, 10, "water_level", "m", "interval")])
    assert set(streams) == {"²", "9" * 5000, "12", 12}
