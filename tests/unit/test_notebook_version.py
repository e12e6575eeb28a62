"""The notebook's version (issue 12): the check, the next cell number, and the version kept by the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from gateway.adapters.sql import Store, database
from gateway.api.errors import status_of
from gateway.errors import VersionConflict
from gateway.notebook import Notebook
from gateway.settings import Settings
from tests.unit.test_store import record, settings  # noqa: F401 (settings: the store tests' fixture, both databases)


def test_expect_version_and_next_number() -> None:
    notebook = Notebook()
    assert notebook.version == 0 and notebook.next_number() == 1
    notebook.expect_version(None)
    notebook.expect_version(0)
    notebook.add(5, "x = 1")
    assert notebook.next_number() == 6
    notebook.version = 3
    with pytest.raises(VersionConflict) as conflict:
        notebook.expect_version(2)
    assert (
        conflict.value.current == 3 and status_of(conflict.value) == 409 and "version 3, not 2" in str(conflict.value)
    )


def test_migration_0003_adds_and_removes_the_version_column(tmp_path: Path) -> None:
    from alembic import command

    engine = database.create_database_engine(Settings(kernels_dir="/tmp/k", data_dir=tmp_path))
    config = database.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        assert "notebook_version" not in {c["name"] for c in inspect(connection).get_columns("kernels")}
        command.upgrade(config, "head")
        assert "notebook_version" in {c["name"] for c in inspect(connection).get_columns("kernels")}
        command.downgrade(config, "0002")
        assert "notebook_version" not in {c["name"] for c in inspect(connection).get_columns("kernels")}
    engine.dispose()


def test_store_keeps_the_version_with_each_change(settings: Settings) -> None:  # noqa: F811
    async def scenario() -> list[int]:
        store = await Store.open(settings)
        seen = []
        try:
            await store.add_kernel(record(1))
            notebook = Notebook()
            cell = notebook.add(1, "x = 1")
            await store.add_cell(1, cell, version=1)
            seen.append((await store.load_kernels("unit"))[0].notebook_version)
            await store.save_cell(1, cell, version=2)
            seen.append((await store.load_kernels("unit"))[0].notebook_version)
            await store.delete_cell(1, 1, version=3)
            seen.append((await store.load_kernels("unit"))[0].notebook_version)
        finally:
            await store.close()
        return seen

    assert asyncio.run(scenario()) == [1, 2, 3]
