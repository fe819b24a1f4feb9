"""The one hop to the database thread (actors/sqlite_thread.py) on the installed aiosqlite."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from alphad.actors.sqlite_thread import in_connection_thread, require_primitive, stop_and_join
from alphad.actors.store import StoreActor


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await aiosqlite.connect(tmp_path / "t.db")
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_work_runs_on_the_connections_own_thread(db: aiosqlite.Connection) -> None:
    # Where aiosqlite's public calls run: a SQL function reports its thread.
    await db.create_function("thread_id", 0, threading.get_ident)
    async with db.execute("SELECT thread_id()") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    connection_thread = row[0]

    def work(raw: sqlite3.Connection) -> tuple[int, int]:
        # sqlite3 refuses a connection used off the thread that opened it.
        raw.execute("CREATE TABLE t (x INTEGER)")
        raw.execute("INSERT INTO t VALUES (41), (1)")
        return threading.get_ident(), raw.execute("SELECT SUM(x) FROM t").fetchone()[0]

    thread, total = await in_connection_thread(db, work)
    assert thread == connection_thread != threading.get_ident()
    assert total == 42
    async with db.execute("SELECT COUNT(*) FROM t") as cursor:
        assert await cursor.fetchone() == (2,)


async def test_an_exception_of_the_work_comes_back_to_the_caller(
    db: aiosqlite.Connection,
) -> None:
    failure = LookupError("not there")

    def work(raw: sqlite3.Connection) -> None:
        raise failure

    with pytest.raises(LookupError) as raised:
        await in_connection_thread(db, work)
    assert raised.value is failure
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await in_connection_thread(db, lambda raw: raw.execute("SELECT * FROM missing"))
    # The thread goes on serving the connection.
    assert await in_connection_thread(db, lambda raw: raw.execute("SELECT 7").fetchone()) == (7,)


class _Without(aiosqlite.Connection):
    """aiosqlite as a release without the primitive would be (none installable here has
    lost it): the same class, less ``_execute``."""

    _execute = None


class _WithoutConn(aiosqlite.Connection):
    _conn = None


def test_the_installed_aiosqlite_has_the_primitive() -> None:
    require_primitive()
    require_primitive(aiosqlite.Connection)


@pytest.mark.parametrize("connection", [_Without, _WithoutConn])
def test_an_aiosqlite_without_the_primitive_is_refused_by_name(connection: type) -> None:
    with pytest.raises(RuntimeError) as refused:
        require_primitive(connection)
    message = str(refused.value)
    assert f"aiosqlite {aiosqlite.__version__} lacks Connection._execute" in message
    assert "pyproject.toml" in message


async def test_the_store_checks_the_primitive_before_it_opens_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiosqlite, "Connection", _Without)
    store = StoreActor(tmp_path / "sub" / "alphad.db")
    with pytest.raises(RuntimeError, match=r"lacks Connection\._execute"):
        await store.on_start()
    assert store.db is None and not (tmp_path / "sub").exists()



async def test_stop_and_join_ends_the_thread_after_the_work_queued_to_it(tmp_path: Path) -> None:
    db = await aiosqlite.connect(tmp_path / "t.db")

    def slow(raw: sqlite3.Connection) -> int:
        time.sleep(0.2)
        return int(raw.execute("SELECT 41 + 1").fetchone()[0])

    queued = asyncio.ensure_future(in_connection_thread(db, slow))
    await asyncio.sleep(0.05)  # the work is on the thread's queue
    assert stop_and_join(db, 10.0) is True
    assert await queued == 42


async def test_stop_and_join_says_so_when_there_is_no_thread_to_wait_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await aiosqlite.connect(tmp_path / "t.db")
    thread = db._thread
    monkeypatch.setattr(db, "_thread", None)
    assert stop_and_join(db, 0.1) is False
    monkeypatch.undo()
    assert thread is not None
    thread.join(10.0)
    assert not thread.is_alive()
