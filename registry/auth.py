"""API clients and their bearer tokens, and the reviewer console's sessions. Only a token's (or
session id's) SHA-256 is stored; the token itself is shown once, when it is created. A token may
expire; a revoked or expired one is refused."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from registry.models import ApiClient, ConsoleSession
from registry.vocabulary import Role

TOKEN_PREFIX = "gct_"
TOKEN_CACHE_SECONDS = 10.0
"""An API process keeps a token it has checked this long (api.context.TokenCache): a revoked
token is refused by running processes within this time (README, `geocredit token revoke`)."""


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling: an api_client row, as the transport sees it."""

    id: int
    name: str
    role: Role
    expires_at: datetime | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_client(
    session: AsyncSession, name: str, role: Role | str, expires_at: datetime | None = None
) -> tuple[Client, str]:
    """Create a client with a new token; returns the client and the token (never stored)."""
    role = Role(role)
    name = name.strip()
    if not name:
        raise ValueError("a client needs a name")
    token = new_token()
    row = ApiClient(name=name, role=role.value, token_hash=token_hash(token), expires_at=expires_at)
    session.add(row)
    await session.flush()
    return Client(row.id, row.name, role, expires_at), token


def _usable(now: datetime | None = None) -> sa.ColumnElement[bool]:
    """A client whose token is neither revoked nor expired at `now` (default: the database's)."""
    at = sa.func.now() if now is None else now
    return sa.and_(
        ApiClient.revoked_at.is_(None),
        sa.or_(ApiClient.expires_at.is_(None), ApiClient.expires_at > at),
    )


async def client_for_token(conn: AsyncSession | AsyncConnection, token: str) -> Client | None:
    """The client holding this token, unless it is revoked or expired; else None."""
    row = (
        await conn.execute(
            sa.select(ApiClient.id, ApiClient.name, ApiClient.role, ApiClient.expires_at).where(
                ApiClient.token_hash == token_hash(token), _usable()
            )
        )
    ).first()
    return Client(row.id, row.name, Role(row.role), row.expires_at) if row else None


async def list_clients(session: AsyncSession) -> list[ApiClient]:
    """Every client, revoked and expired ones too, oldest first."""
    return list((await session.scalars(sa.select(ApiClient).order_by(ApiClient.id))).all())


async def revoke(session: AsyncSession, client_id: int) -> bool:
    """Revoke a client's token; False when there is no such client or it was revoked already."""
    result = await session.execute(
        sa.update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount > 0


# ---------------------------------------------------------------- reviewer console sessions


@dataclass(frozen=True, slots=True)
class ConsoleLogin:
    """A console session's client and the token its forms must carry."""

    client: Client
    csrf_token: str


async def open_console_session(
    session: AsyncSession, client: Client, now: datetime, lifetime: timedelta
) -> tuple[str, str]:
    """A new session for `client` until now + lifetime: (session id for the cookie, form token).
    Expired sessions are cleared on the way."""
    await session.execute(sa.delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=token_hash(session_id),
            client_id=client.id,
            csrf_token=csrf,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return session_id, csrf


async def console_login(
    conn: AsyncSession | AsyncConnection, session_id: str, now: datetime
) -> ConsoleLogin | None:
    """The unexpired session with this id, of a client whose token is neither revoked nor
    expired."""
    row = (
        await conn.execute(
            sa.select(ApiClient.id, ApiClient.name, ApiClient.role, ConsoleSession.csrf_token)
            .join(ApiClient, ApiClient.id == ConsoleSession.client_id)
            .where(
                ConsoleSession.id_hash == token_hash(session_id),
                ConsoleSession.expires_at > now,
                _usable(now),
            )
        )
    ).first()
    if row is None:
        return None
    return ConsoleLogin(Client(row.id, row.name, Role(row.role)), row.csrf_token)


async def close_console_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(
        sa.delete(ConsoleSession).where(ConsoleSession.id_hash == token_hash(session_id))
    )
