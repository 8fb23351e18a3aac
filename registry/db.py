"""Where the database is, and engines/sessions onto it (psycopg 3, sync and async)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from registry import embedded
from registry.settings import Settings, get_settings

CONNECT_TIMEOUT_S = 3  # with start-up, an unreachable server is reported within 5 s


class DatabaseUnavailable(RuntimeError):
    pass


UNREACHABLE = (
    sa.exc.OperationalError,  # refused, terminated, restarting, a query cancelled
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,  # no pooled connection in time
    psycopg.OperationalError,
    psycopg.InterfaceError,
    OSError,
)
"""What a failure to reach the database (or to get a connection in time) raises: a request that
meets one may succeed when retried a little later."""


def database_url(settings: Settings | None = None) -> str:
    """The configured server's URL, starting the embedded server when none is configured."""
    settings = settings or get_settings()
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return embedded.start(settings.data_path)


def libpq_url(url: str) -> str:
    """The same URL for plain psycopg (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect_args() -> dict:
    # Every session works in UTC; local (Asia/Shanghai) time is applied where policy needs it.
    return {"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c timezone=UTC"}


def make_engine(url: str, **kw) -> sa.Engine:
    return sa.create_engine(url, connect_args=connect_args(), pool_pre_ping=True, **kw)


def make_async_engine(url: str, **kw) -> AsyncEngine:
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_async_engine(url, connect_args=connect_args(), pool_pre_ping=True, **kw)


@lru_cache
def engine() -> sa.Engine:
    return make_engine(database_url())


def check_reachable(eng: sa.Engine) -> None:
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"database {eng.url.render_as_string(hide_password=True)} unreachable: {reason}"
        ) from exc


def session_factory(eng: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(eng, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession], actor: str
) -> AsyncIterator[AsyncSession]:
    """A session in one transaction whose writes are attributed to `actor` in the audit chain."""
    async with factory() as session, session.begin():
        await session.execute(
            sa.text("SELECT set_config('geocredit.actor', :a, true)"), {"a": actor}
        )
        yield session
