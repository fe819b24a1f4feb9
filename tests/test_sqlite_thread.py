"""The one hop to the database thread (actors/sqlite_thread.py) on the installed aiosqlite."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from alphad.actors.sqlite_thread import in_connection_thread, require_primitive
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
