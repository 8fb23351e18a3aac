"""Benchmark: the approval-system API over HTTP, against baselines measured in the same run.

    .venv/bin/python -m bench.eligibility [--servers granian,uvicorn] [--seconds 10] [--workers 1]
        [--connections 16] [--companies 2000] [--batch-clients 4]

On a fresh database (GEOCREDIT_DATABASE_URL's server, else the embedded one in
<tmp>/geocredit-bench) with `--companies` credit files, for each ASGI server:
- single `eligibility` over GraphQL vs a plain Litestar REST route doing the same lookup
  (same auth, the same per-request standings loader, same `decide`), `--connections`
  keep-alive connections: rps, p50, p99, and the ratio GraphQL rps / REST rps (about 0.4 on
  stock strawberry). Goal: p99 < 50 ms. And the same `eligibility` with `asOf` (an instant
  after seeding: the as-of read of what was recorded by then). Goal: ≥ 0.5 of plain rps.
- `eligibilities` with 1,000 codes, one at a time: server time (Server-Timing) and latency.
  Goal: ≤ 2× graphql-core's own floor: executing the same document to the same result from
  trivial resolvers (dict lookups), timed in this process right after each server run.
- a single `eligibility` at a time while `--batch-clients` clients send 1,000-code batches
  back to back (those beyond the worker's room for heavy requests are refused with 503):
  p50 and p99 of the single one. Goal: p99 < 100 ms (the service's promise: < 250 ms).
Besides wall-clock figures it reports the server process's CPU time per request (from /proc),
which other load on the machine does not distort; the floor is CPU time too.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from litestar import Request, get

from api.context import standings_loader
from bench.common import ROOT, drop_database, fresh_database
from registry.creditcode import check_char, normalize_credit_code
from scoring.decision import decide
from scoring.model import ApplicationKind

FIELDS = """creditCode company { id name } decision grade score
    reasons { code message ruleId policyClause evidence }
    conditions restrictedUntil asOf rulebookVersion"""
SINGLE = f"""query Eligibility($creditCode: String!, $kind: ApplicationKind!) {{
  eligibility(creditCode: $creditCode, kind: $kind) {{ {FIELDS} }} }}"""
SINGLE_AS_OF = f"""query Eligibility($creditCode: String!, $kind: ApplicationKind!,
  $asOf: DateTime) {{
  eligibility(creditCode: $creditCode, kind: $kind, asOf: $asOf) {{ {FIELDS} }} }}"""
BATCH = f"""query Eligibilities($requests: [EligibilityRequest!]!) {{
  eligibilities(requests: $requests) {{ {FIELDS} }} }}"""


# ---------------------------------------------------------------- the REST baseline route


@get("/bench/eligibility/{credit_code:str}")
async def rest_eligibility(request: Request, credit_code: str, kind: ApplicationKind) -> dict:
    """The same work as the GraphQL field, without GraphQL: auth, lookup, decide, JSON."""
    services = request.app.state.services
    await services.authenticate(request.headers.get("authorization"))
    code = normalize_credit_code(credit_code)
    now = datetime.now(UTC)
    filed = await standings_loader(services, now).load(code)  # the read GraphQL uses
    d = decide(filed.standing if filed else None, kind, services.rulebook, now)
    company = filed and {"id": filed.company_id, "name": filed.name}
    return {
        "creditCode": code,
        "company": company,
        "decision": d.decision,
        "grade": d.grade,
        "score": d.score,
        "reasons": [r.to_json() for r in d.reasons],
        "conditions": d.conditions,
        "restrictedUntil": d.restricted_until,
        "asOf": d.as_of,
        "rulebookVersion": d.rulebook_version,
    }


def bench_app():
    """The server's factory target: the product app plus the REST baseline route."""
    from api.app import create_app
    from registry import heap

    return create_app(
        extra_routes=[rest_eligibility], log_level="WARNING", on_startup=[heap.freeze_long_lived]
    )


# ---------------------------------------------------------------- data


def code(n: int) -> str:
    first17 = f"91140100MB{n:07d}"
    return first17 + check_char(first17)


def seed(url: str, companies: int) -> list[str]:
    """Credit files in realistic proportions; returns every code, with ~20 % never filed."""
    rng = random.Random(7)
    engine = sa.create_engine(url)
    now = datetime.now(UTC)
    codes = [code(i) for i in range(companies)]
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'bench', true)"))
        for c in codes[: int(companies * 0.8)]:
            cid = conn.execute(
                sa.text("INSERT INTO company (credit_code) VALUES (:c) RETURNING id"), {"c": c}
            ).scalar()
            conn.execute(
                sa.text(
                    "INSERT INTO company_version (company_id, name, source) VALUES (:i, :n, 'bench')"
                ),
                {"i": cid, "n": f"山西地热开发有限公司{cid}"},
            )
            grade = rng.choices("ABCD", weights=(45, 25, 20, 10))[0]
            finding_ids = []
            for k in range({"A": 0, "B": 1, "C": 2, "D": 3}[grade]):
                finding_ids.append(
                    conn.execute(
                        sa.text(
                            """INSERT INTO credit_finding (company_id, key, rule_id, policy_clause,
                            severity, deduction, window_start, window_end, final, source, message,
                            evidence, rulebook_version) VALUES (:i, :key, 'REINJ_RATIO', '二(三)1',
                            'MAJOR', 15, '2026-01-01', '2026-01-31', true, 'METRICS', :m,
                            CAST(:e AS jsonb), '2026.1') RETURNING id"""
                        ),
                        {
                            "i": cid,
                            "key": f"REINJ_RATIO:{c}:{k}",
                            "m": "项目 TY-001（太原南区）2026-01 同层回灌率 81.0%，低于 98% 的要求",
                            "e": json.dumps({"ratio": 0.81, "extraction_m3": 120000.0}),
                        },
                    ).scalar()
                )
            stale = rng.random() < 0.1
            conn.execute(
                sa.text(
                    """INSERT INTO score_snapshot (company_id, computed_at, score, grade,
                    rulebook_version, window_start, window_end, inputs_digest, finding_ids)
                    VALUES (:i, :t, :s, :g, '2026.1', '2024-12-01', :d, 'bench', CAST(:f AS jsonb))"""
                ),
                {
                    "i": cid,
                    "t": now - timedelta(hours=72 if stale else 2),
                    "s": {"A": 95, "B": 80, "C": 70, "D": 40}[grade],
                    "g": grade,
                    "d": now.date(),
                    "f": json.dumps(finding_ids),
                },
            )
            if grade == "D":
                conn.execute(
                    sa.text(
                        """INSERT INTO listing (company_id, started_at, min_end, max_end, critical,
                        reason, finding_ids, recorded_by) VALUES (:i, :s, :m, :x, false, 'D',
                        CAST(:f AS jsonb), 'bench')"""
                    ),
                    {
                        "i": cid,
                        "s": now - timedelta(days=10),
                        "m": now + timedelta(days=170),
                        "x": now + timedelta(days=1000),
                        "f": json.dumps(finding_ids),
                    },
                )
    engine.dispose()
    return codes


def make_token(url: str) -> str:
    from registry.auth import new_token, token_hash

    token = new_token()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_client (name, role, token_hash) VALUES ('bench', 'approval_system', :h)"
            ),
            {"h": token_hash(token)},
        )
    engine.dispose()
    return token


# ---------------------------------------------------------------- servers


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, url: str, port: int, workers: int) -> subprocess.Popen:
    target = "bench.eligibility:bench_app"
    if kind == "granian":
        cmd = [
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            target,
        ]
    else:
        cmd = [
            "uvicorn",
            "--factory",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            target,
        ]
    bindir = Path(sys.executable).parent
    cmd[0] = str(bindir / cmd[0])
    env = {**os.environ, "GEOCREDIT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} did not start")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children (the server's workers): a
    measure of cost per request that other load on the machine does not distort."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------- load generator


def http_request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(reader, writer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def load(port: int, requests: list[bytes], connections: int, seconds: float) -> list[float]:
    """Closed loop: each connection sends its next request as soon as the answer is in."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    errors = 0

    async def connection(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = n
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _, body = await exchange(reader, writer, requests[i % len(requests)])
            latencies.append(time.perf_counter() - started)
            if status != 200 or b'"errors"' in body:
                errors += 1
            i += connections
        writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    if errors:
        raise SystemExit(f"{errors} failed requests")
    return latencies


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / seconds,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
    }


async def single(
    port: int, pid: int, token: str, codes: list[str], connections: int, seconds: float
):
    rng = random.Random(1)
    kinds = [k.value for k in ApplicationKind]
    picks = [(rng.choice(codes), rng.choice(kinds)) for _ in range(2000)]
    gql = [
        http_request(
            "POST",
            "/graphql",
            token,
            json.dumps({"query": SINGLE, "variables": {"creditCode": c, "kind": k}}).encode(),
        )
        for c, k in picks
    ]
    rest = [http_request("GET", f"/bench/eligibility/{c}?kind={k}", token) for c, k in picks]
    as_of = datetime.now(UTC).isoformat()
    asof = [
        http_request(
            "POST",
            "/graphql",
            token,
            json.dumps(
                {"query": SINGLE_AS_OF, "variables": {"creditCode": c, "kind": k, "asOf": as_of}}
            ).encode(),
        )
        for c, k in picks
    ]
    paths = (("rest", rest), ("graphql", gql), ("asof", asof))
    for _, requests in paths:  # warm up every path
        await load(port, requests, connections, 2)
    results = {name: [] for name, _ in paths}
    cpu = dict.fromkeys(results, 0.0)
    for _ in range(2):  # interleaved halves, so drift hits all alike
        for name, requests in paths:
            before = cpu_seconds(pid)
            results[name] += await load(port, requests, connections, seconds / 2)
            cpu[name] += cpu_seconds(pid) - before
    out = {}
    for name, latencies in results.items():
        out[name] = summary(latencies, seconds)
        out[name]["cpu_ms"] = cpu[name] / len(latencies) * 1000
    return out


async def batch(port: int, pid: int, token: str, codes: list[str], runs: int = 20):
    """`eligibilities` × 1,000, each run followed at once by the graphql-core floor for the same
    result, so that the machine's drift (CPU steal on a shared host moves both by ±40 %) hits
    the two alike: the ratio is the median of the per-run ratios."""
    rng = random.Random(2)
    kinds = [k.value for k in ApplicationKind]
    requests = [{"creditCode": rng.choice(codes), "kind": rng.choice(kinds)} for _ in range(1000)]
    payload = json.dumps({"query": BATCH, "variables": {"requests": requests}}).encode()
    request = http_request("POST", "/graphql", token, payload)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):  # the first runs warm the caches
        status, headers, body = await exchange(reader, writer, request)
        assert status == 200 and b'"errors"' not in body, body[:300]
    floor = GraphQLCoreFloor(json.loads(body)["data"], requests)
    server_ms, client_ms, cpu_ms, floor_ms = [], [], [], []
    for _ in range(runs):
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        status, headers, body = await exchange(reader, writer, request)
        client_ms.append((time.perf_counter() - started) * 1000)
        cpu_ms.append((cpu_seconds(pid) - cpu) * 1000)
        assert status == 200 and b'"errors"' not in body, body[:300]
        server_ms.append(float(headers["server-timing"].split("dur=")[1]))
        floor_ms.append(floor.run())
    writer.close()
    median = statistics.median
    ratio = median(c / f for c, f in zip(cpu_ms, floor_ms, strict=True))
    return median(server_ms), median(client_ms), median(cpu_ms), median(floor_ms), ratio


async def single_under_batches(
    port: int, token: str, codes: list[str], batch_clients: int, seconds: float
) -> tuple[dict[str, float], dict[str, int]]:
    """p50/p99 of one `eligibility` at a time while `batch_clients` clients send 1,000-code
    batches back to back; what the batch clients got, counted by status."""
    rng = random.Random(3)
    kinds = [k.value for k in ApplicationKind]
    requests = [{"creditCode": rng.choice(codes), "kind": rng.choice(kinds)} for _ in range(1000)]
    heavy = http_request(
        "POST",
        "/graphql",
        token,
        json.dumps({"query": BATCH, "variables": {"requests": requests}}).encode(),
    )
    singles = [
        http_request(
            "POST",
            "/graphql",
            token,
            json.dumps(
                {"query": SINGLE, "variables": {"creditCode": c, "kind": "NEW_WELL"}}
            ).encode(),
        )
        for c in rng.sample(codes, 200)
    ]
    deadline = time.perf_counter() + seconds
    statuses: dict[str, int] = {}
    latencies: list[float] = []

    async def batcher() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            status, _, _ = await exchange(reader, writer, heavy)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        writer.close()

    async def single() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.5)  # the batches are under way
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _, body = await exchange(reader, writer, singles[i % len(singles)])
            latencies.append(time.perf_counter() - started)
            assert status == 200 and b'"errors"' not in body, body[:300]
            i += 1
            await asyncio.sleep(0.01)  # an approval system asking now and then
        writer.close()

    await asyncio.gather(single(), *(batcher() for _ in range(batch_clients)))
    return summary(latencies, seconds), statuses


class GraphQLCoreFloor:
    """graphql-core executing the same document to the same result from trivial resolvers
    (the result's own dicts), encoded by the server's encoder; CPU time, like the server's."""

    def __init__(self, data: dict, requests: list[dict]) -> None:
        import graphql

        from api.contracts import sdl

        self.schema = graphql.build_schema(sdl())
        self.document = graphql.parse(BATCH)
        self.data = data
        self.variables = {"requests": requests}  # coerced like ours; the resolvers ignore them

    def run(self) -> float:
        import graphql
        import msgspec

        started = time.process_time()
        result = graphql.execute(
            self.schema, self.document, root_value=self.data, variable_values=self.variables
        )
        msgspec.json.encode({"data": result.data})
        assert not result.errors, result.errors
        return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="granian")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--companies", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-clients", type=int, default=4)
    args = parser.parse_args()

    url = fresh_database("eligibility")
    try:
        started = time.monotonic()
        codes = seed(url, args.companies)
        token = make_token(url)
        print(
            f"seeded {args.companies} companies in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
        for kind in args.servers.split(","):
            port = free_port()
            proc = start_server(kind, url, port, args.workers)
            try:
                one = asyncio.run(
                    single(port, proc.pid, token, codes, args.connections, args.seconds)
                )
                server_ms, client_ms, cpu_ms, floor, floor_ratio = asyncio.run(
                    batch(port, proc.pid, token, codes)
                )
                loaded, statuses = asyncio.run(
                    single_under_batches(port, token, codes, args.batch_clients, args.seconds)
                )
            finally:
                stop_server(proc)
            g, r, a = one["graphql"], one["rest"], one["asof"]
            print(f"\n== {kind}, {args.connections} connections, {args.seconds:g} s per path ==")
            print(f"{'':8} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
            for name, s in (("GraphQL", g), ("REST", r), ("asOf", a)):
                print(
                    f"{name:8} {s['rps']:8.0f} {s['p50_ms']:8.1f} {s['p99_ms']:8.1f} "
                    f"{s['cpu_ms']:11.2f}"
                )
            ratio = g["rps"] / r["rps"]
            print(
                f"ratio GraphQL/REST rps {ratio:.2f}, by server CPU per request "
                f"{r['cpu_ms'] / g['cpu_ms']:.2f} (expect ~0.4); GraphQL p99 "
                f"{g['p99_ms']:.1f} ms (goal < 50)"
            )
            print(f"asOf / plain GraphQL rps {a['rps'] / g['rps']:.2f} (goal ≥ 0.5)")
            print(
                f"eligibilities × 1000: server {server_ms:.1f} ms wall, "
                f"{cpu_ms:.1f} ms CPU; client {client_ms:.1f} ms; graphql-core floor "
                f"{floor:.1f} ms CPU → {floor_ratio:.2f}× the floor, median of per-run ratios "
                "(goal ≤ 2)"
            )
            print(
                f"eligibility while {args.batch_clients} clients send 1,000-code batches: "
                f"p50 {loaded['p50_ms']:.1f} ms, p99 {loaded['p99_ms']:.1f} ms (goal < 100; "
                f"promised < 250); the batches got {statuses}"
            )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
