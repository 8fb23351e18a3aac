"""The generator: deterministic, realistic in shape, and the scenario knobs do what they say."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from datetime import datetime

import pytest

from monitorsim import Config, build_app
from monitorsim.config import CST, DATA_FAULT_KINDS, SLOT, parse_time
from monitorsim.creditcode import ALPHABET, WEIGHTS, check_char, is_valid
from monitorsim.generator import CITIES, World
from monitorsim.truth import truth
from tests.monitorsim.monitorsim_replay import small_config


@pytest.fixture(scope="module")
def world() -> World:
    return World(small_config())


@pytest.fixture(scope="module")
def season_world() -> World:
    """Demo data in the heating season, from 26 Oct to 25 Nov."""
    return World(Config(scenario="demo", start=parse_time("2026-10-26"), days=30, outage_hours=0))


def _local(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, CST)


def _columns(w: World) -> tuple:
    return (w.rt, w.ds, w.pt, w.val.tobytes(), w.label, w.ids)


def test_same_seed_same_world(world):
    again = World(small_config())
    assert _columns(again) == _columns(world)
    assert [(c.credit_code, c.name) for c in again.companies] == [
        (c.credit_code, c.name) for c in world.companies
    ]
    assert World(small_config(seed=12)).rt != world.rt


def test_credit_codes_are_valid_and_unique():
    w = World(Config(scenario="bench", days=0.1, wells=400))
    codes = [c.credit_code for c in w.companies]
    assert len(set(codes)) == len(codes) > 50
    for company in w.companies:
        code = company.credit_code
        assert is_valid(code), code
        assert len(code) == 18 and set(code) <= set(ALPHABET)
        assert code[2:8] == CITIES[company.city][0]  # the city's administrative division
    assert len({c.name for c in w.companies}) == len(w.companies)


def test_credit_code_check_character():
    assert WEIGHTS == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    assert is_valid("91350100M000100Y43")
    assert check_char("91350100M000100Y4") == "3"
    assert not is_valid("91350100M000100Y44")
    assert not is_valid("91350100M000100Y4")
    assert not is_valid("91350100M000100I43")  # I is not in the alphabet
    assert is_valid(" 91350100m000100y43 ")


def test_every_project_type_and_realistic_datastreams(world):
    types = Counter(p.type for c in world.companies for p in c.projects)
    assert set(types) == {"CLOSED_LOOP", "SHALLOW_WATER_SOURCE", "MEDIUM_DEEP", "DIRECT_USE"}
    units = {
        "extraction_volume": {"m3", "L"},
        "reinjection_volume": {"m3", "L"},
        "water_level": {"m"},
        "water_temperature": {"degC"},
        "water_quality_tds": {"mg/L"},
        "water_quality_ph": {"pH"},
    }
    seen_units, seen_acc = set(), set()
    for company in world.companies:
        for p in company.projects:
            roles = {w.role for w in p.wells}
            if p.type == "CLOSED_LOOP":
                assert roles == {"MONITORING"}
            if p.type == "DIRECT_USE":
                assert "REINJECTION" not in roles
            for well in p.wells:
                assert well.aquifer == p.aquifer  # same layer
                props = {ds.prop for ds in well.datastreams}
                if well.role == "EXTRACTION":
                    assert props == {"extraction_volume", "water_level", "water_temperature"}
                elif well.role == "REINJECTION":
                    assert props == {"reinjection_volume", "water_quality_tds", "water_quality_ph"}
                else:
                    assert props <= {"water_level", "water_temperature"} and props
                for ds in well.datastreams:
                    assert ds.unit in units[ds.prop]
                    assert (ds.accumulation is not None) == ds.is_volume
                    if ds.is_volume:
                        seen_units.add(ds.unit)
                        seen_acc.add(ds.accumulation)
    assert seen_units == {"m3", "L"} and seen_acc == {"interval", "cumulative"}
    idle = [w for c in world.companies for p in c.projects if not p.operating for w in p.wells]
    idle_ds = {ds.id for w in idle for ds in w.datastreams}
    assert idle_ds and not idle_ds & set(world.ds)  # a project not operating sends nothing


def test_feed_is_ordered_with_shared_result_times_and_unordered_ids(world):
    keys = list(zip(world.rt, world.ids, strict=True))
    assert all(a < b for a, b in itertools.pairwise(keys))
    assert len(set(world.ids)) == len(world)
    assert any(a > b for a, b in zip(world.ids, world.ids[1:], strict=False))
    shared = Counter(world.rt)
    assert max(shared.values()) >= 3 and sum(n > 1 for n in shared.values()) > 100


def _project(w: World, role: str, ptype: str | None = None):
    for company in w.companies:
        if company.role == role:
            for p in company.projects:
                if p.operating and (ptype is None or p.type == ptype):
                    return p
    raise AssertionError(role)


def _good_rows(w: World, ds_ids: set[int]):
    for d, p, v, lab in zip(w.ds, w.pt, w.val, w.label, strict=True):
        if d in ds_ids and not lab:
            yield d, p, v


def test_volumes_follow_the_heating_season(season_world):
    w = season_world
    for role, city, first_day in (("low_reinjection_80", "运城", 15), ("compliant", "太原", 1)):
        p = next(
            p
            for c in w.companies
            if c.role == role and c.city == city
            for p in c.projects
            if p.type == "MEDIUM_DEEP"
        )
        assert p.city == city
        ext = {
            ds.id for well in p.wells for ds in well.datastreams if ds.prop == "extraction_volume"
        }
        before, during = [], []
        for _, pt, v in _good_rows(w, ext):
            start = _local(pt - SLOT)  # the interval's start, local time
            in_season = start.month == 11 and start.day >= first_day
            (during if in_season else before).append(v)
        assert before and during
        assert max(before) == 0.0
        mean = sum(during) / len(during)
        assert 20 <= mean <= 100, mean  # m3 per 15 min per extraction well
        assert min(during) > 0


def test_outage_has_no_data_and_backfill_arrives_late(world):
    o = world.outage
    assert len(o) == 24  # 6 hours
    lo, hi = world.t0 + o.start * SLOT, world.t0 + o.stop * SLOT
    late = [rt for rt, pt in zip(world.rt, world.pt, strict=True) if lo < pt <= hi]
    backfill = hi + 26 * 3600
    assert late and all(rt >= backfill for rt in late)
    never = World(small_config(outage_backfill_hours=None))
    assert not [pt for pt in never.pt if lo < pt <= hi]
    assert never.injected["outage_rows"] > 0


def test_metering_gaps_project_misses_its_share(season_world):
    w = season_world
    gappy = _project(w, "metering_gaps")
    fine = _project(w, "compliant", "MEDIUM_DEEP")
    for project, low, high in ((gappy, 0.80, 0.90), (fine, 0.97, 1.0)):
        ext = {ds.id for well in project.wells for ds in well.datastreams if ds.is_volume}
        ext = {d for d in ext if w.datastreams[d].prop == "extraction_volume"}
        slots = {(d, pt) for d, pt, _ in _good_rows(w, ext)}
        completeness = len(slots) / (len(ext) * w.slots)
        assert low <= completeness <= high, (project.code, completeness)


def test_roles_show_in_reinjection_ratios(season_world):
    t = truth(season_world, len(season_world))["projects"]
    assert t[_project(season_world, "low_reinjection_80").code]["ratio"] == pytest.approx(
        0.8, abs=0.02
    )
    none = t[_project(season_world, "no_reinjection").code]
    assert none["extraction"] > 0 and none["reinjection"] == 0
    ok = t[_project(season_world, "compliant", "MEDIUM_DEEP").code]
    assert ok["ratio"] == pytest.approx(1.0, abs=0.02)
    cum = t[_project(season_world, "cumulative_meters").code]
    assert cum["ratio"] == pytest.approx(1.0, abs=0.05)
    assert not [
        p
        for c in season_world.companies
        if c.role == "closed_loop"
        for p in c.projects
        if p.code in t
    ]


def test_cumulative_meter_resets_once(season_world):
    w = season_world
    project = _project(w, "cumulative_meters")
    meter = next(
        ds
        for well in project.wells
        for ds in well.datastreams
        if well.code.endswith("-E01") and ds.is_volume
    )
    assert meter.accumulation == "cumulative"
    readings = sorted((pt, v) for _, pt, v in _good_rows(w, {meter.id}))
    latest = dict(readings)  # corrections: the later row wins; enough for this check
    values = [latest[pt] for pt in sorted(latest)]
    drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
    assert len(drops) >= 1
    assert any(b < 1000 * (1000 if meter.unit == "L" else 1) for _, b in drops)  # from zero
    entry = truth(w, len(w))["datastreams"][str(meter.id)]
    per_slot = entry["volume"] / (entry["stored"] - 1)
    assert 5 < per_slot < 100  # plausible m3 per 15 min averaged over the month


def test_faults_scenario_injects_every_kind(world):
    t = truth(world, len(world))
    assert all(n > 0 for n in t["totals"]["quarantined"].values()), t["totals"]
    assert t["totals"]["duplicates"] > 0 and t["totals"]["corrections"] > 0
    kinds = {k for k, n in world.injected.items() if n > 0}
    assert kinds >= {"late", "duplicate", "correction", "bad_correction", "not_a_number"}
    assert kinds >= {"negative", "out_of_range", "future_time", "clock_skew", "drop"}
    units = {ds.unit for ds in world.datastreams.values()}
    assert "L" in units
    assert any(v < 0 for v, lab in zip(world.val, world.label, strict=True) if not lab)  # artesian
    assert not any(math.isnan(v) for v, lab in zip(world.val, world.label, strict=True) if not lab)


def test_bench_size_and_pages():
    """The bench scenario's size, and a page as rows_json writes it (its speed: bench/feed.py)."""
    app = build_app(Config(scenario="bench", wells=200, days=2))
    w = app.world
    per_well_day = len(w) / len(w.wells) / 2
    assert 240 < per_well_day < 290  # so 1M rows ~ wells x days = 3,800
    for k in range(5):
        i, j = k * 10_000, (k + 1) * 10_000
        text = app.feed.rows_json(i, j)
        assert text.count('"@iot.id":') == 20_000  # 10k rows, each with its datastream's id
        assert json.loads(f"[{text}]") == app.feed.rows(i, j)


def test_default_times_per_scenario():
    bench = Config(scenario="bench").resolved()
    assert bench.start == parse_time("2026-12-01") and bench.wall_clock is False
    assert (bench.end - bench.start).days == 5
    demo = Config(scenario="demo").resolved()
    assert demo.wall_clock is True and demo.now is None
    frozen = Config(scenario="demo", now=parse_time("2026-11-25T06:00:00Z")).resolved()
    assert frozen.wall_clock is False and frozen.start == parse_time("2026-09-26")
    with pytest.raises(ValueError):
        Config(scenario="nope").resolved()
    with pytest.raises(ValueError):
        Config(data_faults={"bogus": 0.1}).resolved()


@pytest.mark.parametrize("scenario", ["faults", "bench"])
def test_pregenerated_pages_are_the_pages(scenario):
    """`monitorsim serve --pregenerate` (the ingest benchmark's) serves exactly the same text."""
    config = small_config() if scenario == "faults" else Config(scenario="bench", days=0.3)
    generated = build_app(config).feed
    pregenerated = build_app(config).feed
    pregenerated.pregenerate(chunk=333)  # chunks that end mid-page
    n = len(generated.world.ids)
    spans = [(0, n), (0, 1), (n - 1, n), (5, 5)]
    spans += [(i, min(n, i + step)) for step in (1, 7, 1000) for i in range(0, n, 331)]
    for i, j in spans:
        assert pregenerated.rows_json(i, j) == generated.rows_json(i, j), (i, j)


METER_FAULTS = {
    "meter_glitch": 0.004,
    "meter_spike": 0.004,
    "meter_reset": 0.002,
    "meter_jump": 0.002,
    "meter_silence": 0.001,
}


def test_meter_faults_change_only_the_meters_readings_and_truth_keeps_their_true_volumes():
    base = dict(scenario="demo", start=parse_time("2026-11-20"), days=20, outage_hours=0)
    plain = World(Config(**base))
    faulty = World(Config(**base, meter_faults=METER_FAULTS, meter_silence_hours=30))
    meters = {d for d, ds in faulty.datastreams.items() if ds.accumulation == "cumulative"}
    kinds = Counter(kind for kind, *_ in faulty.meter_events)
    assert set(kinds) == set(METER_FAULTS) and not plain.meter_events
    assert {d for _, d, _, _ in faulty.meter_events} <= meters

    def rows(w: World, keep) -> list:  # repr: a NaN (a data fault) equals itself
        return sorted((d, p, repr(v)) for d, p, v in zip(w.ds, w.pt, w.val, strict=True) if keep(d))

    # Everything but the meters' readings is the same world.
    assert rows(faulty, lambda d: d not in meters) == rows(plain, lambda d: d not in meters)
    silent = [(d, s, n) for kind, d, s, n in faulty.meter_events if kind == "meter_silence"]
    for d, s, n in silent:
        assert n == 30 * 4
        sent = {p for dd, p, _ in rows(faulty, lambda x, d=d: x == d)}
        gap = {faulty.t0 + (k + 1) * SLOT for k in range(s, s + n)}
        assert not gap & sent
        if s + n < faulty.slots:
            assert faulty.t0 + (s + n + 1) * SLOT in sent  # then the catch-up reading
    t_plain, t_faulty = truth(plain, len(plain)), truth(faulty, len(faulty))
    assert t_faulty["totals"]["meterFaults"] == dict(sorted(kinds.items()))
    faulted = {d for _, d, _, _ in faulty.meter_events}
    for d in meters:
        want, got = t_plain["datastreams"][str(d)], t_faulty["datastreams"][str(d)]
        if d not in faulted:
            assert got == want
            continue
        # The true volume between its first and last readings sent, whatever they read.
        sent = sorted(p for dd, p, _ in rows(faulty, lambda x, d=d: x == d))
        first, last = ((p - faulty.t0) // SLOT - 1 for p in (sent[0], sent[-1]))
        steps = faulty.true_steps[d]
        assert got["volume"] == pytest.approx(math.fsum(steps[first + 1 : last + 1]), rel=1e-9)
        assert steps == pytest.approx(plain.true_steps[d], abs=5.001) or any(
            k == "meter_reset" and dd == d for k, dd, _, _ in faulty.meter_events
        )


def test_a_glitch_is_one_low_reading_and_a_spike_ten_times_the_reading():
    w = World(
        Config(
            scenario="demo", start=parse_time("2026-11-20"), days=10, outage_hours=0,
            meter_faults={"meter_glitch": 0.01, "meter_spike": 0.01},
        )
    )  # fmt: skip
    latest = {(d, p): v for d, p, v, lab in zip(w.ds, w.pt, w.val, w.label, strict=True) if not lab}
    checked = Counter()
    faulty = {(d, s) for _, d, s, _ in w.meter_events}
    for kind, d, s, _ in w.meter_events:
        p = w.t0 + (s + 1) * SLOT
        before, value, after = (latest.get((d, p + k * SLOT)) for k in (-1, 0, 1))
        if None in (before, value, after) or {(d, s - 1), (d, s + 1)} & faulty:
            continue  # a data fault or a neighbour's own meter fault
        if kind == "meter_glitch":
            assert value <= 0.5 * after and after >= before
        else:
            assert value > 5 * after and after >= before
        checked[kind] += 1
    assert checked["meter_glitch"] > 5 and checked["meter_spike"] > 5


def test_a_registry_change_mid_season():
    """A project's wells stop operating and it becomes a closed loop at a given time: its Things
    say so from then on, its meters send nothing after it, and nothing else changes."""
    base = dict(
        scenario="demo", start=parse_time("2026-10-26"), days=4, outage_hours=0,
        data_faults=dict.fromkeys(DATA_FAULT_KINDS, 0.0),
    )  # fmt: skip
    plain = World(Config(**base))
    [project] = [c.projects[0] for c in plain.companies if c.role == "low_reinjection_80"]
    at = parse_time("2026-10-28T06:00:00+08:00")
    change = {"at": at, "project": project.code, "operating": False, "projectType": "CLOSED_LOOP"}
    changed = World(Config(**base, registry_changes=[change]))
    streams = {ds.id for w in changed.wells if w.project.code == project.code
               for ds in w.datastreams}  # fmt: skip

    def rows(w: World, mine: bool) -> list:
        return sorted(
            (d, p, v) for d, p, v in zip(w.ds, w.pt, w.val, strict=True) if (d in streams) == mine
        )

    assert rows(changed, mine=False) == rows(plain, mine=False)
    cut = at.timestamp()
    assert rows(changed, mine=True) == [r for r in rows(plain, mine=True) if r[1] <= cut]
    assert changed.injected["off_rows"] > 0
    app = build_app(changed.config, changed)
    well = next(w for w in changed.wells if w.project.code == project.code)
    before = app._thing(well, False, changed.changes.applied(cut - 1))["properties"]
    after = app._thing(well, False, changed.changes.applied(cut))["properties"]
    assert (before["operating"], before["projectType"]) == (True, "MEDIUM_DEEP")
    assert (after["operating"], after["projectType"]) == (False, "CLOSED_LOOP")
    with pytest.raises(ValueError, match="unknown project"):
        World(Config(**base, registry_changes=[change | {"project": "NOPE"}]))
