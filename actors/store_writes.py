"""The store's writes: a group commit's rows in one transaction, the signals journal's
look-ups and its pruning.

Functions of a ``sqlite3.Connection``, run on the database thread (actors/sqlite_thread.py);
what they write is planned in actors/store_plan.py.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import msgspec

from alphad.actors.store_messages import row_checksum
from alphad.actors.store_plan import OUTCOME_FIELDS, TRADE_FIELDS, Batch, Recorded


def write_batch(
    db: sqlite3.Connection, batch: Batch, before_commit: Callable[[], None] | None = None
) -> tuple[dict[str, Recorded] | None, dict[str, Recorded] | None]:
    """Insert everything and commit, or roll back and raise; ``before_commit`` runs last
    inside the transaction, and what it raises rolls everything back.

    Returns, for trades and for outcomes, the record (seq and compared fields) of every
    key of the batch when some keys were already recorded (the insert ignored them),
    else None.
    """
    trades_found = outcomes_found = None
    with transaction(db):
        if batch.trades:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO trades (seq, trade_id, strategy, symbol, side, pnl,"
                " entry_ts_ms, exit_ts_ms, regime, size, signal_id, recorded_ms,"
                " detected_regime, regime_source, signal_pending, signal_scored)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                batch.trades,
            )
            if db.total_changes - before != len(batch.trades):
                trades_found = recorded(db, "trades", "trade_id", TRADE_FIELDS, batch.trade_ids)
        if batch.outcomes:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO signal_outcomes"
                " (seq, signal_id, success, ts_ms, pending, scored) VALUES (?,?,?,?,?,?)",
                batch.outcomes,
            )
            if db.total_changes - before != len(batch.outcomes):
                outcomes_found = recorded(
                    db, "signal_outcomes", "signal_id", OUTCOME_FIELDS, batch.outcome_ids
                )
        if batch.signals:
            db.executemany(
                "INSERT INTO signals (signal_id, ts_ms, strategy, symbol, side, confidence,"
                " confluence, regime, quality, execute, size_multiplier, weight, status,"
                " reasons, detected_regime, regime_source, ordinal)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                batch.signals,
            )
        if batch.audit:
            db.executemany(
                "INSERT INTO audit (seq, ts_ms, kind, strategy, old, new, reason, actor,"
                " data) VALUES (?,?,?,?,?,?,?,?,?)",
                batch.audit,
            )
        if batch.history:
            db.executemany(
                "INSERT OR REPLACE INTO history (cycle, ts_ms, state, keyframe, full_bytes)"
                " VALUES (?,?,?,?,?)",
                [msgspec.structs.astuple(row) for row in batch.history],
            )
            _delete_old_history(db, batch.history[-1].cycle - batch.history_keep)
        for ts_ms, trade_seq, outcome_seq, audit_seq, pieces in batch.snapshots:
            # Room for the whole state, then its pieces written into it in place.
            row = db.execute(
                "INSERT INTO snapshots (ts_ms, trade_seq, outcome_seq, audit_seq, state)"
                " VALUES (?,?,?,?,zeroblob(?))",
                (ts_ms, trade_seq, outcome_seq, audit_seq, sum(len(piece) for piece in pieces)),
            ).lastrowid
            assert row is not None
            of_state = 0
            with db.blobopen("snapshots", "state", row) as blob:
                for piece in pieces:
                    blob.write(piece)
                    of_state = zlib.crc32(piece, of_state)
            checksum = row_checksum((ts_ms, trade_seq, outcome_seq, audit_seq), of_state)
            db.execute("UPDATE snapshots SET checksum = ? WHERE id = ?", (checksum, row))
        if batch.snapshots:
            db.executemany(
                "DELETE FROM snapshots WHERE id = ?", [(i,) for i in batch.snapshots_drop]
            )
            db.execute(
                "DELETE FROM snapshots WHERE id NOT IN"
                " (SELECT id FROM snapshots ORDER BY id DESC LIMIT ?)",
                (batch.snapshots_keep,),
            )
        if before_commit is not None:
            before_commit()
    return trades_found, outcomes_found


HISTORY_DELETED_AT_ONCE = 1_000
"""History rows a commit deletes at most (whole keyframe groups): a history_keep lowered
far (200 000 rows to 100) deleted them all in one cycle's transaction, and the trades
committed with it waited seconds."""


def _delete_old_history(db: sqlite3.Connection, before_cycle: int) -> None:
    """Delete the history older than the keyframe group of the first cycle after
    ``before_cycle`` (its delta is rebuilt from there): whole groups, the oldest first,
    about ``HISTORY_DELETED_AT_ONCE`` rows at a time; the rest with the next commits."""

    def group_of(sql: str, *args: int) -> int | None:
        row = db.execute(sql, args).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    cut = group_of(
        "SELECT COALESCE(keyframe, cycle) FROM history WHERE cycle > ? ORDER BY cycle LIMIT 1",
        before_cycle,
    )
    if cut is None:
        return
    # A group boundary (a keyframe) about a chunk's rows in: no delta loses its keyframe.
    step = group_of(
        "SELECT COALESCE(keyframe, cycle) FROM history ORDER BY cycle LIMIT 1 OFFSET ?",
        HISTORY_DELETED_AT_ONCE,
    )
    oldest = group_of("SELECT MIN(cycle) FROM history")
    if step is not None and oldest is not None and oldest < step < cut:
        cut = step
    db.execute("DELETE FROM history WHERE cycle < ?", (cut,))


def _rows_in(db: sqlite3.Connection, query: str, ids: list[str]) -> Iterator[Any]:
    """The rows of ``query`` for ``ids``, its ``{marks}`` their placeholders, 500 ids at a
    time (under SQLite's bound on a statement's variables)."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


def journaled_signals(db: sqlite3.Connection, *, ids: list[str]) -> set[str]:
    """The ids among ``ids`` that are in the signals journal or have an outcome."""
    found: set[str] = set()
    for table in ("signals", "signal_outcomes"):
        query = f"SELECT DISTINCT signal_id FROM {table} WHERE signal_id IN ({{marks}})"
        found.update(row[0] for row in _rows_in(db, query, ids))
    return found


def traded_outcomes(db: sqlite3.Connection, *, ids: list[str]) -> dict[str, tuple[str, float]]:
    """signal_id -> (trade_id, pnl) of the first trade recorded with it, for the ids
    among ``ids`` that have one (the outcome that trade gave its signal: pnl > 0)."""
    found: dict[str, tuple[str, float]] = {}
    query = "SELECT signal_id, trade_id, pnl FROM trades WHERE signal_id IN ({marks}) ORDER BY seq"
    for signal_id, trade_id, pnl in _rows_in(db, query, ids):
        found.setdefault(signal_id, (trade_id, pnl))
    return found


def recorded_trade_ids(db: sqlite3.Connection, *, ids: list[str]) -> set[str]:
    """The trade ids among ``ids`` already recorded."""
    query = "SELECT trade_id FROM trades WHERE trade_id IN ({marks})"
    return {row[0] for row in _rows_in(db, query, ids)}


def delete_old_signals(
    db: sqlite3.Connection,
    *,
    before_ms: int,
    chunk: int,
    after_id: int = 0,
    now_ms: int | None = None,
) -> tuple[int, int | None]:
    """Delete the signals scored before ``before_ms`` among the ``chunk`` journaled after
    row ``after_id``, in the order they were journaled; returns (deleted, the ``after_id``
    of the next chunk, or None when the prune is done).

    A chunk costs the same on a table of any size. The prune goes on while a whole chunk
    held a signal old enough, or was all stamped ahead of ``now_ms``, and stops at the
    first chunk of recent signals: signals a bot stamped with a time far ahead no longer
    hold back every row behind them (a single one stamped 2099 kept all but a chunk's
    worth an hour for ever), and one stamped far in the past waits until the rows
    journaled before it are old enough.
    """
    edge = db.execute(
        "SELECT id FROM signals WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?",
        (after_id, chunk - 1),
    ).fetchone()
    full_chunk = edge is not None
    if edge is None:
        edge = db.execute("SELECT MAX(id) FROM signals WHERE id > ?", (after_id,)).fetchone()
    if edge is None or edge[0] is None:
        return 0, None
    with transaction(db):
        deleted = db.execute(
            "DELETE FROM signals WHERE id > ? AND id <= ? AND ts_ms < ?",
            (after_id, edge[0], before_ms),
        ).rowcount
    if not full_chunk:
        return deleted, None
    if deleted == 0 and now_ms is not None:
        (earliest,) = db.execute(
            "SELECT MIN(ts_ms) FROM signals WHERE id > ? AND id <= ?", (after_id, edge[0])
        ).fetchone()
        ahead = earliest is not None and earliest > now_ms
        return 0, edge[0] if ahead else None
    return deleted, edge[0] if deleted > 0 else None


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Commit what the block wrote; on any error roll it back and raise that error."""
    try:
        yield
        db.commit()
    except BaseException:
        with suppress(sqlite3.Error):
            db.rollback()
        raise


def recorded(
    db: sqlite3.Connection, table: str, key: str, fields: tuple[str, ...], keys: list[str]
) -> dict[str, Recorded]:
    """The seq and ``fields`` of each of ``keys`` as recorded (inside the batch's transaction)."""
    found: dict[str, Recorded] = {}
    query = f"SELECT {key}, seq, {', '.join(fields)} FROM {table} WHERE {key} IN ({{marks}})"
    for value, seq, *values in _rows_in(db, query, keys):
        found[value] = (seq, tuple(values))
    return found
