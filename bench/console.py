"""Benchmark: the reviewer console's credit-file page, against baselines measured in the same run.

    .venv/bin/python -m bench.console [--projects 50] [--requests 40] [--browser]

On a fresh database (GEOCREDIT_DATABASE_URL's server, else the embedded one in
<tmp>/geocredit-bench), files one company with `--projects` projects and month metrics for every
month of the 24-month window (findings in about one cell in eight, a provisional month, outages,
60 earlier score snapshots), scored by the registry's scoring run; starts `geocredit api` and
logs in to the console. Then, interleaved, `--requests` times each:
- GET /healthz (the app's floor) and the key-supervision list (a small page through the same
  login, database and templates): the baselines;
- GET the credit file (compliance grid of projects × 24 months, chart, every record list).
It reports the server's time per page (its Server-Timing header: the first byte of the page is
ready then), median and p90, and the ratio to each baseline. Goal: the credit file's median
server time < 300 ms. With --browser it also loads the credit file in the system's Chromium and
reports its first contentful paint (navigation start → paint, in the browser).
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.common import drop_database, fresh_database
from registry import db
from registry.auth import new_token, token_hash
from tests.api.console_sample import file_company
from tests.api.support import Server, code

CREDIT_CODE = code(424242)


def seed(url: str, projects: int) -> str:
    """The company filed; returns a reviewer's token."""
    engine = db.make_engine(url)
    marks = {}
    for p in range(projects):
        for back in range(24):
            if (p * 7 + back * 3) % 8 == 0:
                marks[(p, back)] = ("minor", "major", "outage", "unevaluated")[(p + back) % 4]
    marks[(0, 1)] = "critical"
    history = [90 - k * 0.5 for k in range(60)]
    file_company(
        engine,
        CREDIT_CODE,
        "晋中热力有限公司",
        projects=projects,
        marks=marks,
        history=history,
        whole_window=True,
    )
    token = new_token()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_client (name, role, token_hash) VALUES ('bench', 'reviewer', :h)"
            ),
            {"h": token_hash(token)},
        )
    engine.dispose()
    return token


def login(base: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/console/login")
    form = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/console/login", data={"csrf_token": form, "token": token})
    if answer.status_code != 303:
        raise SystemExit(f"bench: console login failed: {answer.status_code} {answer.text[:200]}")
    return client


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def first_paint(base: str, client: httpx.Client, path: str, runs: int) -> list[float]:
    """First contentful paint of `path` in the system's Chromium, in ms, per run."""
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context.add_cookies(
            [
                {"name": c.name, "value": c.value, "url": base + "/console"}
                for c in client.cookies.jar
            ]
        )
        page = context.new_page()
        for _ in range(runs):
            page.goto(base + path, wait_until="load")
            fcp = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
            )
            if fcp is not None:
                paints.append(fcp)
        context.close()
    return paints


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()

    url = fresh_database("console")
    server = None
    try:
        started = time.monotonic()
        token = seed(url, args.projects)
        print(f"filed {args.projects} projects × 24 months in {time.monotonic() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        server = Server(url, Path(tempfile.mkdtemp()) / "server.log").start()
        client = login(server.url, token)
        paths = {
            "healthz": "/healthz",
            "supervision list": "/console/supervision",
            "credit file": f"/console/company/{CREDIT_CODE}",
        }
        page = client.get(paths["credit file"])
        cells = page.text.count('<td class="cell ')
        size_kb = len(page.content) / 1024
        for path in paths.values():  # warm up
            client.get(path)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.requests):
            for name, path in paths.items():
                response = client.get(path)
                response.raise_for_status()
                times[name].append(server_ms(response))
        print(
            f"\n== console, credit file of {args.projects} projects: {cells} grid cells, "
            f"{size_kb:.0f} kB of HTML; {args.requests} requests each, interleaved =="
        )
        print(f"{'page':18} {'median ms':>10} {'p90 ms':>8}")
        stats = {name: summary(values) for name, values in times.items()}
        for name, (median, p90) in stats.items():
            print(f"{name:18} {median:10.1f} {p90:8.1f}")
        file_ms = stats["credit file"][0]
        print(
            f"credit file: {file_ms:.1f} ms server time (goal < 300 ms) = "
            f"{file_ms / stats['healthz'][0]:.0f}× /healthz, "
            f"{file_ms / stats['supervision list'][0]:.1f}× the supervision list"
        )
        if args.browser:
            paints = first_paint(server.url, client, paths["credit file"], 10)
            if paints:
                median, p90 = summary(paints)
                print(
                    f"credit file in Chromium: first contentful paint {median:.0f} ms median, "
                    f"{p90:.0f} ms p90 ({len(paints)} loads)"
                )
    finally:
        if server is not None:
            server.stop()
        drop_database(url)


if __name__ == "__main__":
    main()
