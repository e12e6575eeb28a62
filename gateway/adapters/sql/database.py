"""Opening the database: which one (SQLite file or PostgreSQL), its file permissions, its schema version.

Blocking: call these off the event loop.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Engine, create_engine, event, make_url

from gateway.settings import Settings

log = logging.getLogger(__name__)

SQLITE_FILE = "jupycell.sqlite3"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def database_url(settings: Settings) -> URL:
    """The configured PostgreSQL URL (driver psycopg 3), or the SQLite file in the data directory."""
    if settings.database_url is not None:
        url = make_url(settings.database_url.get_secret_value())
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    return URL.create("sqlite", database=str(settings.data_dir / SQLITE_FILE))


def prepare_sqlite_file(path: Path) -> None:
    """Create the data directory (0700) and the database file (0600); tighten them if they exist.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _tune_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """Per connection: write-ahead log (a commit is one append), fsync only at checkpoints (a commit survives a
    crash of the gateway, though not necessarily of the machine), foreign keys on, wait on a locked file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_database_engine(settings: Settings) -> Engine:
    """An engine for the configured database, its file prepared (SQLite); does not migrate."""
    url = database_url(settings)
    if url.get_backend_name() == "sqlite":
        prepare_sqlite_file(Path(url.database or ""))
        engine = create_engine(url)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_size=2, max_overflow=2)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``) on this engine."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
