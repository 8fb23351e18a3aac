"""`geocredit rulebook show | check | preview`: the rulebook in force, a candidate's problems, and
what a rulebook change would do to every company — writing nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from scoring.rulebook import installed_versions
from tests.api.console_sample import file_company
from tests.api.support import code

ROOT = Path(__file__).resolve().parents[2]
OLDER = ROOT / "scoring" / "rulebooks" / "2026.1.toml"
LEGACY = code(9301)  # a project built in 2020, found to lie in a spring protection zone
PLAIN = code(9302)


def geocredit(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api", "rulebook", *args],
        capture_output=True, text=True, env=env, timeout=300, cwd="/",
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(db_url, tmp_path_factory) -> dict:
    return os.environ | {
        "GEOCREDIT_DATABASE_URL": db_url,
        "GEOCREDIT_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    }


@pytest.fixture(scope="module")
def companies(engine):
    legacy = file_company(engine, LEGACY, "晋中老城区地热有限公司", projects=1)
    file_company(engine, PLAIN, "太原清洁热力有限公司", projects=1)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'tests', true)"))
        conn.execute(
            sa.text(
                """
                INSERT INTO project_version (project_id, company_id, name, type, city, operating,
                    in_spring_protection_zone, in_drinking_water_source,
                    in_groundwater_restricted_zone, source)
                SELECT project_id, company_id, name, type, city, operating, true,
                       in_drinking_water_source, in_groundwater_restricted_zone, 'tests'
                FROM project_version WHERE company_id = :c ORDER BY id DESC LIMIT 1
                """
            ),
            {"c": legacy.company_id},
        )


def test_show_names_the_version_in_force_and_every_rule(env):
    shown = geocredit(env, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["inForce"] == doc["version"] == installed_versions()[-1]
    assert doc["rules"]["ZONE_BAN"]["clause"] == "二(三)1"
    older = json.loads(geocredit(env, "show", "--version", "2026.1", "--json").stdout)
    assert older["version"] == "2026.1" and older["inForce"] == doc["version"]
    text = geocredit(env, "show").stdout
    assert "REINJ_RATIO" in text and "二(二)6" in text
    assert geocredit(env, "show", "--version", "1999.1").returncode == 1


def test_check_names_every_problem(env, tmp_path):
    assert geocredit(env, "check", str(OLDER)).returncode == 0
    bad = tmp_path / "bad.toml"
    text = OLDER.read_text(encoding="utf-8")
    bad.write_text(
        text.replace('version = "2026.1"', 'version = "2026.9"')
        .replace("outage_share = 0.5", "outage_share = 5")
        .replace("lookback_months = 24", "lookback_months = 0"),
        encoding="utf-8",
    )
    checked = geocredit(env, "check", str(bad))
    assert checked.returncode == 1
    assert "monitoring.outage_share:" in checked.stdout
    assert "score.lookback_months:" in checked.stdout
    assert "2 problem(s)" in checked.stderr
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace("grace_days = 15", "grace_days = 10"), encoding="utf-8")
    same_version = geocredit(env, "check", str(changed))
    assert same_version.returncode == 1 and "needs a new version" in same_version.stderr


def test_preview_shows_what_differs_and_writes_nothing(env, engine, companies):
    def audited() -> int:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM audit_log"))

    before = audited()
    shown = geocredit(env, "preview", str(OLDER), "--json")
    assert shown.returncode == 0, shown.stderr
    assert audited() == before
    doc = json.loads(shown.stdout)
    assert doc["from"] == installed_versions()[-1] and doc["to"] == "2026.1"
    summary = doc["summary"]
    for side in ("before", "after"):
        for kind in ("grades", "decisions"):
            assert sum(summary[side][kind].values()) == summary["companies"]
    assert summary["changed"] == len(doc["companies"])
    (legacy,) = [c for c in doc["companies"] if c["creditCode"] == LEGACY]
    # v2026.2 warns about a project built before the ban; v2026.1 banned it outright.
    assert legacy["before"]["decision"] == "ALLOW" and legacy["after"]["grade"] == "D"
    assert legacy["after"]["decision"] == "BLOCK"
    assert PLAIN not in [c["creditCode"] for c in doc["companies"]]

    table = geocredit(env, "preview", str(OLDER))
    assert "companies would differ" in table.stdout and LEGACY in table.stdout
    assert audited() == before
