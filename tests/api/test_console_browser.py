"""The reviewer console in a real Chromium (the system's, driven by Playwright): log in, open a
D company and read its compliance grid and score chart, record an inspection through the form
on another company and see its grade change. Screenshots of the credit file and the supervision
list are kept under $GEOCREDIT_ARTIFACTS (default: <tmp>/geocredit-artifacts).

A missing browser fails the run: set GEOCREDIT_BROWSER_TESTS=skip to leave these tests out."""

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry.vocabulary import Role
from scoring import periods
from scoring.rulebook import load_rulebook
from tests.api.console_sample import file_company
from tests.api.support import code

CHROMIUM = os.environ.get("GEOCREDIT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
D_COMPANY = code(7701)
B_COMPANY = code(7702)
HISTORY = [93, 88, 81, 72, 64]  # earlier snapshots; the scoring run adds the latest

pytestmark = pytest.mark.skipif(
    os.environ.get("GEOCREDIT_BROWSER_TESTS") == "skip",
    reason="GEOCREDIT_BROWSER_TESTS=skip",
)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("GEOCREDIT_ARTIFACTS") or tempfile.gettempdir())
    if "GEOCREDIT_ARTIFACTS" not in os.environ:
        folder = folder / "geocredit-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it (apt-get install -y chromium) or set "
            "GEOCREDIT_BROWSER_TESTS=skip"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1440, "height": 900},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def companies(api_engine):
    d = file_company(
        api_engine,
        D_COMPANY,
        "晋中热力有限公司",
        projects=4,
        marks={
            (0, 1): "critical",
            (0, 2): "major",
            (1, 3): "minor",
            (2, 0): "outage",
            (3, 2): "unevaluated",
        },
        history=HISTORY,
    )
    b = file_company(
        api_engine, B_COMPANY, "太原清源地热有限公司", projects=2, marks={(0, 2): "major"}
    )
    return d, b


@pytest.fixture(scope="module")
def page(browser, server, tokens, companies):
    """A logged-in reviewer's page; any request to another host fails the tests."""
    page = browser.new_page()
    outside, errors = [], []

    def only_ours(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/console/company/" + D_COMPANY)
    assert "/console/login" in page.url  # not logged in yet: sent to the login page, then back
    page.fill("input[name=token]", tokens[Role.REVIEWER])
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_url(f"**/console/company/{D_COMPANY}")
    yield page
    page.close()
    assert outside == [] and errors == []


def snapshots(engine: sa.Engine, credit_code: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT count(*) FROM score_snapshot s JOIN company c ON c.id = s.company_id "
                "WHERE c.credit_code = :c"
            ),
            {"c": credit_code},
        )


def test_a_d_company_shows_its_grid_and_its_score_history(page, companies, api_engine, artifacts):
    d, _ = companies
    assert page.locator("#grade").inner_text() == "D"
    assert "BLOCK" in page.locator("#decision").inner_text()
    assert page.locator("#min-end").inner_text() and page.locator("#max-end").inner_text()

    grid = page.locator("#compliance-grid")
    months = int(grid.get_attribute("data-months"))
    assert grid.locator("tbody tr").count() == 4
    assert grid.locator("thead th.month").count() == months
    assert grid.locator("tbody tr").first.locator("td.cell").count() == months
    this_month = periods.month_label(d.months[-1])
    last_month = periods.month_label(d.months[-2])
    critical = grid.locator(f"tbody tr >> nth=0 >> td[data-month='{last_month}']")
    assert "sev-critical" in critical.get_attribute("class")
    tooltip = critical.get_attribute("title")
    assert "NO_REINJECTION 二(二)6" in tooltip and "REINJ_RATIO" in tooltip
    current = grid.locator(f"tbody tr >> nth=2 >> td[data-month='{this_month}']")
    assert {"provisional", "outage"} <= set(current.get_attribute("class").split())
    assert grid.locator("td.cell.not-evaluated").count() == 1
    assert grid.locator("td.cell.sev-minor").count() == 1

    chart = page.locator("#score-chart")
    chart.locator("canvas").wait_for()
    points = page.evaluate("window.geocreditChart.data[0].length")
    assert points == snapshots(api_engine, D_COMPANY) == len(HISTORY) + 1
    assert chart.get_attribute("data-rendered") == str(points)

    page.screenshot(path=artifacts / "credit-file.png", full_page=True)
    page.goto(page.url.split("/console/")[0] + "/console/supervision")
    assert page.locator("#supervision-table").get_by_text("晋中热力有限公司").count() == 1
    page.locator("th a[data-sort=score]").click()
    page.wait_for_url("**sort=score**")
    page.screenshot(path=artifacts / "supervision-list.png", full_page=True)


def test_an_inspection_recorded_through_the_form_changes_the_grade(page, companies, artifacts):
    page.goto(page.url.split("/console/")[0] + "/console/company/" + B_COMPANY)
    assert page.locator("#grade").inner_text() == "B"
    today = periods.local_date(datetime.now(UTC), load_rulebook()).isoformat()
    form = page.locator("form[data-form=inspection]")
    page.locator("#inspections details.form > summary").first.click()
    form.locator("select[name=project_code]").select_option(companies[1].projects[0])
    form.locator("input[name=inspected_on]").fill(today)
    form.locator("input[name=inspector]").fill("省地热专班 王工")
    form.locator("select[name='findings-0-severity']").select_option("CRITICAL")
    form.locator("input[name='findings-0-description']").fill("回灌井未运行，地热尾水直排")
    form.locator("button.add-finding").click()
    form.locator("input[name='findings-1-description']").fill("流量计未联网")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**done=inspection**")
    assert page.locator("#grade").inner_text() == "D"
    assert "监督检查已记录" in page.locator("#done").inner_text()
    assert "BLOCK" in page.locator("#decision").inner_text()
    assert page.locator("#inspections").get_by_text("流量计未联网").count() == 1
    page.screenshot(path=artifacts / "after-inspection.png", full_page=True)
