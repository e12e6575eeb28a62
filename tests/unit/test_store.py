"""The store on a real database: a SQLite file (always) and PostgreSQL (when a test server is configured)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from gateway.adapters.sql import Store
from gateway.adapters.sql.database import SQLITE_FILE
from gateway.kernels.ports import KernelRecord
from gateway.notebook import Cell
from gateway.settings import Settings
from testing.harness import postgres_database, skip_without_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = {"data_dir": tmp_path / "data", "kernels_dir": Path("/tmp/jc-unit"), "instance": "unit"}
    if request.param == "sqlite":
        yield Settings(**base)
        return
    skip_without_postgres()
    with postgres_database() as url:
        yield Settings(**base, database_url=url)


HI = {"output_type": "stream", "name": "stdout", "text": "hi\n"}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def record(kernel_id: int = 1, instance: str = "unit", **changes: Any) -> KernelRecord:
    values: dict[str, Any] = dict(
        id=kernel_id,
        uuid=f"00000000-0000-0000-0000-{kernel_id:012d}",
        instance=instance,
        owner=None,
        runtime="runc",
        env={"LANG": "C.UTF-8"},
        sandbox={
            "name": f"jupycell-{instance}-{kernel_id}",
            "container_id": "c" * 64,
            "connection": {"transport": "ipc", "ip": "/run/jupycell/k", "shell_port": 1},
        },
        hmac_key="secret-key",
        limits={"mem_limit_mb": 512},
        state="idle",
        last_death=None,
        created_at=1.0,
        last_activity_at=2.0,
    )
    values.update(changes)
    return KernelRecord(**values)


async def opened(settings: Settings) -> Store:
    return await Store.open(settings)


def test_open_migrates_to_the_newest_schema_and_is_idempotent(settings: Settings) -> None:
    async def scenario() -> set[str]:
        for _ in range(2):  # a second start finds the schema current
            store = await Store.open(settings)
            tables = await asyncio.to_thread(lambda engine=store.engine: set(inspect(engine).get_table_names()))
            await store.close()
        return tables

    assert {"kernels", "cells", "runs", "alembic_version"} <= run(scenario())


def test_sqlite_file_and_data_dir_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # an existing, too open directory is tightened

    async def scenario() -> None:
        store = await Store.open(Settings(data_dir=data_dir, kernels_dir=Path("/tmp/jc-unit")))
        await store.add_kernel(record())
        await store.close()

    run(scenario())
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.iterdir():  # the database and its -wal / -shm files
        assert path.name.startswith(SQLITE_FILE)
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_kernels_and_cells_round_trip(settings: Settings) -> None:
    async def scenario() -> list[KernelRecord]:
        store = await Store.open(settings)
        await store.add_kernel(record(1))
        await store.add_kernel(record(2, last_death="boom"))
        await store.add_kernel(record(3, instance="someone-else"))
        await store.add_cell(1, Cell(2, "y = x * 2"))
        await store.add_cell(1, Cell(1, "x = 10"))
        await store.save_cell(
            1, Cell(1, "x = 11", [{"output_type": "stream", "name": "stdout", "text": "hi\n"}], 4, "ok")
        )
        await store.add_cell(2, Cell(1, "gone"))
        await store.delete_cell(2, 1)
        await store.update_kernel(2, state="dead")
        loaded = await store.load_kernels("unit")
        await store.close()
        return loaded

    loaded = sorted(run(scenario()), key=lambda r: r.id)
    assert [r.id for r in loaded] == [1, 2]
    first, second = loaded
    assert first.hmac_key == "secret-key" and "key" not in first.sandbox["connection"]
    assert first.sandbox["name"] == "jupycell-unit-1" and first.container_id == "c" * 64
    assert "secret-key" not in repr(first)
    assert [c.number for c in first.cells] == [1, 2]
    one, two = first.cells
    assert (one.code, one.outputs, one.execution_count, one.status) == ("x = 11", [HI], 4, "ok")
    assert (two.code, two.outputs, two.execution_count, two.status, two.stale) == ("y = x * 2", [], None, None, False)
    assert "x" in one.names.defines and "x" in two.names.uses  # the dependency analysis is redone on load
    assert (second.state, second.last_death, second.cells) == ("dead", "boom", [])


def test_run_is_recorded_then_finished_in_one_transaction(settings: Settings) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], KernelRecord]:
        store = await Store.open(settings)
        await store.add_kernel(record(1))
        cell = Cell(1, "print(1)")
        await store.add_cell(1, cell)
        store.begin_run("r1", 1, cell, 5.0)
        store.save_partial_outputs("r1", [{"output_type": "stream", "name": "stdout", "text": "partial"}], False)
        during = await store.runs_of(1)
        cell.outputs, cell.execution_count, cell.status = [{"output_type": "stream", "name": "stdout"}], 1, "ok"
        await store.finish_run("r1", 1, cell, truncated=False, detail=None, last_activity=99.0, started_at=5.0)
        # A short run is only recorded at its end.
        await store.finish_run("r2", 1, cell, truncated=False, detail="d", last_activity=99.0, started_at=6.0)
        after = await store.runs_of(1)
        (loaded,) = await store.load_kernels("unit")
        await store.close()
        return during, after, loaded

    during, after, loaded = run(scenario())
    assert during[0]["state"] == "running" and during[0]["outputs"][0]["text"] == "partial"
    assert after[0]["state"] == "finished" and after[0]["status"] == "ok" and after[0]["outputs"] is None
    assert (after[1]["id"], after[1]["state"], after[1]["detail"], after[1]["started_at"]) == (
        "r2",
        "finished",
        "d",
        6.0,
    )
    assert loaded.cells[0].status == "ok" and loaded.cells[0].execution_count == 1
    assert loaded.last_activity_at == 99.0


def test_runs_in_flight_at_start_become_interrupted_with_their_partial_outputs(settings: Settings) -> None:
    async def scenario() -> tuple[list[Any], list[dict[str, Any]], KernelRecord, list[Any]]:
        store = await Store.open(settings)
        await store.add_kernel(record(1))
        await store.add_kernel(record(2, instance="other"))
        cell = Cell(3, "loop()", [{"output_type": "stream", "name": "stdout", "text": "old\n"}], 7, "ok")
        await store.add_cell(1, cell)
        await store.add_cell(2, Cell(1, "x"))
        store.begin_run("r1", 1, cell, 1.0)
        store.save_partial_outputs("r1", [{"output_type": "stream", "name": "stdout", "text": "0\n1\n"}], False)
        store.begin_run("r2", 2, Cell(1, "x"), 1.0)  # another instance's run is not this gateway's business
        await store.close()

        store = await Store.open(settings)  # "the gateway restarted"
        interrupted = await store.interrupt_open_runs("unit", "the gateway stopped")
        runs = await store.runs_of(1)
        (loaded,) = await store.load_kernels("unit")
        again = await store.interrupt_open_runs("unit", "the gateway stopped")
        await store.close()
        return interrupted, runs, loaded, again

    interrupted, runs, loaded, again = run(scenario())
    assert [(r.kernel_id, r.cell_number) for r in interrupted] == [(1, 3)]
    partial = {"output_type": "stream", "name": "stdout", "text": "0\n1\n"}
    marker = {"output_type": "error", "ename": "GatewayRestart", "evalue": "the gateway stopped", "traceback": []}
    assert runs[0]["state"] == "interrupted" and runs[0]["outputs"] == [partial, marker]
    assert loaded.cells[0].status == "interrupted" and loaded.cells[0].outputs == [partial, marker]
    assert loaded.cells[0].execution_count is None
    assert again == []


def test_replacing_a_kernel_resets_its_cells_and_deleting_forgets_everything(settings: Settings) -> None:
    async def scenario() -> tuple[KernelRecord, list[KernelRecord], list[dict[str, Any]]]:
        store = await Store.open(settings)
        await store.add_kernel(record(1))
        cell = Cell(1, "x = 1", [{"output_type": "stream", "name": "stdout", "text": "kept\n"}], 3, "ok")
        await store.add_cell(1, cell)
        store.begin_run("r1", 1, cell, 1.0)
        cell.forget_run()
        await store.kernel_replaced(
            1, [cell], sandbox={"container_id": "d" * 64, "name": "n", "connection": {}}, hmac_key="new-key",
            limits={}, state="idle", last_death=None,
        )  # fmt: skip
        (replaced,) = await store.load_kernels("unit")
        await store.delete_kernel(1)
        remaining = await store.load_kernels("unit")
        runs = await store.runs_of(1)
        await store.close()
        return replaced, remaining, runs

    replaced, remaining, runs = run(scenario())
    assert replaced.container_id == "d" * 64 and replaced.hmac_key == "new-key"
    assert (replaced.cells[0].status, replaced.cells[0].execution_count) == (None, None)
    assert replaced.cells[0].outputs[0]["text"] == "kept\n"
    assert remaining == [] and runs == []


def test_a_kernel_in_a_container_started_for_another_id_keeps_that_sandbox_id(settings: Settings) -> None:
    async def scenario() -> tuple[KernelRecord, KernelRecord]:
        store = await Store.open(settings)
        await store.add_kernel(record(1))
        (own,) = await store.load_kernels("unit")
        connection = {"transport": "ipc", "ip": "/run/jupycell/k"}
        await store.kernel_replaced(
            1, [], sandbox={"container_id": "d" * 64, "name": "n", "connection": connection, "sandbox_id": 77},
            hmac_key="new-key", limits={}, state="idle", last_death=None,
        )  # fmt: skip
        (pooled,) = await store.load_kernels("unit")
        await store.close()
        return own, pooled

    own, pooled = run(scenario())
    assert own.sandbox_id == 1  # a record written without one: the kernel's own id
    assert pooled.sandbox_id == 77 and pooled.sandbox["sandbox_id"] == 77
    assert pooled.sandbox["connection"] == {"transport": "ipc", "ip": "/run/jupycell/k"}


def test_settings_pick_the_database(tmp_path: Path) -> None:
    from gateway.adapters.sql.database import database_url

    sqlite = database_url(Settings(data_dir=tmp_path, kernels_dir=Path("/tmp/jc-unit")))
    assert sqlite.get_backend_name() == "sqlite" and sqlite.database == str(tmp_path / SQLITE_FILE)
    pg = database_url(Settings(kernels_dir=Path("/tmp/jc-unit"), database_url="postgresql://u:p@db/jupycell"))
    assert pg.drivername == "postgresql+psycopg" and pg.database == "jupycell"
    assert "p@db" not in repr(Settings(kernels_dir=Path("/tmp/jc-unit"), database_url="postgresql://u:p@db/x"))
    with pytest.raises(ValueError):
        Settings(data_dir="relative", kernels_dir=Path("/tmp/jc-unit"))


def test_a_kernels_image_and_packages_are_kept_and_go_with_it(settings: Settings) -> None:
    """Issue 13 (migration 0004_kernel_packages): ``kernels.image`` and ``kernel_packages``."""
    wheel = {"name": "tabulate", "version": "0.9.0", "filename": "tabulate-0.9.0-py3-none-any.whl", "size": 35}

    async def scenario() -> tuple[list[KernelRecord], dict[int, Any], dict[int, Any]]:
        store = await Store.open(settings)
        await store.add_kernel(record(1, image="team/science:1"))
        await store.add_kernel(record(2))
        await store.add_kernel(record(3, instance="someone-else"))
        await store.save_packages(1, ["tabulate"], [wheel])
        await store.save_packages(1, ["tabulate", "cffi"], [wheel])  # replaces the record
        await store.save_packages(2, ["pyyaml"], [])
        await store.save_packages(3, ["other"], [])
        loaded, packages = await store.load_kernels("unit"), await store.load_packages("unit")
        await store.delete_kernel(2)
        after = await store.load_packages("unit")
        await store.close()
        return loaded, packages, after

    loaded, packages, after = run(scenario())
    assert {r.id: r.image for r in loaded} == {1: "team/science:1", 2: None}
    assert packages == {1: (["tabulate", "cffi"], [wheel]), 2: (["pyyaml"], [])}
    assert after == {1: (["tabulate", "cffi"], [wheel])}
