"""Alembic environment. The gateway passes its own connection (``config.attributes["connection"]``);
``alembic`` on the command line (alembic.ini at the repo root) uses the database the JUPYCELL_* settings name."""

from __future__ import annotations

from alembic import context

from gateway.adapters.sql.schema import metadata


def run_migrations(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    from gateway.adapters.sql.database import create_database_engine
    from gateway.settings import Settings

    engine = create_database_engine(Settings())
    with engine.begin() as connection:
        run_migrations(connection)
    engine.dispose()
