"""The rulebook file: loaded from the installed package, validated with errors naming the key."""

import copy
import tomllib
from datetime import date
from importlib import resources

import pytest

from scoring.model import ApplicationKind, DecisionKind, Grade, ProjectType
from scoring.rulebook import (
    RULE_IDS,
    RulebookError,
    installed_versions,
    load_rulebook,
    parse_rulebook,
)

DOMAIN_RULES = {
    "REINJ_RATIO", "NO_REINJECTION", "METERING_GAP", "NO_METERING", "EXTRACTION_CAP", "QUALITY",
    "WATER_LEVEL", "MONTHLY_REPORT", "ZONE_BAN", "CONFINED_WATER", "NEW_WELL_IN_ZONE",
    "INSPECTION", "POST_EVALUATION", "FALSIFIED_DATA",
}  # fmt: skip


def _text(version: str = "2026.2") -> str:
    return resources.files("scoring").joinpath("rulebooks", f"{version}.toml").read_text("utf-8")


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(_text())


def _with(raw: dict, path: str, value) -> dict:
    data = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


def test_the_version_in_force_is_the_newest_installed():
    assert installed_versions() == ("2026.1", "2026.2")
    rb = load_rulebook()
    assert rb.version == "2026.2"
    assert rb.applies_from == date(2025, 11, 15)
    assert rb.timezone == "Asia/Shanghai"
    assert load_rulebook() is rb is load_rulebook(version="2026.2")  # parsed once per process


def test_every_installed_version_stays_loadable():
    old = load_rulebook(version="2026.1")
    assert old.version == "2026.1" and old.applies_from == date(2025, 11, 15)
    # What v2026.2 changed is absent from v2026.1, which keeps its own behaviour.
    assert old.listing.max_months_for(critical=False) == 36
    assert old.listing.period_end == "start_of_day"
    assert old.rules.ZONE_BAN.built_on_or_after is None
    assert old.rules.LEGACY_IN_BANNED_ZONE is None and old.reasons.NOT_EVALUATED is None
    with pytest.raises(RulebookError, match=r"no rulebook '2025\.9' installed"):
        load_rulebook(version="2025.9")


def test_v2026_2_listing_periods_and_zone_ban():
    """The national credit-repair rules: ordinary 失信 3 months–1 year, serious 1–3 years."""
    rb = load_rulebook()
    assert (rb.listing.min_months_score, rb.listing.max_months_for(critical=False)) == (6, 12)
    assert (rb.listing.min_months_critical, rb.listing.max_months_for(critical=True)) == (12, 36)
    assert rb.listing.period_end == "end_of_day"
    assert rb.rules.ZONE_BAN.built_on_or_after == rb.applies_from
    assert rb.rules.LEGACY_IN_BANNED_ZONE.clause == "二(三)1"
    assert rb.meters.model_dump() == {
        "max_flow_m3_per_hour": 500, "lookahead_readings": 4, "lookahead_minutes": 60
    }  # fmt: skip


def test_every_rule_of_domain_md_is_in_the_rulebook_with_its_clause():
    rb = load_rulebook()
    assert set(RULE_IDS) >= DOMAIN_RULES
    clauses = {rule_id: getattr(rb.rules, rule_id).clause for rule_id in RULE_IDS}
    assert clauses["REINJ_RATIO"] == "二(三)1"
    assert rb.rules.REINJ_RATIO.clause_by_type[ProjectType.MEDIUM_DEEP] == "二(二)5"
    assert clauses["NO_REINJECTION"] == clauses["NO_METERING"] == "二(二)6"
    assert clauses["METERING_GAP"] == "二(二)6、二(三)6"
    assert clauses["QUALITY"] == clauses["MONTHLY_REPORT"] == "二(三)6"
    assert clauses["WATER_LEVEL"] == clauses["INSPECTION"] == clauses["FALSIFIED_DATA"] == "三"


def test_policy_numbers():
    rb = load_rulebook()
    assert rb.rules.REINJ_RATIO.threshold == {
        ProjectType.SHALLOW_WATER_SOURCE: 0.95,  # ★ 二(三)1
        ProjectType.MEDIUM_DEEP: 0.98,
    }
    assert rb.score.lookback_months == 24 and rb.score.rule_cap == 40
    assert (rb.listing.min_months_score, rb.listing.min_months_critical) == (6, 12)
    assert rb.listing.max_months == 36
    assert rb.monitoring.finality_days == 3 and rb.monitoring.outage_share == 0.5
    assert rb.supervision.inspection_every_months == 3  # 三: 每季度开展一次监督检查


def test_decision_table_per_application_kind():
    rb = load_rulebook()
    for kind in ApplicationKind:
        row = rb.decisions[kind]
        assert [row.for_grade(g) for g in Grade] == [
            DecisionKind.ALLOW,
            DecisionKind.ALLOW,
            DecisionKind.RESTRICT,
            DecisionKind.BLOCK,
        ]
        texts = [rb.conditions[c].text for c in row.conditions]
        assert any("充分论证回灌方案" in t for t in texts)
        assert any("在线计量" in t for t in texts)
        assert any("季度" in t for t in texts)


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (100, "A"),
        (90, "A"),
        (89.99, "B"),
        (75, "B"),
        (74.99, "C"),
        (60, "C"),
        (59.99, "D"),
        (0, "D"),
    ],
)
def test_grade_bands_are_half_open(score, grade):
    assert load_rulebook().grade_for(score) == Grade(grade)


def test_rulebook_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_rulebook.__globals__["_installed"].cache_clear()
    load_rulebook.__globals__["installed_versions"].cache_clear()
    assert load_rulebook().version == "2026.2"
    assert load_rulebook(version="2026.1").version == "2026.1"


def test_load_from_a_path(tmp_path, raw):
    path = tmp_path / "rb.toml"
    path.write_text(_text().replace('version = "2026.2"', 'version = "2026.3"'), "utf-8")
    assert load_rulebook(path).version == "2026.3"


def test_invalid_toml_is_a_rulebook_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("version = ", "utf-8")
    with pytest.raises(RulebookError, match="not valid TOML") as e:
        load_rulebook(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("path", "value", "key", "message"),
    [
        ("rules.SPEEDING", {"title": "x", "clause": "三", "message": "x"}, "rules.SPEEDING",
         "unknown rule id"),
        ("rules.QUALITY", _DELETE, "rules.QUALITY", "missing rule"),
        ("rules.QUALITY.clause", _DELETE, "rules.QUALITY.clause", "missing key"),
        ("rules.QUALITY.clause", "第三条", "rules.QUALITY.clause", "not a policy clause"),
        ("rules.QUALITY.colour", "red", "rules.QUALITY.colour", "unknown key"),
        ("rules.REINJ_RATIO.threshold.SHALLOW_WATER_SOURCE", 1.2,
         "rules.REINJ_RATIO.threshold.SHALLOW_WATER_SOURCE", "less than or equal to 1"),
        ("rules.REINJ_RATIO.threshold.SHALLOW_WATER_SOURCE", 0,
         "rules.REINJ_RATIO.threshold.SHALLOW_WATER_SOURCE", "greater than 0"),
        ("rules.REINJ_RATIO.threshold.GEYSER", 0.9, "rules.REINJ_RATIO.threshold.GEYSER",
         "Input should be"),
        ("rules.METERING_GAP.major_below", 0.96, "rules.METERING_GAP.major_below",
         "below minor_below"),
        ("rules.INSPECTION.major", -15, "rules.INSPECTION.major", "greater than or equal to 0"),
        ("rules.REINJ_RATIO.message", "{subject} {speed}", "rules.REINJ_RATIO.message",
         "unknown placeholder {speed}"),
        ("rules.REINJ_RATIO.message", "{ratio:.1q}", "rules.REINJ_RATIO.message", "bad template"),
        ("grades.1.min", 70, "grades[2]", "overlaps band B"),
        ("grades.1.below", 85, "grades[1].below", "gap up to band A"),
        ("grades.3.min", 5, "grades[3].min", "must start at 0"),
        ("grades.0.below", 101, "grades.0.below", "less than or equal to 100"),
        ("score.lookback_months", 0, "score.lookback_months", "greater than or equal to 1"),
        ("listing.min_months_critical", 48, "listing.min_months_critical", "exceeds max_months"),
        ("listing.max_months_score", 3, "listing.max_months_score", "must lie between"),
        ("listing.period_end", "noon", "listing.period_end", "Input should be"),
        ("rules.LEGACY_IN_BANNED_ZONE", _DELETE, "rules.LEGACY_IN_BANNED_ZONE",
         "needed exactly when"),
        ("heating_season.default.start", "02-30", "heating_season.default.start", "month-day"),
        ("heating_season.default.start", "01-15", "heating_season.default.end",
         "across the new year"),
        ("monitoring.slot_minutes", 7, "monitoring.slot_minutes", "must divide 60"),
        ("supervision.inspection_every_months", 0, "supervision.inspection_every_months",
         "greater than or equal to 1"),
        ("timezone", "Mars/Olympus", "timezone", "unknown time zone"),
        ("decisions.NEW_WELL", _DELETE, "decisions.NEW_WELL", "missing application kind"),
        ("decisions.NEW_WELL.conditions", ["SMILE"], "decisions.NEW_WELL.conditions[0]",
         "unknown condition"),
        ("decisions.NEW_WELL.conditions", [], "decisions.NEW_WELL.conditions",
         "RESTRICT needs conditions"),
        ("decisions.NEW_WELL.D", "ALLOW", "decisions.NEW_WELL.D", "must BLOCK"),
        ("version", "latest", "version", "String should match pattern"),
        ("rules.NO_REINJECTION.below", 0.96, "rules.NO_REINJECTION.below", "above the SHALLOW"),
    ],
)  # fmt: skip
def test_invalid_rulebook_names_the_key(raw, path, value, key, message):
    with pytest.raises(RulebookError) as e:
        parse_rulebook(_with(raw, path, value))
    assert e.value.key == key
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_overlapping_bands_are_rejected(raw):
    data = _with(raw, "grades.1.below", 95)  # B [75, 95) runs into A [90, …)
    with pytest.raises(RulebookError, match=r"grades\[1\]: band B \[75, 95\) overlaps band A"):
        parse_rulebook(data)


def test_duplicate_grade_is_rejected(raw):
    data = _with(raw, "grades.1.grade", "A")
    with pytest.raises(RulebookError, match="appears twice"):
        parse_rulebook(data)
