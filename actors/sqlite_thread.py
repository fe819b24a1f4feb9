"""One hop to the database thread: run a function of the ``sqlite3.Connection`` on the
thread aiosqlite opened it on, and await its result.

Why not aiosqlite's public calls alone: each of them (``execute``, ``executemany``,
``fetchall``, ``commit`` ...) is a hop of its own to that thread and back, about 100 µs
on a busy machine, so a group commit written with them would cost a hop per statement
plus one for the commit; with this, a whole batch is one hop however many rows and
tables it holds. aiosqlite builds every public call on ``Connection._execute(fn)``,
which queues ``fn`` to the connection's thread and hands its result or its exception
back to the awaiting coroutine, and on ``Connection._conn``, the sqlite3 connection
(usable on that thread only); the daemon's last-resort stop also joins the thread
itself, ``Connection._thread`` (``stop_and_join``). Those private names are the only
ones of aiosqlite alphad uses, and only here; pyproject.toml admits the releases they are known in,
and ``require_primitive`` refuses the start, before any connection is opened, when
the installed aiosqlite no longer has them.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar, cast

import aiosqlite

_T = TypeVar("_T")


def require_primitive(connection: type | None = None) -> None:
    """``RuntimeError`` unless ``connection`` (by default aiosqlite's ``Connection``, as
    installed) has the primitive."""
    if connection is None:
        connection = aiosqlite.Connection
    execute = getattr(connection, "_execute", None)
    raw = inspect.getattr_static(connection, "_conn", None)
    if not inspect.iscoroutinefunction(execute) or not isinstance(raw, property):
        version = getattr(aiosqlite, "__version__", "?")
        raise RuntimeError(
            f"aiosqlite {version} lacks Connection._execute (or Connection._conn), which"
            " alphad's store runs its work on the database thread with; install the"
            " aiosqlite versions pyproject.toml names"
        )


async def in_connection_thread(
    db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], _T]
) -> _T:
    """``work(connection)`` on the connection's thread; its result, or its exception."""
    return cast(_T, await db._execute(lambda: work(db._conn)))


def stop_and_join(db: aiosqlite.Connection, timeout_s: float) -> bool:
    """Have the database thread close the connection after the work already queued to it
    (aiosqlite's public ``stop()``), and wait up to ``timeout_s`` for the thread to end.
    True when it ended; False when it is still running or this aiosqlite keeps no thread
    object to wait on (``Connection._thread``, private). Safe from any thread: the
    daemon's watchdog calls it when a stop overruns its deadline."""
    db.stop()
    thread = getattr(db, "_thread", None)
    if not isinstance(thread, threading.Thread):
        return False
    thread.join(timeout_s)
    return not thread.is_alive()
