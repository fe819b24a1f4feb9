"""The store's reads: what a restart recovers, and the paged queries of the audit log, the
history and the signals journal.

Functions of a ``sqlite3.Connection``, run on the database thread (actors/sqlite_thread.py),
each read in one hop. A page holds no more rows than fit in about ``max_bytes`` (at least
one) and says whether more follow.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from alphad.actors.events import UNKNOWN_REGIME, ClosedTrade, SignalOutcome
from alphad.actors.history_rows import rebuild
from alphad.actors.store_messages import (
    JournaledSignal,
    QueryAudit,
    QueryHistory,
    QuerySignals,
    Recovery,
    Snapshot,
)
from alphad.actors.store_schema import scalar
from alphad.protocol.messages import AuditEntry, OptimizationState, SignalRecord

# The regime a recorded trade counts under (migration 3 says why).
_REGIME_USED = (
    "CASE WHEN regime_source = 'detected'"
    f" THEN COALESCE(detected_regime, '{UNKNOWN_REGIME}') ELSE regime END"
)
_json_decode = msgspec.json.Decoder()


def snapshot_ids(db: sqlite3.Connection) -> list[int]:
    """The kept snapshots, newest first."""
    return [int(r[0]) for r in db.execute("SELECT id FROM snapshots ORDER BY id DESC")]


def load_recovery(db: sqlite3.Connection, snapshot_id: int | None = None) -> Recovery:
    """A snapshot (the newest unless told which) and what was committed after it."""
    snapshot = None
    sql = "SELECT ts_ms, trade_seq, outcome_seq, audit_seq, state, checksum FROM snapshots"
    params: tuple[int, ...] = ()
    if snapshot_id is not None:
        sql += " WHERE id = ?"
        params = (snapshot_id,)
    row = db.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    if row is not None:
        snapshot = Snapshot(
            ts_ms=row[0],
            trade_seq=row[1],
            outcome_seq=row[2],
            audit_seq=row[3],
            state=[bytes(row[4])],
            checksum=row[5],
        )
    trade_seq = snapshot.trade_seq if snapshot else 0
    outcome_seq = snapshot.outcome_seq if snapshot else 0
    trades = trades_after(db, trade_seq)
    outcome_rows = db.execute(
        "SELECT seq, signal_id, success, ts_ms, pending, scored FROM signal_outcomes"
        " WHERE seq > ?"
        " ORDER BY seq",
        (outcome_seq,),
    ).fetchall()
    outcomes = [
        SignalOutcome(
            seq=r[0],
            signal_id=r[1],
            success=bool(r[2]),
            ts_ms=r[3],
            pending=None if r[4] is None else bool(r[4]),
            scored=r[5],
        )
        for r in outcome_rows
    ]
    # The changes journaled after an older snapshot; never more than snapshots_keep
    # commits' worth, since every journaled change commits a snapshot with it. Without
    # any snapshot (its rows lost), every change journaled: the statuses and weights an
    # operator or a cycle set are the journal's, not the defaults.
    if snapshot is not None:
        audit = audit_since(db, snapshot.audit_seq, None, 1_000_000)
    else:
        audit = journal_to_rebuild(db)
    return Recovery(snapshot=snapshot, trades=trades, outcomes=outcomes, audit=audit)


def signals_after(
    db: sqlite3.Connection, ordinal: int, limit: int | None = None
) -> list[JournaledSignal]:
    """The journaled signals the scorer scored after its ``ordinal``-th, in order; the
    first ``limit`` of them when it is given."""
    rows = db.execute(
        "SELECT ordinal, signal_id, strategy, symbol, side, confluence,"
        " CASE WHEN regime_source = 'detected' THEN detected_regime ELSE regime END,"
        " quality, execute, status FROM signals WHERE ordinal > ? ORDER BY ordinal LIMIT ?",
        (ordinal, -1 if limit is None else limit),
    ).fetchall()
    return [
        JournaledSignal(
            ordinal=r[0],
            signal_id=r[1],
            strategy=r[2],
            symbol=r[3],
            side=r[4],
            confluence=r[5],
            regime=r[6],
            quality=r[7],
            execute=bool(r[8]),
            status=r[9],
        )
        for r in rows
    ]


def trades_after(db: sqlite3.Connection, seq: int, limit: int | None = None) -> list[ClosedTrade]:
    """Committed trades with a greater seq, in seq order."""
    sql = (
        "SELECT seq, trade_id, strategy, symbol, side, pnl, entry_ts_ms, exit_ts_ms, "
        f"{_REGIME_USED}, size, signal_id, signal_pending, signal_scored FROM trades"
        " WHERE seq > ? ORDER BY seq"
    )
    params: tuple[int, ...] = (seq,)
    if limit is not None:
        sql += " LIMIT ?"
        params = (seq, limit)
    return [
        ClosedTrade(
            seq=r[0],
            trade_id=r[1],
            strategy=r[2],
            symbol=r[3],
            side=r[4],
            pnl=r[5],
            entry_ts_ms=r[6],
            exit_ts_ms=r[7],
            regime=r[8],
            size=r[9],
            signal_id=r[10],
            signal_pending=None if r[11] is None else bool(r[11]),
            signal_scored=r[12],
        )
        for r in db.execute(sql, params).fetchall()
    ]


def latest_cycle(db: sqlite3.Connection) -> int:
    """The number of the last journaled optimization cycle (0 if none)."""
    return scalar(db, "SELECT COALESCE(MAX(cycle), 0) FROM history")


def journal_to_rebuild(db: sqlite3.Connection) -> list[AuditEntry]:
    """The journaled changes a state rebuilt without a snapshot needs, oldest first,
    read row by row (a journal of years is millions of rows): every status change (they
    count toward retirement) since each strategy's last ``forget``, the last weight of
    each strategy in each table, the last switch of each component, each strategy's
    last ``forget`` and the last cycle."""
    statuses: dict[str, list[AuditEntry]] = {}
    last: dict[tuple[str, str | None, str | None], AuditEntry] = {}
    cursor = db.execute(
        "SELECT seq, ts_ms, kind, strategy, old, new, reason, actor, data FROM audit ORDER BY seq"
    )
    for row in cursor:
        entry = _audit_entry(row)
        name, regime = entry.strategy, entry.data.get("regime")
        if entry.kind == "status" and name is not None:
            statuses.setdefault(name, []).append(entry)
        elif entry.kind == "forget" and name is not None:
            statuses.pop(name, None)
            for key in [k for k in last if k[1] == name and k[0] == "weight"]:
                del last[key]
            last[("forget", name, None)] = entry
        elif entry.kind == "weight":
            last[("weight", name, None if regime is None else str(regime))] = entry
        elif entry.kind == "component":
            last[("component", None, str(entry.data.get("component")))] = entry
        elif entry.kind == "cycle":
            last[("cycle", None, None)] = entry
    kept = [*last.values(), *(e for entries in statuses.values() for e in entries)]
    return sorted(kept, key=lambda e: e.seq)


def audit_since(
    db: sqlite3.Connection, since_seq: int, strategy: str | None, limit: int
) -> list[AuditEntry]:
    """Audit entries after ``since_seq``, oldest first."""
    sql = "SELECT seq, ts_ms, kind, strategy, old, new, reason, actor, data FROM audit"
    sql += " WHERE seq > ?"
    params: list[Any] = [since_seq]
    if strategy is not None:
        sql += " AND strategy = ?"
        params.append(strategy)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    return [_audit_entry(r) for r in db.execute(sql, params).fetchall()]


def _audit_entry(r: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        seq=r[0],
        ts_ms=r[1],
        kind=r[2],
        strategy=r[3],
        old=_json_decode.decode(r[4]) if r[4] is not None else None,
        new=_json_decode.decode(r[5]) if r[5] is not None else None,
        reason=r[6],
        actor=r[7],
        data=_json_decode.decode(r[8]),
    )


def audit_page(db: sqlite3.Connection, query: QueryAudit) -> tuple[list[AuditEntry], bool]:
    """One page of the audit log, bounded by ``limit`` and, when given, by ``max_bytes``:
    the size of an entry is its text's."""
    if query.max_bytes is None:
        entries = audit_since(db, query.since_seq, query.strategy, query.limit + 1)
        return entries[: query.limit], len(entries) > query.limit
    sql = "SELECT seq, LENGTH(old) + LENGTH(new) + LENGTH(reason) + LENGTH(data) FROM audit"
    sql += " WHERE seq > ?"
    params: list[Any] = [query.since_seq]
    if query.strategy is not None:
        sql += " AND strategy = ?"
        params.append(query.strategy)
    sql += " ORDER BY seq LIMIT ?"
    params.append(query.limit + 1)
    sizes = db.execute(sql, params).fetchall()
    count = fitting([64 + (size or 0) for _, size in sizes[: query.limit]], query.max_bytes)
    entries = audit_since(db, query.since_seq, query.strategy, count)
    return entries, len(sizes) > count


def history_page(
    db: sqlite3.Connection, query: QueryHistory
) -> tuple[list[OptimizationState], bool]:
    """One bounded page of the history, newest first: sized by the full states, which
    are rebuilt from the keyframe of the page's oldest row on."""
    where = " WHERE cycle < ?" if query.before_cycle is not None else ""
    params: list[Any] = [] if query.before_cycle is None else [query.before_cycle]
    sizes = db.execute(
        "SELECT cycle, COALESCE(full_bytes, LENGTH(state)), COALESCE(keyframe, cycle)"
        f" FROM history{where} ORDER BY cycle DESC LIMIT ?",
        [*params, query.limit + 1],
    ).fetchall()
    if not sizes:
        return [], False
    max_bytes = query.max_bytes if query.max_bytes is not None else sys.maxsize
    count = fitting([size for _, size, _ in sizes[: query.limit]], max_bytes)
    oldest, newest = sizes[count - 1], sizes[0]
    rows = db.execute(
        "SELECT cycle, state, keyframe FROM history WHERE cycle BETWEEN ? AND ? ORDER BY cycle",
        (oldest[2], newest[0]),
    ).fetchall()
    states = rebuild((r[0], bytes(r[1]), r[2]) for r in rows)
    page = [s for s in states if s.cycle >= oldest[0]]
    page.reverse()
    return page, len(sizes) > count


def signals_page(db: sqlite3.Connection, query: QuerySignals) -> tuple[list[SignalRecord], bool]:
    """One bounded page of the signals journal: a row's size is its text's."""
    sql = (
        "SELECT s.id, s.signal_id, s.ts_ms, s.strategy, s.symbol, s.side, s.confidence,"
        " s.confluence, s.regime, s.quality, s.execute, s.size_multiplier, s.weight,"
        " s.status, s.reasons, COALESCE(o.success, (SELECT t.pnl > 0 FROM trades t"
        " WHERE t.signal_id = s.signal_id ORDER BY t.seq LIMIT 1)),"
        " s.detected_regime, s.regime_source FROM signals s"
        " LEFT JOIN signal_outcomes o ON o.signal_id = s.signal_id WHERE s.id > ?"
    )
    params: list[Any] = [query.after or 0]
    for column, value in (("strategy", query.strategy), ("symbol", query.symbol)):
        if value is not None:
            sql += f" AND s.{column} = ?"
            params.append(value)
    if query.since_ms is not None:
        sql += " AND s.ts_ms >= ?"
        params.append(query.since_ms)
    sql += " ORDER BY s.id LIMIT ?"
    params.append(query.limit + 1)
    rows = db.execute(sql, params).fetchall()
    sizes = [
        200 + sum(len(r[i]) for i in (1, 3, 4, 13, 14)) + len(r[8] or "")
        for r in rows[: query.limit]
    ]
    count = fitting(sizes, query.max_bytes)
    records = [
        SignalRecord(
            id=r[0],
            signal_id=r[1],
            ts_ms=r[2],
            strategy=r[3],
            symbol=r[4],
            side=r[5],
            confidence=r[6],
            confluence=r[7],
            regime=r[8],
            quality=r[9],
            execute=bool(r[10]),
            size_multiplier=r[11],
            weight=r[12],
            status=r[13],
            reasons=r[14],
            success=None if r[15] is None else bool(r[15]),
            detected_regime=r[16],
            regime_source=r[17],
        )
        for r in rows[:count]
    ]
    return records, len(rows) > count


def fitting(sizes: list[int], max_bytes: int) -> int:
    """How many of ``sizes``, from the first, fit in ``max_bytes``; at least one."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > max_bytes and count:
            return count
    return len(sizes)
