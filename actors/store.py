"""The store actor: the only owner of the SQLite connection.

Writes that arrive together commit in one transaction (group commit), one
``executemany`` per table, all of it in a single hop to the database thread. A
``record_trade`` is answered only after the transaction holding it has
committed; committed trades and signal outcomes are then told, in commit order, to
the actors that learn from them, and the engine is told how many trades were committed
(a plain ``tell``: the engine asks the store for its commits, so the store never waits on
the engine; see actors/base.py). When the database cannot be written, every waiting
write fails with ``StorageUnavailable`` (nothing is acknowledged that is not on disk)
and the next batch tries again, so the store recovers by itself when storage returns.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
import msgspec
import structlog

from actors.base import (
    Actor,
    ActorStopped,
    Ask,
    Envelope,
    Handle,
    MailboxFull,
    Piece,
    SampleReader,
    Samples,
)
from actors.errors import Conflict, NotFound, Refused
from actors.events import UNKNOWN_REGIME, ClosedTrade, SignalOutcome
from actors.history_rows import Chain, Row, next_row, rebuild
from protocol.messages import AuditEntry, OptimizationState, RecordTrade, SignalRecord

log = structlog.get_logger("alphad.store")

_T = TypeVar("_T")

SCHEMA_VERSION = 4

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE trades (
        seq INTEGER PRIMARY KEY,
        trade_id TEXT NOT NULL UNIQUE,
        strategy TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        pnl REAL NOT NULL,
        entry_ts_ms INTEGER NOT NULL,
        exit_ts_ms INTEGER NOT NULL,
        regime TEXT NOT NULL,
        size REAL,
        signal_id TEXT,
        recorded_ms INTEGER NOT NULL
    );
    CREATE INDEX trades_strategy ON trades (strategy, seq);
    CREATE TABLE signals (
        id INTEGER PRIMARY KEY,
        signal_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        confidence REAL NOT NULL,
        confluence INTEGER NOT NULL,
        regime TEXT,
        quality REAL NOT NULL,
        execute INTEGER NOT NULL,
        size_multiplier REAL NOT NULL,
        weight REAL NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT NOT NULL
    );
    CREATE INDEX signals_signal_id ON signals (signal_id);
    CREATE TABLE signal_outcomes (
        seq INTEGER PRIMARY KEY,
        signal_id TEXT NOT NULL UNIQUE,
        success INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        strategy TEXT,
        old TEXT,
        new TEXT,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX audit_strategy ON audit (strategy, seq);
    CREATE TABLE history (
        cycle INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        state BLOB NOT NULL
    );
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        trade_seq INTEGER NOT NULL,
        outcome_seq INTEGER NOT NULL,
        audit_seq INTEGER NOT NULL,
        state BLOB NOT NULL
    );
    """,
    # The CRC-32 of each snapshot's state, so that a damaged one is known as such and the
    # start falls back to the one before (NULL: written before there were checksums).
    2: """
    ALTER TABLE snapshots ADD COLUMN checksum INTEGER;
    """,
    # Detected regimes: the reading at a trade's entry (a signal's time) beside the bot's
    # label in `regime`, and which of the two it counts under: 'detected' (the reading;
    # 'unknown' when there was none), 'bot' (the label), NULL (the bot's, none sent, or
    # recorded before this version).
    3: """
    ALTER TABLE trades ADD COLUMN detected_regime TEXT;
    ALTER TABLE trades ADD COLUMN regime_source TEXT;
    ALTER TABLE signals ADD COLUMN detected_regime TEXT;
    ALTER TABLE signals ADD COLUMN regime_source TEXT;
    """,
    # Compact history (actors/history_rows.py): a row holds what changed since the row
    # before and names its keyframe (NULL: a full state, as every row before this
    # version); full_bytes is the size of the full state (NULL: the row's own).
    4: """
    ALTER TABLE history ADD COLUMN keyframe INTEGER;
    ALTER TABLE history ADD COLUMN full_bytes INTEGER;
    """,
}


TRADE_FIELDS = (
    "strategy",
    "symbol",
    "side",
    "pnl",
    "entry_ts_ms",
    "exit_ts_ms",
    "regime",
    "size",
    "signal_id",
)
"""What a resend of a trade_id must repeat to be a duplicate (the trades table's columns)."""

OUTCOME_FIELDS = ("success",)
"""What a resend of a signal's outcome must repeat to be a duplicate."""

Recorded = tuple[int, tuple[Any, ...]]
"""A record's seq and its ``*_FIELDS`` as stored."""

Answer = tuple[bool, int] | Conflict
"""A write's answer: (duplicate, seq), or the conflict it is refused with."""


class StorageCorrupt(Exception):
    """The database file fails SQLite's own check; the store refuses to use it."""


class StorageUnavailable(Exception):
    """The database could not be written; nothing in the failed batch was recorded."""


# ----------------------------------------------------------------------------- messages


class AppendTrade(Ask[tuple[bool, int]], frozen=True):
    """Ask: record a trade; answered with ``(duplicate, seq)`` after the commit.

    A resend of a recorded trade_id is a duplicate only if every one of ``TRADE_FIELDS``
    is equal (floats exactly); otherwise it is refused with ``conflict``. The detected
    regime is not compared: a resend after a restart has no bars to read it from.
    ``use_detected``: the trade counts under ``detected_regime`` (unknown when None), not
    under the bot's label.
    """

    trade: RecordTrade
    detected_regime: str | None = None
    use_detected: bool = False


class AppendOutcome(Ask[tuple[bool, int]], frozen=True):
    """Ask: record a signal outcome; answered with ``(duplicate, seq)`` after the commit,
    or refused with ``conflict`` if the signal's recorded outcome is the other one.

    ``pending`` False (the scorer does not wait for this signal): refused with
    ``not_found`` unless the signal is in the signals journal or has an outcome already.
    """

    signal_id: str
    success: bool
    ts_ms: int
    pending: bool = True


class AppendSignal(msgspec.Struct, frozen=True, array_like=True):
    """Tell: keep a scored signal (best effort, batched, off the hot path)."""

    signal_id: str
    ts_ms: int
    strategy: str
    symbol: str
    side: str
    confidence: float
    confluence: int
    regime: str | None
    quality: float
    execute: bool
    size_multiplier: float
    weight: float
    status: str
    reasons: str
    detected_regime: str | None = None
    regime_source: str | None = None


class AppendSignals(msgspec.Struct, frozen=True):
    """Tell: scored signals collected by the scorer since its last flush."""

    rows: list[AppendSignal]


class TradesCommitted(msgspec.Struct, frozen=True):
    """Tell (to the engine): this many trades were committed since the last such notice.

    One per group commit at most; a notice that finds the mailbox full is not waited on
    but added to the next one, so counts are never lost, only late.
    """

    count: int


class PruneSignals(msgspec.Struct, frozen=True):
    """Tell: delete journaled signals scored before ``before_ms``, oldest first.

    A chunk per batch, so writes interleave with a long prune; the store tells itself
    to go on while whole chunks are old enough.
    """

    before_ms: int


class AuditDraft(msgspec.Struct, frozen=True, kw_only=True):
    """An audit entry before the store gives it its ``seq``."""

    ts_ms: int
    kind: str
    strategy: str | None
    old: Any
    new: Any
    reason: str
    actor: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The state of every stateful actor at a point in the trade and outcome streams.

    ``state`` is msgpack in pieces (``msgpack_pieces``), written to the database piece by
    piece and never copied into one buffer on the event loop; read back, it is one piece.
    """

    ts_ms: int
    trade_seq: int
    outcome_seq: int
    state: list[Piece]
    # The last audit entry the state includes (set when read back; the store sets it on
    # commit to the last entry of the same transaction).
    audit_seq: int = 0
    checksum: int | None = None  # CRC-32 of the state as written; set when read back

    def encoded(self) -> bytes:
        """The state as one msgpack buffer; ``ValueError`` if it is not what was written."""
        state = b"".join(self.state)
        if self.checksum is not None and zlib.crc32(state) != self.checksum:
            raise ValueError("the snapshot is damaged (its checksum does not match)")
        return state


class Commit(Ask[list[AuditEntry]], frozen=True, kw_only=True):
    """Ask: journal audit entries, a history row and a snapshot in one transaction.

    Answered with the committed ``AuditEntry`` list (with their seqs).
    """

    audit: list[AuditDraft] = msgspec.field(default_factory=list)
    history: OptimizationState | None = None
    snapshot: Snapshot | None = None


class QueryAudit(Ask[tuple[list[AuditEntry], bool] | list[AuditEntry]], frozen=True):
    """Ask: audit entries after ``since_seq``. With ``max_bytes``, no more entries than fit
    in about that many bytes (at least one), answered ``(entries, more)``."""

    since_seq: int
    strategy: str | None
    limit: int
    max_bytes: int | None = None


class QueryHistory(
    Ask[tuple[list[OptimizationState], bool] | list[OptimizationState]], frozen=True
):
    """Ask: the latest cycles' full states before ``before_cycle``, newest first. With
    ``max_bytes``, no more than fit in that many bytes (at least one), answered
    ``(states, more)``."""

    limit: int
    before_cycle: int | None = None
    max_bytes: int | None = None


class QuerySignals(Ask[tuple[list[SignalRecord], bool]], frozen=True, kw_only=True):
    """Ask: journaled signals after the journal id ``after``, oldest first, with their
    outcome; at most ``limit``, no more than fit in about ``max_bytes`` (at least one),
    answered ``(records, more)``."""

    strategy: str | None
    symbol: str | None
    since_ms: int | None
    after: int | None
    limit: int
    max_bytes: int


class Recovery(msgspec.Struct, kw_only=True):
    """What a restart needs: a snapshot and everything committed after it.

    ``audit`` holds the journaled changes after the snapshot: none after the newest
    snapshot, the ones a restart must apply again after an older one.
    """

    snapshot: Snapshot | None
    trades: list[ClosedTrade]
    outcomes: list[SignalOutcome]
    audit: list[AuditEntry] = msgspec.field(default_factory=list)


# The regime a recorded trade counts under (migration 3 says why).
_REGIME_USED = (
    "CASE WHEN regime_source = 'detected'"
    f" THEN COALESCE(detected_regime, '{UNKNOWN_REGIME}') ELSE regime END"
)
_json = msgspec.json.Encoder()
_json_decode = msgspec.json.Decoder()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """The store's counters, as ``StoreActor.stats()`` took them."""

    trades_committed: int
    healthy: bool  # the last group commit went through
    failed_batches: int  # group commits the database refused
    dropped_signals: int  # scored signals given up while storage failed
    signals_pruned: int
    conflicts: int  # resends refused because they differ from the record
    commit_samples: SampleReader[tuple[float, int]]  # (commit seconds, trades in the batch)


class StoreActor(Actor):
    """Owns the database; batches writes; tells subscribers what was committed."""

    name = "store"

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        batch_max: int = 512,
        busy_timeout_ms: int = 5000,
        history_keep: int = 10_000,
        snapshots_keep: int = 3,
        mailbox_size: int = 8192,
    ) -> None:
        super().__init__(mailbox_size)
        self.path = path
        self.synchronous = synchronous
        self.max_batch = batch_max
        self.busy_timeout_ms = busy_timeout_ms
        self.history_keep = history_keep
        # The last committed history row's maps (None: the next row is a keyframe).
        self._history_chain: Chain | None = None
        self._planned_chain: Chain | None = None
        self.snapshots_keep = snapshots_keep
        self.db: aiosqlite.Connection | None = None
        self.trade_subscribers: list[Handle[Actor]] = []
        self.outcome_subscribers: list[Handle[Actor]] = []
        # Told how many trades were committed (the engine, which snapshots every so many).
        self.commit_listener: Handle[Actor] | None = None
        self._unannounced_trades = 0
        self.last_trade_seq = 0
        self.last_outcome_seq = 0
        self.last_audit_seq = 0
        self.trades_committed = 0
        self.healthy = True
        self.failed_batches = 0
        self.dropped_signals = 0
        self.signals_pruned = 0
        self.conflicts = 0  # resends refused because they differ from the record
        self.prune_chunk = 5_000
        self._pending_signals: list[AppendSignal] = []
        # (commit seconds, trades in the batch), read by the metrics sampler.
        self.commit_samples: Samples[tuple[float, int]] = Samples()

    def subscribe(
        self,
        *,
        trades: list[Handle[Actor]],
        outcomes: list[Handle[Actor]],
        commits: Handle[Actor] | None = None,
    ) -> None:
        """Who learns from what is committed: ``trades`` and ``outcomes`` get every
        committed record (the store waits for room in their mailboxes: they must never
        ask it), ``commits`` how many trades each group commit added."""
        self.trade_subscribers = list(trades)
        self.outcome_subscribers = list(outcomes)
        self.commit_listener = commits

    def stats(self) -> StoreStats:
        """The store's counters for the metrics and ``get_status``."""
        return StoreStats(
            trades_committed=self.trades_committed,
            healthy=self.healthy,
            failed_batches=self.failed_batches,
            dropped_signals=self.dropped_signals,
            signals_pruned=self.signals_pruned,
            conflicts=self.conflicts,
            commit_samples=self.commit_samples,
        )

    # ------------------------------------------------------------------ opening

    async def on_start(self) -> None:
        if self.db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "IMMEDIATE": the first write of a batch opens the write transaction itself.
        self.db = await aiosqlite.connect(self.path, isolation_level="IMMEDIATE")
        try:
            await self._open()
        except BaseException:
            # The connection's thread would otherwise outlive the refusal to start.
            await self.db.close()
            self.db = None
            raise

    async def _open(self) -> None:
        db = self._conn()
        if not callable(getattr(db, "_execute", None)):
            raise RuntimeError(
                f"aiosqlite {aiosqlite.__version__} lacks Connection._execute, which alphad's"
                " group commit uses; install the version range pyproject.toml names"
            )
        # Before anything writes: a corrupt file must not be written into (nor trades
        # acknowledged into it), and "storage ok" must mean what it says.
        problems = await self._in_db_thread(integrity_problems)
        if problems:
            raise StorageCorrupt(
                f"it fails PRAGMA quick_check ({problems[0]}); nothing was written to it:"
                " restore a backup (alphad check-db runs the full check)"
            )
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={self.synchronous}")
        await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        await db.execute("PRAGMA foreign_keys=ON")
        await self._migrate()
        self.last_trade_seq = await self._scalar("SELECT COALESCE(MAX(seq), 0) FROM trades")
        self.last_outcome_seq = await self._scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM signal_outcomes"
        )
        self.last_audit_seq = await self._scalar("SELECT COALESCE(MAX(seq), 0) FROM audit")
        self.trades_committed = await self._scalar("SELECT COUNT(*) FROM trades")

    async def on_stop(self) -> None:
        if self.db is not None:
            await self._flush_signals()
            await self.db.close()
            self.db = None

    async def _migrate(self) -> None:
        db = self._conn()
        version = await self._scalar("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {self.path} has schema version {version}, newer than this "
                f"alphad ({SCHEMA_VERSION}); upgrade alphad"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[target]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version={target}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            log.info("schema_migrated", version=target, database=str(self.path))

    def _conn(self) -> aiosqlite.Connection:
        if self.db is None:
            raise StorageUnavailable("database is not open")
        return self.db

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn().execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ recovery

    async def snapshot_ids(self) -> list[int]:
        """The kept snapshots, newest first."""
        async with self._conn().execute("SELECT id FROM snapshots ORDER BY id DESC") as cursor:
            return [int(r[0]) for r in await cursor.fetchall()]

    async def load_recovery(self, snapshot_id: int | None = None) -> Recovery:
        """A snapshot (the newest unless told which) and what was committed after it."""
        db = self._conn()
        snapshot = None
        sql = "SELECT ts_ms, trade_seq, outcome_seq, audit_seq, state, checksum FROM snapshots"
        params: tuple[int, ...] = ()
        if snapshot_id is not None:
            sql += " WHERE id = ?"
            params = (snapshot_id,)
        async with db.execute(sql + " ORDER BY id DESC LIMIT 1", params) as cursor:
            row = await cursor.fetchone()
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
        trades = await self.trades_after(trade_seq)
        async with db.execute(
            "SELECT seq, signal_id, success, ts_ms FROM signal_outcomes WHERE seq > ? ORDER BY seq",
            (outcome_seq,),
        ) as cursor:
            outcome_rows = await cursor.fetchall()
        outcomes = [
            SignalOutcome(seq=r[0], signal_id=r[1], success=bool(r[2]), ts_ms=r[3])
            for r in outcome_rows
        ]
        # The changes journaled after an older snapshot; never more than snapshots_keep
        # commits' worth, since every journaled change commits a snapshot with it.
        audit = await self.audit_since(snapshot.audit_seq, None, 1_000_000) if snapshot else []
        return Recovery(snapshot=snapshot, trades=trades, outcomes=outcomes, audit=audit)

    async def trades_after(self, seq: int, limit: int | None = None) -> list[ClosedTrade]:
        """Committed trades with a greater seq, in seq order."""
        sql = (
            "SELECT seq, trade_id, strategy, symbol, side, pnl, entry_ts_ms, exit_ts_ms, "
            f"{_REGIME_USED}, size, signal_id FROM trades WHERE seq > ? ORDER BY seq"
        )
        params: tuple[int, ...] = (seq,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (seq, limit)
        async with self._conn().execute(sql, params) as cursor:
            rows = await cursor.fetchall()
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
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ the loop

    async def handle_batch(self, batch: list[Envelope]) -> None:
        trades: list[Envelope] = []
        outcomes: list[Envelope] = []
        commits: list[Envelope] = []
        queries: list[Envelope] = []
        prune: PruneSignals | None = None
        for envelope in batch:
            message = envelope.message
            if isinstance(message, AppendSignals):
                self._pending_signals.extend(message.rows)
            elif isinstance(message, PruneSignals):
                prune = message
            elif isinstance(message, AppendTrade):
                trades.append(envelope)
            elif isinstance(message, AppendOutcome):
                outcomes.append(envelope)
            elif isinstance(message, Commit):
                commits.append(envelope)
            else:
                queries.append(envelope)
        if outcomes:
            outcomes = await self._refuse_unknown_signals(outcomes)
        if trades or outcomes or commits or self._pending_signals:
            await self._write(trades, outcomes, commits)
        if prune is not None:
            await self._prune_signals(prune)
        for envelope in queries:
            await self._answer_query(envelope)
        self._announce_trades()

    async def _refuse_unknown_signals(self, outcomes: list[Envelope]) -> list[Envelope]:
        """Answer ``not_found`` to outcomes of signals alphad never scored (nor has
        journaled any more: ``signals_keep_days``); the others go on to be written."""
        asked = {e.message.signal_id for e in outcomes if not e.message.pending}
        if not asked:
            return outcomes
        asked -= {row.signal_id for row in self._pending_signals}
        try:
            known = await self._in_db_thread(partial(_journaled_signals, ids=sorted(asked)))
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.warning("signal_lookup_failed", error=str(exc))
            return outcomes  # the write that follows answers for the storage
        unknown = asked - known
        kept = []
        for envelope in outcomes:
            signal_id = envelope.message.signal_id
            if signal_id in unknown:
                _resolve(
                    envelope,
                    NotFound(
                        f"signal {signal_id!r} was never scored, or is older than the signals"
                        " journal keeps ([store] signals_keep_days); nothing was recorded",
                    ),
                )
            else:
                kept.append(envelope)
        return kept

    def _announce_trades(self) -> None:
        """Tell the commit listener how many trades were committed; never wait for it."""
        listener = self.commit_listener
        if listener is None or not self._unannounced_trades:
            return
        try:
            listener.tell(TradesCommitted(self._unannounced_trades))
        except (MailboxFull, ActorStopped):
            return  # told with the next batch, together with its own trades
        self._unannounced_trades = 0

    async def _prune_signals(self, prune: PruneSignals) -> None:
        """Delete one chunk of old journaled signals; tell the store to go on if needed."""
        try:
            deleted, more = await self._in_db_thread(
                partial(_delete_old_signals, before_ms=prune.before_ms, chunk=self.prune_chunk)
            )
        except (sqlite3.Error, StorageUnavailable, ValueError) as exc:
            # Retried by the next scheduled prune; trades are unaffected.
            log.warning("signal_prune_failed", error=str(exc))
            return
        self.signals_pruned += deleted
        if more:
            try:
                self.tell(prune)
            except Exception:
                pass  # a full mailbox: the next scheduled prune goes on from here
        elif deleted:
            log.info("signals_pruned", before_ms=prune.before_ms, total=self.signals_pruned)

    async def _write(
        self, trades: list[Envelope], outcomes: list[Envelope], commits: list[Envelope]
    ) -> None:
        now = _now_ms()
        trade_results, trade_rows, new_trades, sent = self._plan_trades(trades, now)
        outcome_results, outcome_rows, new_outcomes = self._plan_outcomes(outcomes)
        audit_rows, commit_results, history_rows, snapshot_rows = self._plan_commits(commits)
        batch = _Batch(
            trades=trade_rows,
            trade_ids=[t.trade_id for t in new_trades] if trade_rows else [],
            outcomes=outcome_rows,
            outcome_ids=[o.signal_id for o in new_outcomes] if outcome_rows else [],
            signals=[msgspec.structs.astuple(s) for s in self._pending_signals],
            audit=audit_rows,
            history=history_rows,
            history_keep=self.history_keep,
            snapshots=snapshot_rows,
            snapshots_keep=self.snapshots_keep,
        )
        started = time.perf_counter()
        try:
            trades_found, outcomes_found = await self._in_db_thread(batch.write)
        except (sqlite3.Error, StorageUnavailable, ValueError) as exc:
            self._fail_batch(exc, trades, outcomes, commits)
            return
        # Committed: advance the sequences, answer the waiting asks, tell the learners.
        self.commit_samples.add((time.perf_counter() - started, len(trade_rows)))
        self.healthy = True
        self._pending_signals = []
        if trades_found is not None:
            _resolve_duplicates(
                trades_found,
                _trade_id,
                lambda trade: sent[trade.trade_id][1],
                trade_results,
                new_trades,
                _trade_conflict,
            )
        if outcomes_found is not None:
            _resolve_duplicates(
                outcomes_found,
                _signal_id,
                _outcome_fields,
                outcome_results,
                new_outcomes,
                _outcome_conflict,
            )
        self.conflicts += sum(isinstance(r, Conflict) for r in (*trade_results, *outcome_results))
        if new_trades:
            self.last_trade_seq = max(self.last_trade_seq, new_trades[-1].seq)
            self.trades_committed += len(new_trades)
            self._unannounced_trades += len(new_trades)
        if new_outcomes:
            self.last_outcome_seq = new_outcomes[-1].seq
        if audit_rows:
            self.last_audit_seq = audit_rows[-1][0]
        # The next row is a delta against the last one on disk, never a refused one.
        self._history_chain = self._planned_chain
        for envelope, trade_result in zip(trades, trade_results, strict=True):
            _resolve(envelope, trade_result)
        for envelope, outcome_result in zip(outcomes, outcome_results, strict=True):
            _resolve(envelope, outcome_result)
        for envelope, entries in zip(commits, commit_results, strict=True):
            _resolve(envelope, entries)
        # Learners must see every committed record: a full mailbox slows the store down
        # (and so the acknowledgements) instead of dropping a trade. They never ask the
        # store, so this wait cannot close a circle.
        for trade in new_trades:
            for actor in self.trade_subscribers:
                await actor.tell_wait(trade)
        for outcome in new_outcomes:
            for actor in self.outcome_subscribers:
                await actor.tell_wait(outcome)

    async def _in_db_thread(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` with the raw connection on the database thread: one hop.

        Each public aiosqlite call is a hop of its own (about 100 µs on a busy machine),
        so a batch written with them costs one hop per statement plus the commit.
        ``Connection._execute`` is the primitive those calls are built on; the version
        range in pyproject.toml is the one it is known in, and ``on_start`` checks it.
        """
        db = self._conn()
        raw = db._conn
        return cast(_T, await db._execute(work, raw))

    def _plan_trades(
        self, trades: list[Envelope], now: int
    ) -> tuple[list[Answer], list[tuple[Any, ...]], list[ClosedTrade], dict[str, Recorded]]:
        results: list[Answer] = []
        rows: list[tuple[Any, ...]] = []
        new: list[ClosedTrade] = []
        in_batch: dict[str, Recorded] = {}
        seq = self.last_trade_seq
        for envelope in trades:
            append: AppendTrade = envelope.message
            request = append.trade
            regime = request.regime or UNKNOWN_REGIME
            source: str | None = "detected"
            if append.use_detected:
                used = append.detected_regime or UNKNOWN_REGIME
            else:
                used, source = regime, "bot" if request.regime is not None else None
            fields = (
                request.strategy,
                request.symbol,
                request.side,
                request.pnl,
                request.entry_ts_ms,
                request.exit_ts_ms,
                regime,
                request.size,
                request.signal_id,
            )
            earlier = in_batch.get(request.trade_id)
            if earlier is not None:
                same = earlier[1] == fields
                results.append(
                    (True, earlier[0])
                    if same
                    else _trade_conflict(request.trade_id, earlier[1], fields)
                )
                continue
            seq += 1
            in_batch[request.trade_id] = (seq, fields)
            rows.append((seq, request.trade_id, *fields, now, append.detected_regime, source))
            results.append((False, seq))
            new.append(
                ClosedTrade(
                    seq=seq,
                    trade_id=request.trade_id,
                    strategy=request.strategy,
                    symbol=request.symbol,
                    side=request.side,
                    pnl=request.pnl,
                    entry_ts_ms=request.entry_ts_ms,
                    exit_ts_ms=request.exit_ts_ms,
                    regime=used,
                    size=request.size,
                    signal_id=request.signal_id,
                )
            )
        return results, rows, new, in_batch

    def _plan_outcomes(
        self, outcomes: list[Envelope]
    ) -> tuple[list[Answer], list[tuple[Any, ...]], list[SignalOutcome]]:
        results: list[Answer] = []
        rows: list[tuple[Any, ...]] = []
        new: list[SignalOutcome] = []
        in_batch: dict[str, Recorded] = {}
        seq = self.last_outcome_seq
        for envelope in outcomes:
            message: AppendOutcome = envelope.message
            fields = (int(message.success),)
            earlier = in_batch.get(message.signal_id)
            if earlier is not None:
                results.append(
                    (True, earlier[0])
                    if earlier[1] == fields
                    else _outcome_conflict(message.signal_id, earlier[1], fields)
                )
                continue
            seq += 1
            in_batch[message.signal_id] = (seq, fields)
            rows.append((seq, message.signal_id, int(message.success), message.ts_ms))
            results.append((False, seq))
            new.append(
                SignalOutcome(
                    seq=seq,
                    signal_id=message.signal_id,
                    success=message.success,
                    ts_ms=message.ts_ms,
                )
            )
        return results, rows, new

    def _plan_commits(
        self, commits: list[Envelope]
    ) -> tuple[
        list[tuple[Any, ...]],
        list[list[AuditEntry]],
        list[Row],
        list[tuple[Any, ...]],
    ]:
        audit_rows: list[tuple[Any, ...]] = []
        results: list[list[AuditEntry]] = []
        history_rows: list[Row] = []
        chain = self._history_chain
        snapshot_rows: list[tuple[Any, ...]] = []
        seq = self.last_audit_seq
        for envelope in commits:
            commit: Commit = envelope.message
            entries: list[AuditEntry] = []
            for draft in commit.audit:
                seq += 1
                audit_rows.append(
                    (
                        seq,
                        draft.ts_ms,
                        draft.kind,
                        draft.strategy,
                        _json.encode(draft.old).decode(),
                        _json.encode(draft.new).decode(),
                        draft.reason,
                        draft.actor,
                        _json.encode(draft.data).decode(),
                    )
                )
                entries.append(
                    AuditEntry(
                        seq=seq,
                        ts_ms=draft.ts_ms,
                        kind=draft.kind,
                        strategy=draft.strategy,
                        old=draft.old,
                        new=draft.new,
                        reason=draft.reason,
                        actor=draft.actor,
                        data=draft.data,
                    )
                )
            results.append(entries)
            if commit.history is not None:
                row, chain = next_row(chain, commit.history)
                history_rows.append(row)
            if commit.snapshot is not None:
                snap = commit.snapshot
                snapshot_rows.append(
                    (snap.ts_ms, snap.trade_seq, snap.outcome_seq, seq, snap.state)
                )
        self._planned_chain = chain
        return audit_rows, results, history_rows, snapshot_rows

    def _fail_batch(
        self,
        exc: BaseException,
        trades: list[Envelope],
        outcomes: list[Envelope],
        commits: list[Envelope],
    ) -> None:
        self.healthy = False
        self.failed_batches += 1
        # Scored signals are best effort: keep a bounded backlog for the next batch.
        if len(self._pending_signals) > 100_000:
            self.dropped_signals += len(self._pending_signals)
            self._pending_signals = []
        log.error("storage_write_failed", error=str(exc), trades=len(trades))
        failure = StorageUnavailable(f"database cannot be written: {exc}")
        for envelope in (*trades, *outcomes, *commits):
            if envelope.reply_to is not None and not envelope.reply_to.done():
                envelope.reply_to.set_exception(failure)

    async def _flush_signals(self) -> None:
        if self._pending_signals and self.db is not None:
            await self._write([], [], [])

    # ------------------------------------------------------------------ reads

    async def _answer_query(self, envelope: Envelope) -> None:
        reply_to = envelope.reply_to
        try:
            result = await self.handle(envelope.message)
        except Exception as exc:
            if reply_to is None:
                raise
            if not reply_to.done():
                if isinstance(exc, sqlite3.Error):
                    exc = StorageUnavailable(str(exc))
                reply_to.set_exception(exc)
            return
        if reply_to is not None and not reply_to.done():
            reply_to.set_result(result)

    async def handle(self, message: Any) -> Any:
        if isinstance(message, QueryAudit):
            if message.max_bytes is not None:
                return await self._audit_page(message)
            return await self.audit_since(message.since_seq, message.strategy, message.limit)
        if isinstance(message, QuerySignals):
            return await self._signals_page(message)
        if isinstance(message, QueryHistory):
            page = await self._history_page(message)
            return page if message.max_bytes is not None else page[0]
        raise TypeError(f"store cannot handle {type(message).__name__}")

    async def audit_since(
        self, since_seq: int, strategy: str | None, limit: int
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
        async with self._conn().execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditEntry(
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
            for r in rows
        ]

    async def _audit_page(self, query: QueryAudit) -> tuple[list[AuditEntry], bool]:
        """One bounded page of the audit log: the size of an entry is its text's."""
        sql = "SELECT seq, LENGTH(old) + LENGTH(new) + LENGTH(reason) + LENGTH(data) FROM audit"
        sql += " WHERE seq > ?"
        params: list[Any] = [query.since_seq]
        if query.strategy is not None:
            sql += " AND strategy = ?"
            params.append(query.strategy)
        sql += " ORDER BY seq LIMIT ?"
        params.append(query.limit + 1)
        async with self._conn().execute(sql, params) as cursor:
            sizes = list(await cursor.fetchall())
        assert query.max_bytes is not None
        count = _fitting([64 + (size or 0) for _, size in sizes[: query.limit]], query.max_bytes)
        entries = await self.audit_since(query.since_seq, query.strategy, count)
        return entries, len(sizes) > count

    async def _history_page(self, query: QueryHistory) -> tuple[list[OptimizationState], bool]:
        """One bounded page of the history, newest first: sized by the full states, which
        are rebuilt from the keyframe of the page's oldest row on."""
        where = " WHERE cycle < ?" if query.before_cycle is not None else ""
        params: list[Any] = [] if query.before_cycle is None else [query.before_cycle]
        async with self._conn().execute(
            "SELECT cycle, COALESCE(full_bytes, LENGTH(state)), COALESCE(keyframe, cycle)"
            f" FROM history{where} ORDER BY cycle DESC LIMIT ?",
            [*params, query.limit + 1],
        ) as cursor:
            sizes = list(await cursor.fetchall())
        if not sizes:
            return [], False
        max_bytes = query.max_bytes if query.max_bytes is not None else sys.maxsize
        count = _fitting([size for _, size, _ in sizes[: query.limit]], max_bytes)
        oldest, newest = sizes[count - 1], sizes[0]
        async with self._conn().execute(
            "SELECT cycle, state, keyframe FROM history WHERE cycle BETWEEN ? AND ? ORDER BY cycle",
            (oldest[2], newest[0]),
        ) as cursor:
            rows = await cursor.fetchall()
        states = rebuild((r[0], bytes(r[1]), r[2]) for r in rows)
        page = [s for s in states if s.cycle >= oldest[0]]
        page.reverse()
        return page, len(sizes) > count

    async def _signals_page(self, query: QuerySignals) -> tuple[list[SignalRecord], bool]:
        """One bounded page of the signals journal: a row's size is its text's."""
        sql = (
            "SELECT s.id, s.signal_id, s.ts_ms, s.strategy, s.symbol, s.side, s.confidence,"
            " s.confluence, s.regime, s.quality, s.execute, s.size_multiplier, s.weight,"
            " s.status, s.reasons, o.success, s.detected_regime, s.regime_source FROM signals s"
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
        async with self._conn().execute(sql, params) as cursor:
            rows = list(await cursor.fetchall())
        sizes = [
            200 + sum(len(r[i]) for i in (1, 3, 4, 13, 14)) + len(r[8] or "")
            for r in rows[: query.limit]
        ]
        count = _fitting(sizes, query.max_bytes)
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

    async def latest_cycle(self) -> int:
        """The number of the last journaled optimization cycle (0 if none)."""
        return await self._scalar("SELECT COALESCE(MAX(cycle), 0) FROM history")


def _fitting(sizes: list[int], max_bytes: int) -> int:
    """How many of ``sizes``, from the first, fit in ``max_bytes``; at least one."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > max_bytes and count:
            return count
    return len(sizes)


def _trade_id(trade: ClosedTrade) -> str:
    return trade.trade_id


def _signal_id(outcome: SignalOutcome) -> str:
    return outcome.signal_id


def _outcome_fields(outcome: SignalOutcome) -> tuple[Any, ...]:
    return (int(outcome.success),)


def _conflict(
    key: str, value: str, names: tuple[str, ...], recorded: tuple[Any, ...], sent: tuple[Any, ...]
) -> Conflict:
    """The refusal of a resend that differs from the record, naming what differs."""
    differ = [i for i, name in enumerate(names) if recorded[i] != sent[i]]
    shown = ", ".join(f"{names[i]} {_shown(recorded[i])}" for i in differ)
    here = ", ".join(f"{names[i]} {_shown(sent[i])}" for i in differ)
    return Conflict(
        f"{key} {value!r} is already recorded with {shown}; this one has {here};"
        " nothing was recorded",
    )


def _trade_conflict(trade_id: str, recorded: tuple[Any, ...], sent: tuple[Any, ...]) -> Conflict:
    return _conflict("trade_id", trade_id, TRADE_FIELDS, recorded, sent)


def _outcome_conflict(signal_id: str, recorded: tuple[Any, ...], sent: tuple[Any, ...]) -> Conflict:
    return _conflict(
        "the outcome of signal_id",
        signal_id,
        OUTCOME_FIELDS,
        tuple(bool(v) for v in recorded),
        tuple(bool(v) for v in sent),
    )


def _shown(value: Any) -> str:
    # repr: floats exactly as compared, strings quoted, None and booleans by name.
    return repr(value)


def _resolve(envelope: Envelope, result: Any) -> None:
    if envelope.reply_to is not None and not envelope.reply_to.done():
        if isinstance(result, Refused):
            envelope.reply_to.set_exception(result)
        else:
            envelope.reply_to.set_result(result)


class _Batch(msgspec.Struct, kw_only=True):
    """Every row of one group commit, written on the database thread in one transaction."""

    trades: list[tuple[Any, ...]]
    trade_ids: list[str]
    outcomes: list[tuple[Any, ...]]
    outcome_ids: list[str]
    signals: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]
    history: list[Row]
    history_keep: int
    snapshots: list[tuple[Any, ...]]
    snapshots_keep: int

    def write(
        self, db: sqlite3.Connection
    ) -> tuple[dict[str, Recorded] | None, dict[str, Recorded] | None]:
        """Insert everything and commit, or roll back and raise.

        Returns, for trades and for outcomes, the record (seq and compared fields) of every
        key of the batch when some keys were already recorded (the insert ignored them),
        else None.
        """
        trades_found = outcomes_found = None
        with _transaction(db):
            if self.trades:
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO trades (seq, trade_id, strategy, symbol, side, pnl,"
                    " entry_ts_ms, exit_ts_ms, regime, size, signal_id, recorded_ms,"
                    " detected_regime, regime_source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    self.trades,
                )
                if db.total_changes - before != len(self.trades):
                    trades_found = _recorded(db, "trades", "trade_id", TRADE_FIELDS, self.trade_ids)
            if self.outcomes:
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO signal_outcomes (seq, signal_id, success, ts_ms)"
                    " VALUES (?,?,?,?)",
                    self.outcomes,
                )
                if db.total_changes - before != len(self.outcomes):
                    outcomes_found = _recorded(
                        db, "signal_outcomes", "signal_id", OUTCOME_FIELDS, self.outcome_ids
                    )
            if self.signals:
                db.executemany(
                    "INSERT INTO signals (signal_id, ts_ms, strategy, symbol, side, confidence,"
                    " confluence, regime, quality, execute, size_multiplier, weight, status,"
                    " reasons, detected_regime, regime_source)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    self.signals,
                )
            if self.audit:
                db.executemany(
                    "INSERT INTO audit (seq, ts_ms, kind, strategy, old, new, reason, actor,"
                    " data) VALUES (?,?,?,?,?,?,?,?,?)",
                    self.audit,
                )
            if self.history:
                db.executemany(
                    "INSERT OR REPLACE INTO history (cycle, ts_ms, state, keyframe, full_bytes)"
                    " VALUES (?,?,?,?,?)",
                    [msgspec.structs.astuple(row) for row in self.history],
                )
                # The last history_keep cycles, and the rest of the keyframe group of the
                # oldest of them (its delta is rebuilt from there): whole groups go.
                db.execute(
                    "DELETE FROM history WHERE cycle < (SELECT COALESCE(keyframe, cycle)"
                    " FROM history WHERE cycle > ? ORDER BY cycle LIMIT 1)",
                    (self.history[-1].cycle - self.history_keep,),
                )
            for *columns, pieces in self.snapshots:
                # Room for the whole state, then its pieces written into it in place.
                row = db.execute(
                    "INSERT INTO snapshots (ts_ms, trade_seq, outcome_seq, audit_seq, state)"
                    " VALUES (?,?,?,?,zeroblob(?))",
                    (*columns, sum(len(piece) for piece in pieces)),
                ).lastrowid
                assert row is not None
                checksum = 0
                with db.blobopen("snapshots", "state", row) as blob:
                    for piece in pieces:
                        blob.write(piece)
                        checksum = zlib.crc32(piece, checksum)
                db.execute("UPDATE snapshots SET checksum = ? WHERE id = ?", (checksum, row))
            if self.snapshots:
                db.execute(
                    "DELETE FROM snapshots WHERE id NOT IN"
                    " (SELECT id FROM snapshots ORDER BY id DESC LIMIT ?)",
                    (self.snapshots_keep,),
                )
        return trades_found, outcomes_found


def _journaled_signals(db: sqlite3.Connection, *, ids: list[str]) -> set[str]:
    """The ids among ``ids`` that are in the signals journal or have an outcome."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for table in ("signals", "signal_outcomes"):
            rows = db.execute(
                f"SELECT DISTINCT signal_id FROM {table} WHERE signal_id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
    return found


def _delete_old_signals(db: sqlite3.Connection, *, before_ms: int, chunk: int) -> tuple[int, bool]:
    """Delete the signals scored before ``before_ms`` among the ``chunk`` oldest journaled
    ones; returns (deleted, whether the next chunk may hold more).

    The search never goes past the oldest ``chunk`` rows, so a prune costs the same on a
    table of any size; a signal a bot stamped with a time far in the past waits until it
    is among the oldest rows.
    """
    edge = db.execute(
        "SELECT id FROM signals ORDER BY id LIMIT 1 OFFSET ?", (chunk - 1,)
    ).fetchone()
    full_chunk = edge is not None
    if edge is None:
        edge = db.execute("SELECT MAX(id) FROM signals").fetchone()
    if edge is None or edge[0] is None:
        return 0, False
    with _transaction(db):
        deleted = db.execute(
            "DELETE FROM signals WHERE id <= ? AND ts_ms < ?", (edge[0], before_ms)
        ).rowcount
    return deleted, full_chunk and deleted == chunk


def integrity_problems(db: sqlite3.Connection, *, full: bool = False) -> list[str]:
    """What SQLite finds wrong with the database, one problem a line; [] when it is sound.

    ``PRAGMA quick_check`` (the b-trees and pages, in time linear in the file), or with
    ``full`` ``PRAGMA integrity_check`` (also every index against its table).
    """
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = db.execute(f"PRAGMA {pragma}").fetchall()
    except sqlite3.OperationalError:
        raise  # locked, unreadable: not a verdict on the file's contents
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed", "not a database"
        return [str(exc)]
    problems = [
        line
        for (text,) in rows
        for line in str(text).splitlines()
        if line and not line.startswith("***")
    ]
    return [] if problems == ["ok"] else problems


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Commit what the block wrote; on any error roll it back and raise that error."""
    try:
        yield
        db.commit()
    except BaseException:
        with suppress(sqlite3.Error):
            db.rollback()
        raise


def _recorded(
    db: sqlite3.Connection, table: str, key: str, fields: tuple[str, ...], keys: list[str]
) -> dict[str, Recorded]:
    """The seq and ``fields`` of each of ``keys`` as recorded (inside the batch's transaction)."""
    found: dict[str, Recorded] = {}
    columns = ", ".join(fields)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT {key}, seq, {columns} FROM {table} WHERE {key} IN ({marks})", chunk
        )
        for recorded, seq, *values in rows:
            found[recorded] = (seq, tuple(values))
    return found


def _resolve_duplicates(
    found: dict[str, Recorded],
    key_of: Callable[[Any], str],
    fields_of: Callable[[Any], tuple[Any, ...]],
    results: list[Answer],
    new: list[Any],
    conflict: Callable[[str, tuple[Any, ...], tuple[Any, ...]], Conflict],
) -> None:
    """Answer the keys that were already recorded: with their recorded seq when the resend
    repeats the record, with a conflict when it differs; and drop them from ``new``: the
    seqs planned for them were never written (seq only has to increase).
    """
    remap: dict[int, Answer] = {}
    for record in new:
        key = key_of(record)
        seq, stored = found[key]
        if seq != record.seq:
            sent = fields_of(record)
            remap[record.seq] = (True, seq) if stored == sent else conflict(key, stored, sent)
    for index, result in enumerate(results):
        if isinstance(result, tuple) and result[1] in remap:
            results[index] = remap[result[1]]
    new[:] = [r for r in new if found[key_of(r)][0] == r.seq]


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


__all__ = [
    "AppendOutcome",
    "AppendSignal",
    "AppendTrade",
    "AuditDraft",
    "Commit",
    "PruneSignals",
    "QueryAudit",
    "QueryHistory",
    "QuerySignals",
    "Recovery",
    "Snapshot",
    "StorageCorrupt",
    "StorageUnavailable",
    "StoreActor",
    "TradesCommitted",
]
