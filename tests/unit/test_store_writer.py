"""The store's thread: order kept, run ends committed together, a failing write fails alone, nothing dropped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, text

from gateway.adapters.sql.writer import StoreThread


def engine_with_commits(path: Path) -> tuple[StoreThread, list[int]]:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    commits: list[int] = []
    event.listen(engine, "commit", lambda _: commits.append(1))
    return StoreThread(engine), commits


def insert(n: int, order: list[int]):
    def work(connection: Connection) -> int:
        order.append(n)
        connection.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
        return n

    return work


def rows(writer: StoreThread) -> list[int]:
    with writer.engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT n FROM t ORDER BY n"))]


async def hold(writer: StoreThread) -> tuple[threading.Event, asyncio.Future[None]]:
    """Keep the thread busy until the event is set (jobs handed in meanwhile wait on the loop)."""
    release = threading.Event()
    started = threading.Event()

    def blocking(_: Connection) -> None:
        started.set()
        release.wait(30)

    busy = asyncio.ensure_future(writer.run(blocking))
    await asyncio.to_thread(started.wait, 30)
    return release, busy


def test_run_ends_queued_meanwhile_share_one_commit_and_order_is_kept(tmp_path: Path) -> None:
    asyncio.run(_test_run_ends_queued_meanwhile_share_one_commit_and_order_is_kept(tmp_path))


async def _test_run_ends_queued_meanwhile_share_one_commit_and_order_is_kept(tmp_path: Path) -> None:
    writer, commits = engine_with_commits(tmp_path / "db")
    order: list[int] = []
    release, busy = await hold(writer)
    ends = [asyncio.ensure_future(writer.run(insert(n, order), groupable=True)) for n in (1, 2, 3)]
    await asyncio.sleep(0.01)  # the three tasks hand their jobs in
    writer.queue(insert(4, order), "a write nobody awaits")
    last = asyncio.ensure_future(writer.run(insert(5, order), groupable=True))
    await asyncio.sleep(0.05)
    commits.clear()
    release.set()
    assert await asyncio.gather(busy, *ends, last) == [None, 1, 2, 3, 5]
    assert order == [1, 2, 3, 4, 5]
    assert len(commits) == 4  # the blocking job, 1-3 together, 4 alone (not groupable), 5
    assert rows(writer) == [1, 2, 3, 4, 5]
    await writer.close()


def test_a_failing_write_in_a_group_fails_alone(tmp_path: Path) -> None:
    asyncio.run(_test_a_failing_write_in_a_group_fails_alone(tmp_path))


async def _test_a_failing_write_in_a_group_fails_alone(tmp_path: Path) -> None:
    writer, _ = engine_with_commits(tmp_path / "db")
    order: list[int] = []

    def failing(connection: Connection) -> None:
        connection.execute(text("INSERT INTO t (n) VALUES (99)"))
        raise ValueError("fenced")

    release, busy = await hold(writer)
    jobs = [
        asyncio.ensure_future(writer.run(insert(1, order), groupable=True)),
        asyncio.ensure_future(writer.run(failing, groupable=True)),
        asyncio.ensure_future(writer.run(insert(2, order), groupable=True)),
    ]
    await asyncio.sleep(0.05)
    release.set()
    await busy
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError)
    assert rows(writer) == [1, 2]  # the failed write left nothing; the others were committed
    await writer.close()


def test_close_finishes_every_write_handed_in(tmp_path: Path) -> None:
    asyncio.run(_test_close_finishes_every_write_handed_in(tmp_path))


async def _test_close_finishes_every_write_handed_in(tmp_path: Path) -> None:
    writer, _ = engine_with_commits(tmp_path / "db")
    order: list[int] = []
    release, busy = await hold(writer)
    for n in range(10):
        writer.queue(insert(n, order), "a write nobody awaits")
    closing = asyncio.ensure_future(writer.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    release.set()
    await closing
    await busy
    assert order == list(range(10))
    writer.queue(insert(10, order), "too late")  # dropped with a warning, not run on a closed thread
    assert 10 not in order
