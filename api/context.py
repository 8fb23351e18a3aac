"""What a request runs with: the process-wide services, and per request the caller, the clock and
fresh DataLoaders (a caching loader kept per process would serve stale data across callers; the
process-wide `SharedStandingReads` keeps nothing)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from litestar import Request
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader
from strawberry.litestar import BaseContext

from api.errors import Unauthenticated
from api.observability import Metrics
from registry import auth, db
from registry.db import session_factory
from registry.standing import FiledStanding, load_standings
from scoring.rulebook import Rulebook, load_rulebook

T = TypeVar("T")


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


@dataclass
class Services:
    """Process-wide: built once by the app factory."""

    engine: AsyncEngine
    rulebook: Rulebook
    metrics: Metrics
    production: bool
    database_url: str
    tokens: TokenCache = field(default_factory=TokenCache)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    reads: AsyncEngine = field(init=False)
    decision_pool: AsyncConnectionPool = field(init=False)
    standings: "SharedStandingReads" = field(init=False)

    @classmethod
    def for_database(cls, url: str, *, production: bool = False, **engine_kw: Any) -> "Services":
        return cls(
            engine=db.make_async_engine(url, **engine_kw),
            rulebook=load_rulebook(),
            metrics=Metrics(),
            production=production,
            database_url=url,
        )

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        # Reads need no transaction: autocommit saves the BEGIN and ROLLBACK round trips.
        self.reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # The approval systems' hot path reads on plain psycopg connections: SQLAlchemy's
        # checkout (greenlet hop, pre-ping round trip) cost more than the query.
        self.decision_pool = AsyncConnectionPool(
            db.libpq_url(self.database_url),
            kwargs={"autocommit": True, **db.connect_args()},
            min_size=2,
            max_size=10,
            timeout=db.CONNECT_TIMEOUT_S,  # to wait for a connection: then the read fails
            open=False,
            name="decision-reads",
        )
        self.standings = SharedStandingReads(self)

    async def decision_read(self, read: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """`read` on a pooled autocommit connection. Pooled connections are not pinged before
        use: when one turns out dead (a database restart kills them all), the pool is told to
        test and replace its idle ones, and the read — safe to repeat — runs once more. Any
        other failure (no connection within the timeout, a cancelled query) is not repeated."""
        if self.decision_pool.closed:
            await self.decision_pool.open()
        conn = None
        try:
            async with self.decision_pool.connection() as conn:
                return await read(conn)
        except psycopg.OperationalError:
            if conn is None or not conn.broken:
                raise
            await self.decision_pool.check()
        async with self.decision_pool.connection() as conn:
            return await read(conn)

    async def close(self) -> None:
        await self.decision_pool.close()
        await self.engine.dispose()

    async def authenticate(self, authorization: str | None) -> auth.Client:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send an API token: Authorization: Bearer <token>")
        digest = auth.token_hash(token)
        client = self.tokens.get(digest)
        if client is None:
            async with self.reads.connect() as conn:
                client = await auth.client_for_token(conn, token)
            if client is None:
                raise Unauthenticated("unknown or revoked API token")
            self.tokens.put(digest, client)
        return client


class Context(BaseContext, kw_only=True):
    """The strawberry context of one request."""

    services: Services
    client: auth.Client | None
    request_id: str
    now: datetime
    standings: DataLoader[str, FiledStanding | None]
    extra: dict[str, Any]  # per-request room for loaders of other schema modules


def standings_loader(services: Services, now: datetime) -> DataLoader[str, FiledStanding | None]:
    async def load(codes: list[str]) -> list[FiledStanding | None]:
        return await services.standings.load_many([(code, now) for code in codes])

    return DataLoader(load_fn=load)


SHARED_READ_MAX = 500
"""Codes per shared read, at most: a reviewer's long page does not hold up many decisions."""


class SharedStandingReads:
    """The standings that requests in flight ask for in the same turn of the event loop, read
    by one query: under load, several requests share a pool checkout and a round trip. Nothing
    is kept between turns (each request's own loader keeps its answers for the request).

    The query keeps listings active at the earliest `now` of the turn; each decision then
    applies its own request's `now` (`scoring.decision.decide` drops a listing ended by then)."""

    def __init__(self, services: "Services") -> None:
        self.services = services
        self._loader: DataLoader[tuple[str, datetime], FiledStanding | None] | None = None

    def load_many(self, keys: list[tuple[str, datetime]]) -> Awaitable[list]:
        loop = asyncio.get_running_loop()
        if self._loader is None or self._loader.loop is not loop:
            self._loader = DataLoader(
                load_fn=self._read, cache=False, loop=loop, max_batch_size=SHARED_READ_MAX
            )
        return self._loader.load_many(keys)

    async def _read(self, keys: list[tuple[str, datetime]]) -> list[FiledStanding | None]:
        now = min(now for _, now in keys)
        codes = [code for code, _ in keys]
        found = await self.services.decision_read(lambda conn: load_standings(conn, codes, now))
        return [found[code] for code in codes]


async def graphql_context(request: Request) -> Context:
    """Litestar dependency: authenticate (401 before GraphQL runs) and build the context.
    A plain GET without a query opens GraphiQL and needs no token."""
    services: Services = request.app.state.services
    client = None
    if request.method != "GET" or "query" in request.query_params:
        client = await services.authenticate(request.headers.get("authorization"))
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
