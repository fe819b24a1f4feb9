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

The store is in three parts: this actor, which owns the mailbox and the connection;
the sequencing and deduplication of a batch, with no database (actors/store_plan.py);
and the database, the schema (actors/store_schema.py), the writes
(actors/store_writes.py) and the reads (actors/store_reads.py), functions of a
``sqlite3.Connection`` run on the database thread (actors/sqlite_thread.py says how).
The messages are in actors/store_messages.py and are imported from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec
import structlog

from alphad.actors import store_reads as reads
from alphad.actors.base import (
    Actor,
    ActorStopped,
    Envelope,
    Handle,
    MailboxFull,
    SampleReader,
    Samples,
)
from alphad.actors.errors import Refused
from alphad.actors.events import ClosedTrade
from alphad.actors.history_rows import Chain
from alphad.actors.log_throttle import LogThrottle
from alphad.actors.sqlite_thread import in_connection_thread, require_primitive
from alphad.actors.store_messages import (
    AppendOutcome,
    AppendSignal,
    AppendSignals,
    AppendTrade,
    AuditDraft,
    CheckFiles,
    Commit,
    JournaledSignal,
    PruneSignals,
    QueryAudit,
    QueryHistory,
    QuerySignals,
    Recovery,
    Snapshot,
    StorageCorrupt,
    StorageUnavailable,
    TradesCommitted,
)
from alphad.actors.store_plan import (
    Batch,
    Recorded,
    plan_batch,
    signals_to_look_up,
    traded_conflict,
    unknown_signal,
)
from alphad.actors.store_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    check_read_only,
    integrity_problems,
    prepare,
)
from alphad.actors.store_writes import (
    delete_old_signals,
    journaled_signals,
    recorded_trade_ids,
    traded_outcomes,
    write_batch,
)

log = structlog.get_logger("alphad.store")

_T = TypeVar("_T")

MIB = 1 << 20
SNAPSHOT_ROOM = 2
# Reads (audit, history, signal pages) answered per batch; the others wait for the next,
# behind the writes queued meanwhile: sixteen dashboards paging the journal held every
# bot's record_trade for seconds.
QUERIES_PER_BATCH = 8


class _MoreQueries:
    """The store's note to itself that reads are waiting (``QUERIES_PER_BATCH``)."""
"""A snapshot alone is written only with this many times its size free, and 1 MiB more:
the write-ahead log takes it once and the database file once more at the checkpoint."""


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
    # Since when (time.monotonic) the write now on the database thread has waited; None
    # between writes. A write that waits on a lock or a slow disk is not a failure yet,
    # but nothing is acknowledged meanwhile.
    writing_since: float | None = None
    audit_seq: int = 0  # the newest committed audit entry's


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
        self._failure_log = LogThrottle()
        self.history_keep = history_keep
        # The last committed history row's maps (None: the next row is a keyframe).
        self._history_chain: Chain | None = None
        self.snapshots_keep = snapshots_keep
        # Kept snapshots that did not restore (set by the start): deleted with the next.
        self.unrestorable_snapshots: list[int] = []
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
        self._queries: deque[Envelope] = deque()  # reads waiting for their turn
        self._queries_told = False  # a _MoreQueries is in the mailbox
        # (device, inode) of the database file opened at the start: a write is
        # acknowledged only while the path still names that file (``_check_file``).
        self._file_id: tuple[int, int] | None = None
        # The same of its write-ahead log, which holds every commit since the last
        # checkpoint: deleted (a cleanup of `*-wal` files), the commits are only in the
        # open file, and a crash loses them. None where there was none to check.
        self._log_id: tuple[int, int] | None = None
        self._log_saved = False  # the lost log's commits copied into the database file
        self._log_file = Path(f"{path}-wal")
        self._writing_since: float | None = None
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
            writing_since=self._writing_since,
            audit_seq=self.last_audit_seq,
        )

    # ------------------------------------------------------------------ opening

    async def on_start(self) -> None:
        if self.db is not None:
            return
        require_primitive()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_orphan_log(self.path)
        refuse_empty_or_create(self.path)
        checked = await asyncio.to_thread(check_read_only, self.path)
        # "IMMEDIATE": the first write of a batch opens the write transaction itself.
        self.db = await aiosqlite.connect(self.path, isolation_level="IMMEDIATE")
        try:
            opened = await self._run(
                partial(
                    prepare,
                    path=self.path,
                    synchronous=self.synchronous,
                    busy_timeout_ms=self.busy_timeout_ms,
                    checked=checked,
                )
            )
        except BaseException:
            # The connection's thread would otherwise outlive the refusal to start.
            await self.db.close()
            self.db = None
            raise
        self._file_id = _file_id(self.path)
        # SQLite keeps the log beside the file a link points to, as opened.
        self._log_file = Path(f"{os.path.realpath(self.path)}-wal")
        with contextlib.suppress(OSError):
            self._log_id = _file_id(self._log_file)
        for version in opened.migrated:
            log.info("schema_migrated", version=version, database=str(self.path))
        self.last_trade_seq = opened.last_trade_seq
        self.last_outcome_seq = opened.last_outcome_seq
        self.last_audit_seq = opened.last_audit_seq
        self.trades_committed = opened.trades

    async def on_stop(self) -> None:
        while self._queries:
            reply_to = self._queries.popleft().reply_to
            if reply_to is not None and not reply_to.done():
                reply_to.set_exception(ActorStopped(f"{self.name} stopped"))
        if self.db is not None:
            await self._flush_signals()
            await self.db.close()
            self.db = None

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` on the database thread, in one hop."""
        if self.db is None:
            raise StorageUnavailable("database is not open")
        return await in_connection_thread(self.db, work)

    # ------------------------------------------------------------------ recovery

    async def snapshot_ids(self) -> list[int]:
        """The kept snapshots, newest first."""
        return await self._run(reads.snapshot_ids)

    async def load_recovery(self, snapshot_id: int | None = None) -> Recovery:
        """A snapshot (the newest unless told which) and what was committed after it."""
        return await self._run(partial(reads.load_recovery, snapshot_id=snapshot_id))

    async def signals_after(
        self, ordinal: int, limit: int | None = None
    ) -> list[JournaledSignal]:
        """The journaled signals the scorer scored after its ``ordinal``-th, in order (the
        first ``limit``)."""
        return await self._run(partial(reads.signals_after, ordinal=ordinal, limit=limit))

    async def trades_after(self, seq: int, limit: int | None = None) -> list[ClosedTrade]:
        """Committed trades with a greater seq, in seq order."""
        return await self._run(partial(reads.trades_after, seq=seq, limit=limit))

    async def latest_cycle(self) -> int:
        """The number of the last journaled optimization cycle (0 if none)."""
        return await self._run(reads.latest_cycle)

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
                _resolve(envelope, None)  # taken: the scorer may hand the next rows
            elif isinstance(message, PruneSignals):
                prune = message
            elif isinstance(message, CheckFiles):
                await self._check_files()
            elif isinstance(message, _MoreQueries):
                self._queries_told = False
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
        if outcomes:
            outcomes = await self._refuse_against_trades(outcomes, trades)
        # Commits (cycles, operators' changes, snapshots) in a transaction of their own:
        # one that fails (a snapshot of megabytes on a disk with room for trades only)
        # refuses no trade with it.
        if trades or outcomes or self._pending_signals:
            await self._write(trades, outcomes, [])
        kept = self._room_for(commits)
        if kept:
            await self._write([], [], kept)
        if prune is not None:
            await self._prune_signals(prune)
        self._queries.extend(queries)
        await self._answer_queries()
        self._announce_trades()

    async def _answer_queries(self) -> None:
        """Answer the reads waiting, ``QUERIES_PER_BATCH`` at most (one given up on, timed
        out, costs nothing); tell the store to go on with the rest behind what is queued."""
        waiting = self._queries
        answered = 0
        while waiting and answered < QUERIES_PER_BATCH:
            envelope = waiting.popleft()
            if envelope.skippable and envelope.reply_to is not None and envelope.reply_to.done():
                continue
            await self._answer_query(envelope)
            answered += 1
        if waiting and not self._queries_told:
            try:
                self.tell(_MoreQueries())
                self._queries_told = True
            except MailboxFull:
                pass  # the messages filling it bring the store back here
            except ActorStopped:
                pass  # on_stop answers them

    def _room_for(self, commits: list[Envelope]) -> list[Envelope]:
        """The commits to write: a snapshot alone (nobody's change rides on it) is
        refused, without writing, unless the database's disk keeps at least its size free
        after it (``SNAPSHOT_ROOM``): retried as soon as space came back, it took what was
        freed, and trades stayed refused until far more than it was."""
        kept = []
        for envelope in commits:
            commit = envelope.message
            if not _snapshot_only(commit) or commit.snapshot is None:
                kept.append(envelope)
                continue
            size = sum(len(piece) for piece in commit.snapshot.state)
            try:
                free = shutil.disk_usage(os.path.dirname(os.path.realpath(self.path))).free
            except OSError:
                free = None  # the write will say what is wrong
            if free is None or free >= SNAPSHOT_ROOM * size + MIB:
                kept.append(envelope)
                continue
            log.warning("snapshot_deferred", free_bytes=free, snapshot_bytes=size)
            if envelope.reply_to is not None and not envelope.reply_to.done():
                envelope.reply_to.set_exception(
                    StorageUnavailable(
                        f"snapshot not written: {free / MIB:.1f} MiB free on the database's"
                        f" disk, and a snapshot of {size / MIB:.1f} MiB is written only with"
                        f" {SNAPSHOT_ROOM} times its size and 1 MiB free"
                    )
                )
        return kept

    async def _refuse_unknown_signals(self, outcomes: list[Envelope]) -> list[Envelope]:
        """Answer ``not_found`` to outcomes of signals alphad never scored (nor has
        journaled any more: ``signals_keep_days``); the others go on to be written."""
        asked = signals_to_look_up((e.message for e in outcomes), self._pending_signals)
        if not asked:
            return outcomes
        try:
            known = await self._run(partial(journaled_signals, ids=sorted(asked)))
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.warning("signal_lookup_failed", error=str(exc))
            return outcomes  # the write that follows answers for the storage
        unknown = asked - known
        kept = []
        for envelope in outcomes:
            signal_id = envelope.message.signal_id
            if signal_id in unknown:
                _resolve(envelope, unknown_signal(signal_id))
            else:
                kept.append(envelope)
        return kept

    async def _refuse_against_trades(
        self, outcomes: list[Envelope], trades: list[Envelope]
    ) -> list[Envelope]:
        """Answer ``conflict`` to outcomes opposite to the one a trade recorded with the
        signal's id (its first, pnl > 0), whether on disk or in this batch (whose trades
        the scorer learns first): the scorer learned the trade's, and the journal must
        not say the other. The same outcome is recorded as any resend is. Of this batch's
        trades only those it records count: not a resend of a recorded trade_id (one that
        differs is refused as a conflict, and an equal one's signal is on disk already)."""
        ids = sorted({e.message.signal_id for e in outcomes})
        linked = [e.message.trade for e in trades if e.message.trade.signal_id is not None]
        trade_ids = sorted({t.trade_id for t in linked})

        def look_up(db: sqlite3.Connection) -> tuple[dict[str, tuple[str, float]], set[str]]:
            return traded_outcomes(db, ids=ids), recorded_trade_ids(db, ids=trade_ids)

        try:
            traded, recorded_ids = await self._run(look_up)
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.warning("signal_lookup_failed", error=str(exc))
            return outcomes  # the write that follows answers for the storage
        for trade in linked:
            if trade.trade_id not in recorded_ids:
                recorded_ids.add(trade.trade_id)  # a second one in the batch is a resend
                traded.setdefault(trade.signal_id, (trade.trade_id, trade.pnl))
        kept = []
        for envelope in outcomes:
            outcome = envelope.message
            first = traded.get(outcome.signal_id)
            if first is not None and (first[1] > 0) != outcome.success:
                self.conflicts += 1
                _resolve(envelope, traded_conflict(outcome.signal_id, *first, outcome.success))
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
        self._writing_since = time.monotonic()
        try:
            deleted, after_id = await self._run(
                partial(
                    delete_old_signals,
                    before_ms=prune.before_ms,
                    chunk=self.prune_chunk,
                    after_id=prune.after_id,
                    now_ms=prune.now_ms,
                )
            )
        except (sqlite3.Error, StorageUnavailable, ValueError) as exc:
            # Retried by the next scheduled prune; trades are unaffected.
            log.warning("signal_prune_failed", error=str(exc))
            return
        finally:
            self._writing_since = None
        self.signals_pruned += deleted
        if after_id is not None:
            try:
                self.tell(PruneSignals(prune.before_ms, after_id, prune.now_ms))
            except Exception:
                pass  # a full mailbox: the next scheduled prune walks again from the start
        elif deleted:
            log.info("signals_pruned", before_ms=prune.before_ms, total=self.signals_pruned)

    async def _write(
        self, trades: list[Envelope], outcomes: list[Envelope], commits: list[Envelope]
    ) -> None:
        plan = plan_batch(
            trades=[e.message for e in trades],
            outcomes=[e.message for e in outcomes],
            commits=[e.message for e in commits],
            signals=self._pending_signals,
            last_trade_seq=self.last_trade_seq,
            last_outcome_seq=self.last_outcome_seq,
            last_audit_seq=self.last_audit_seq,
            chain=self._history_chain,
            now_ms=_now_ms(),
        )
        batch = plan.batch(
            history_keep=self.history_keep,
            snapshots_keep=self.snapshots_keep,
            snapshots_drop=self.unrestorable_snapshots,
        )
        started = time.perf_counter()
        self._writing_since = time.monotonic()
        try:
            trades_found, outcomes_found = await self._run(
                partial(self._write_checked, batch, self._lock_wait_ms(trades, outcomes))
            )
        except (sqlite3.Error, StorageUnavailable, ValueError) as exc:
            if isinstance(exc, LogLost) and not self._log_saved:
                await self._save_lost_log()  # before the refusal, which a crash may follow
            self._fail_batch(exc, trades, outcomes, commits)
            return
        finally:
            self._writing_since = None
        # Committed: advance the sequences, answer the waiting asks, tell the learners.
        self.commit_samples.add((time.perf_counter() - started, len(batch.trades)))
        if not self.healthy:
            log.info(
                "storage_write_recovered",
                failed_batches=self.failed_batches,
                lines_held_back=self._failure_log.held("storage_write_failed"),
            )
        self.healthy = True
        self._pending_signals = []
        if batch.snapshots:
            self.unrestorable_snapshots = []
        plan.settle(trades_found, outcomes_found)
        self.conflicts += plan.conflicts
        new_trades, new_outcomes = plan.trades.new, plan.outcomes.new
        self.last_trade_seq = plan.trades.last_seq(self.last_trade_seq)
        self.trades_committed += len(new_trades)
        self._unannounced_trades += len(new_trades)
        self.last_outcome_seq = plan.outcomes.last_seq(self.last_outcome_seq)
        self.last_audit_seq = plan.commits.last_seq(self.last_audit_seq)
        # The next row is a delta against the last one on disk, never a refused one.
        self._history_chain = plan.commits.chain
        # The cycles' commits first: the engine that waits on one drains its mailbox once
        # answered, so the waits below cannot hold it.
        _resolve_all(commits, plan.commits.answers)
        # Learners must see every committed record: a full mailbox slows the store down
        # (and so the acknowledgements) instead of dropping a trade. They never ask the
        # store, so this wait cannot close a circle. They are told before the bots are
        # answered: an idle scorer then learns a trade's outcome before the bot's next
        # score_signal (its wake-up is queued on the loop before the reply's), as a replay
        # of the same rows does; acknowledged first, the next score often missed it.
        try:
            for trade in new_trades:
                for actor in self.trade_subscribers:
                    await actor.tell_wait(trade)
            for outcome in new_outcomes:
                for actor in self.outcome_subscribers:
                    await actor.tell_wait(outcome)
        finally:
            # Committed: acknowledged even when a learner stopped (at a stop; the next
            # start learns the trade from the journal).
            _resolve_all(trades, plan.trades.answers)
            _resolve_all(outcomes, plan.outcomes.answers)

    def _lock_wait_ms(self, trades: list[Envelope], outcomes: list[Envelope]) -> int:
        """How long this write may wait on a lock another program holds: what is left of
        ``busy_timeout_ms`` since the oldest trade or outcome in it was sent. Each write
        waited the whole of it, so one that came while the store waited in another write
        (the scored signals', a cycle's) was refused after two or three times as long,
        past a bot's timeout; left with nothing, the write tries once."""
        sent = [e.message.sent for e in (*trades, *outcomes)]
        if not sent:
            return self.busy_timeout_ms
        waited_ms = (time.monotonic() - min(sent)) * 1000.0
        if waited_ms < LOCK_WAIT_SLACK_MS:
            return self.busy_timeout_ms  # as set: no PRAGMA for a write that came just now
        return max(0, int(self.busy_timeout_ms - waited_ms))

    def _write_checked(
        self, batch: Batch, lock_wait_ms: int, db: sqlite3.Connection
    ) -> tuple[dict[str, Recorded] | None, dict[str, Recorded] | None]:
        """``write_batch`` with ``_check_file`` just before its commit: a batch committed
        into a file the path no longer names is lost at the next start, and one refused
        must not come back when the file is put back, so it is rolled back and refused.
        It waits at most ``lock_wait_ms`` on a lock (``_lock_wait_ms``)."""
        if lock_wait_ms == self.busy_timeout_ms:
            return write_batch(db, batch=batch, before_commit=self._check_file)
        db.execute(f"PRAGMA busy_timeout={lock_wait_ms}")
        try:
            return write_batch(db, batch=batch, before_commit=self._check_file)
        finally:
            db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    def _check_file(self) -> None:
        """Raise ``StorageUnavailable`` unless the path still names the database file
        opened at the start (deleted, or replaced by another file, while alphad runs),
        and ``LogLost`` unless its write-ahead log is still the one beside it."""
        if self._file_id is None:
            return
        if _file_id_or_none(self.path) != self._file_id:
            raise StorageUnavailable(
                f"{self.path} was deleted or replaced after alphad opened it: nothing is"
                " recorded until the file alphad opened is back under that name, or alphad"
                " is restarted on the database file"
            )
        if self._log_id is not None and _file_id_or_none(self._log_file) != self._log_id:
            raise LogLost(
                f"{self._log_file} (the database's write-ahead log) was deleted or replaced"
                " while alphad runs: what it had acknowledged is copied into the database"
                " file, and nothing more is recorded until alphad is restarted"
            )

    async def _check_files(self) -> None:
        """``_check_file`` between writes: a lost log's commits are saved at once, and
        storage reads failing, without waiting for a write to find it."""
        try:
            self._check_file()
        except StorageUnavailable as exc:
            if isinstance(exc, LogLost) and not self._log_saved:
                await self._save_lost_log()
            if self.healthy:
                log.error("storage_write_failed", error=str(exc), trades=0)
            self.healthy = False

    async def _save_lost_log(self) -> None:
        """Copy the commits of a write-ahead log deleted while open into the database
        file (a checkpoint reads the open file): a crash would otherwise lose them."""
        try:
            busy, frames, copied = await self._run(
                lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            )
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.error("lost_log_not_saved", error=str(exc))
            return
        self._log_saved = not busy and frames == copied
        log.error(
            "write_ahead_log_lost",
            log=str(self._log_file),
            saved=self._log_saved,
            frames=frames,
            copied=copied,
        )

    def _fail_batch(
        self,
        exc: BaseException,
        trades: list[Envelope],
        outcomes: list[Envelope],
        commits: list[Envelope],
    ) -> None:
        # A snapshot alone that could not be written is not a write refused: trades go on
        # being acknowledged, and storage read "failing" for it.
        optional = not (trades or outcomes or self._pending_signals) and all(
            _snapshot_only(e.message) for e in commits
        )
        if not optional:
            self.healthy = False
        self.failed_batches += 1
        # Scored signals are best effort: keep a bounded backlog for the next batch.
        if len(self._pending_signals) > 100_000:
            self.dropped_signals += len(self._pending_signals)
            self._pending_signals = []
        held = self._failure_log.admit("storage_write_failed")
        if held is not None:  # a bot retrying against a full disk, once a second at most
            log.error(
                "storage_write_failed", error=str(exc), trades=len(trades), lines_held_back=held
            )
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
            return await self._run(partial(reads.audit_page, query=message))
        if isinstance(message, QuerySignals):
            return await self._run(partial(reads.signals_page, query=message))
        if isinstance(message, QueryHistory):
            return await self._run(partial(reads.history_page, query=message))
        raise TypeError(f"store cannot handle {type(message).__name__}")


def _file_id(path: Path) -> tuple[int, int]:
    """(device, inode) of the file ``path`` names, through any link."""
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino)


def _snapshot_only(commit: Commit) -> bool:
    """A commit of a snapshot alone: nobody's change rides on it."""
    return commit.snapshot is not None and not commit.audit and commit.history is None


def _file_id_or_none(path: Path) -> tuple[int, int] | None:
    try:
        return _file_id(path)
    except OSError:
        return None


class LogLost(StorageUnavailable):
    """The database's write-ahead log is no longer the file beside it."""


def refuse_orphan_log(path: Path) -> None:
    """Refuse to start a new, empty database where the old one's write-ahead log is
    still beside it: the file was deleted or moved, and the log holds trades."""
    wal = path.with_name(path.name + "-wal")
    if not path.exists() and wal.exists() and wal.stat().st_size > 0:
        raise StorageCorrupt(
            f"{path} is missing but its write-ahead log {wal.name} is not: restore the"
            " database file (or move the log away to start an empty database)"
        )


def refuse_empty_or_create(path: Path) -> None:
    """Refuse an empty file where the database should be (SQLite would take it for a
    whole, empty database: a backup that lost everything would start as a new daemon,
    every status and weight at its default); make a missing one whole before it takes
    the name, so that a start killed while creating it leaves no empty file behind."""
    if path.exists():
        if path.is_file() and path.stat().st_size == 0:
            raise StorageCorrupt(
                f"{path} is an empty file, not an alphad database (a backup that lost"
                " everything?): restore the database, or remove the file to start an empty one"
            )
        return
    real = path.resolve()  # a symbolic link stays one: the file is made where it points
    staged = real.with_name(f".{real.name}.new")
    for leftover in (staged, *(staged.with_name(staged.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    db = sqlite3.connect(staged)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # writes the file's header
    finally:
        db.close()
    os.replace(staged, real)


LOCK_WAIT_SLACK_MS = 5.0
"""A trade or outcome sent less than this before its write waits the whole busy timeout."""


def _resolve(envelope: Envelope, result: Any) -> None:
    if envelope.reply_to is not None and not envelope.reply_to.done():
        if isinstance(result, Refused):
            envelope.reply_to.set_exception(result)
        else:
            envelope.reply_to.set_result(result)


def _resolve_all(envelopes: Sequence[Envelope], results: Sequence[Any]) -> None:
    for envelope, result in zip(envelopes, results, strict=True):
        _resolve(envelope, result)


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AppendOutcome",
    "AppendSignal",
    "AppendSignals",
    "AppendTrade",
    "AuditDraft",
    "CheckFiles",
    "Commit",
    "JournaledSignal",
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
    "integrity_problems",
]
