"""What a request runs with: the process-wide services, and per request the caller, the clock and
fresh DataLoaders (a loader kept per process would serve stale data across callers)."""

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader
from strawberry.litestar import BaseContext

from api.errors import DATABASE_UNAVAILABLE, ApiError, Unauthenticated
from api.observability import Metrics
from registry import auth, db
from registry.db import session_factory
from registry.standing import FiledStanding, load_standings
from scoring.rulebook import Rulebook, load_rulebook

T = TypeVar("T")

HEAVY_IN_FLIGHT = 1
"""Heavy requests (large batches) a worker runs at once; more are refused with 503: each takes
~0.1 s of CPU, which the worker's other requests share (bench/eligibility.py measures it)."""


class Admission:
    """How many heavy requests a worker runs at once (api.schema.extensions.RequestLimits);
    those beyond are refused, not queued: a queue would keep working for clients that have
    long given up. Entered from the event loop and the large requests' lane (a thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class TokenCache:
    """Token hash → client for a few seconds, so a request does not pay a query to authenticate.
    A revoked token stops working within `ttl` seconds; an expiring one is never kept past its
    expiry."""

    def __init__(self, ttl: float = auth.TOKEN_CACHE_SECONDS, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, auth.Client]] = {}

    def get(self, digest: str) -> auth.Client | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, client: auth.Client) -> None:
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        keep = self.ttl
        if client.expires_at is not None:
            keep = min(keep, (client.expires_at - datetime.now(UTC)).total_seconds())
        self._entries[digest] = (time.monotonic() + keep, client)


def _api_engine(url: str, **kw: Any) -> AsyncEngine:
    """The API's pool: `pool_size` connections (30 unless given), each kept once opened, and a
    request waits for one as long as for a new connection, then fails (503). SQLAlchemy closes a
    connection beyond pool_size when it is returned: with 10 of 30 kept, 16 requests in flight
    opened one almost each time (bench/eligibility, 16 connections: 480 rps, p99 55–63 ms; all
    kept: 717–733 rps, p99 35 ms)."""
    kw.setdefault("pool_size", 30)
    kw.setdefault("max_overflow", 0)
    kw.setdefault("pool_timeout", db.CONNECT_TIMEOUT_S)
    return db.make_async_engine(url, **kw)


@dataclass
class Services:
    """Process-wide: built once by the app factory. One engine, one connection pool: every
    read and write of the API's event loop goes through it (the large requests' lane has a
    copy with a small pool of its own, `for_another_loop`)."""

    engine: AsyncEngine
    rulebook: Rulebook
    metrics: Metrics
    production: bool
    database_url: str
    tokens: TokenCache = field(default_factory=TokenCache)
    admission: Admission = field(default_factory=lambda: Admission(HEAVY_IN_FLIGHT))
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    reads: AsyncEngine = field(init=False)

    @classmethod
    def for_database(cls, url: str, *, production: bool = False, **engine_kw: Any) -> "Services":
        return cls(
            engine=_api_engine(url, **engine_kw),
            rulebook=load_rulebook(),
            metrics=Metrics(),
            production=production,
            database_url=url,
        )

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        # The same engine and pool, in autocommit: reads need no transaction (saves the
        # BEGIN and ROLLBACK round trips).
        self.reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work` on a pooled connection in autocommit. It runs to its end even when the
        request is cancelled meanwhile (its client disconnected), and the caller stops waiting
        at once: a read cancelled halfway through the pool's checkout would never give its
        connection back."""

        async def run() -> T:
            async with self.reads.connect() as conn:
                return await work(conn)

        return await asyncio.shield(run())

    async def close(self) -> None:
        await self.engine.dispose()

    def for_another_loop(self) -> "Services":
        """The same services with a connection pool of their own, for another event loop (an
        asyncio pool serves the loop it first ran on)."""
        return Services(
            engine=_api_engine(self.database_url, pool_size=4),
            rulebook=self.rulebook,
            metrics=self.metrics,
            production=self.production,
            database_url=self.database_url,
            tokens=self.tokens,
            admission=self.admission,
        )

    async def authenticate(self, authorization: str | None) -> auth.Client:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send an API token: Authorization: Bearer <token>")
        digest = auth.token_hash(token)
        client = self.tokens.get(digest)
        if client is None:
            client = await self.read(lambda conn: auth.client_for_token(conn, token))
            if client is None:
                raise Unauthenticated("unknown or revoked API token")
            self.tokens.put(digest, client)
        return client


class LargeRequestLane:
    """An event loop in a thread of its own, with its own services, for large requests.

    Completing a 1,000-code answer is ~0.1 s of CPU without an await: on the server's event
    loop, every other request would wait behind it. On this lane the two loops share the CPU
    through the GIL, so a single eligibility answers while a batch runs. While the lane works,
    the process's GIL switch interval is 1 ms instead of 5: a request on the server's loop
    waits for the GIL at each of its steps (reading the request, each answer of PostgreSQL,
    the response), up to the interval each time; when nothing runs here, the default costs
    less (bench/eligibility.py measures both)."""

    SWITCH_INTERVAL_S = 0.001

    def __init__(self, services: Services) -> None:
        self.services = services.for_another_loop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="large-requests", daemon=True
        )
        self._thread.start()
        self._running = 0  # counted on the server's loop
        self._default_interval = sys.getswitchinterval()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """`work` on the lane; cancelling the caller cancels it there."""
        if self._running == 0:
            self._default_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.SWITCH_INTERVAL_S)
        self._running += 1
        try:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))
        finally:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._default_interval)

    async def close(self) -> None:
        await self.run(self.services.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()


class Context(BaseContext, kw_only=True):
    """The strawberry context of one request."""

    services: Services
    client: auth.Client | None
    request_id: str
    now: datetime
    standings: DataLoader[str, FiledStanding | None]
    extra: dict[str, Any]  # per-request room for loaders of other schema modules
    cancellable: bool = False  # a query: it stops when its client disconnects


def standings_loader(
    services: Services, now: datetime, *, as_of: bool = False
) -> DataLoader[str, FiledStanding | None]:
    """Standings by credit code: what one request asks for in one turn of the event loop —
    its aliases, a batch, a page of files — is read by one query. `as_of`: as they stood at
    the instant `now` (from what was recorded by then)."""

    async def load(codes: list[str]) -> list[FiledStanding | None]:
        found = await services.read(lambda conn: load_standings(conn, codes, now, as_of=as_of))
        return [found[code] for code in codes]

    return DataLoader(load_fn=load)


def standings_as_of(ctx: "Context", at: datetime) -> DataLoader[str, FiledStanding | None]:
    """The request's loader of standings as of `at` (fields asking for the same instant share
    it, and its one query)."""
    key = ("standings_as_of", at)
    loader = ctx.extra.get(key)
    if loader is None:
        loader = ctx.extra[key] = standings_loader(ctx.services, at, as_of=True)
    return loader


class DatabaseUnavailable(ApiError):
    """The database cannot be reached: answered with HTTP 503 before GraphQL runs."""

    def __init__(self) -> None:
        super().__init__("the database is unavailable: retry shortly", DATABASE_UNAVAILABLE)


async def graphql_context(request: Request) -> Context:
    """Litestar dependency: authenticate (401 before GraphQL runs) and build the context.
    A plain GET without a query opens GraphiQL and needs no token."""
    services: Services = request.app.state.services
    client = None
    if request.method != "GET" or "query" in request.query_params:
        try:
            client = await services.authenticate(request.headers.get("authorization"))
        except db.UNREACHABLE as e:
            raise DatabaseUnavailable() from e
    return request_context(services, client, request.scope["state"].get("request_id", "-"))


def request_context(
    services: Services, client: auth.Client | None, request_id: str, now: datetime | None = None
) -> Context:
    now = now or datetime.now(UTC)
    return Context(
        services=services,
        client=client,
        request_id=request_id,
        now=now,
        standings=standings_loader(services, now),
        extra={},
    )
