"""Alembic environment: the URL comes from the Config (see registry.migrate), never from a file."""

import re

from alembic import context
from sqlalchemy import pool
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from registry.db import make_engine

# Monthly observation partitions and APScheduler's own job store are not modelled.
_UNMODELLED = re.compile(r"^(observation_\d{6}|observation_default|apscheduler_jobs)$")


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and _UNMODELLED.match(name or ""))


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


run_migrations_online()
