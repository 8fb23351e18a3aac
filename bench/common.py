"""What the benchmarks share: the repository root and a fresh, migrated database per run."""

import os
import tempfile
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(tag: str) -> str:
    """A new, migrated database on GEOCREDIT_DATABASE_URL's server or the bench's embedded one."""
    from registry import embedded, migrate

    base = os.environ.get("GEOCREDIT_DATABASE_URL") or embedded.start(
        Path(tempfile.gettempdir()) / "geocredit-bench"
    )
    url = sa.engine.make_url(base).set(drivername="postgresql+psycopg")
    name = f"gc_bench_{tag}_{os.getpid()}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target = url.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(target)
    return target


def drop_database(url: str) -> None:
    u = sa.engine.make_url(url)
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    admin.dispose()
