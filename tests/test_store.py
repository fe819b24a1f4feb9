"""The store actor against a real SQLite file: group commit, idempotency, failure, recovery."""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from alphad.actors.base import Actor, Handle
from alphad.actors.errors import Conflict
from alphad.actors.events import ClosedTrade
from alphad.actors.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AppendOutcome,
    AppendSignal,
    AppendSignals,
    AppendTrade,
    AuditDraft,
    Commit,
    PruneSignals,
    QueryAudit,
    QueryHistory,
    Snapshot,
    StorageUnavailable,
    StoreActor,
)
from alphad.daemon.supervisor import Supervisor
from alphad.protocol.messages import RecordTrade


class Learner(Actor):
    name = "learner"

    def __init__(self) -> None:
        super().__init__(1024)
        self.seen: list[Any] = []

    async def handle(self, message: Any) -> None:
        self.seen.append(message)


def trade(trade_id: str, pnl: float = 1.0, strategy: str = "ema") -> RecordTrade:
    return RecordTrade(
        trade_id=trade_id,
        strategy=strategy,
        symbol="BTC/USDT",
        side="buy",
        pnl=pnl,
        entry_ts_ms=1_000,
        exit_ts_ms=2_000,
    )


async def start_store(path: Path, **kwargs: Any) -> tuple[StoreActor, Learner, Supervisor]:
    store = StoreActor(path, **kwargs)
    learner = Learner()
    store.subscribe(trades=[Handle(learner)], outcomes=[Handle(learner)])
    supervisor = Supervisor()
    await supervisor.start(store)
    await supervisor.start(learner)
    return store, learner, supervisor


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def test_acknowledged_trade_is_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    duplicate, seq = await store.ask(AppendTrade(trade("t1", 2.5)))
    assert (duplicate, seq) == (False, 1)
    assert rows(db, "SELECT seq, trade_id, pnl, regime FROM trades") == [(1, "t1", 2.5, "unknown")]
    await supervisor.stop(1.0)


async def test_resent_trade_is_a_duplicate_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db)
    first = await store.ask(AppendTrade(trade("t1", 1.0)))
    again = await store.ask(AppendTrade(trade("t1", 1.0)))
    assert first == (False, 1)
    assert again == (True, 1)
    assert rows(db, "SELECT trade_id, pnl FROM trades") == [("t1", 1.0)]
    await asyncio.sleep(0.01)
    assert [t.trade_id for t in learner.seen] == ["t1"]
    assert store.conflicts == 0
    await supervisor.stop(1.0)


async def test_resent_trade_that_differs_is_a_conflict_naming_the_fields(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db)
    await store.ask(AppendTrade(trade("t1", 1.0, strategy="ema")))
    other = msgspec.structs.replace(trade("t1", -2.5, strategy="rsi"), side="sell")
    with pytest.raises(Conflict) as refused:
        await store.ask(AppendTrade(other))
    message = str(refused.value)
    assert "'t1'" in message and "strategy 'ema'" in message and "strategy 'rsi'" in message
    assert "side 'buy'" in message and "side 'sell'" in message
    assert "pnl 1.0" in message and "pnl -2.5" in message and "symbol" not in message
    # A float that differs in its last bit is another pnl.
    with pytest.raises(Conflict):
        await store.ask(AppendTrade(trade("t1", math.nextafter(1.0, 2.0))))
    assert rows(db, "SELECT trade_id, strategy, side, pnl FROM trades") == [
        ("t1", "ema", "buy", 1.0)
    ]
    assert await store.ask(AppendTrade(trade("t1", 1.0))) == (True, 1)
    await asyncio.sleep(0.01)
    assert [t.trade_id for t in learner.seen] == ["t1"]
    assert store.conflicts == 2
    await supervisor.stop(1.0)


async def test_two_different_trades_with_one_id_in_a_batch_record_only_the_first(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    await store.ask(AppendTrade(trade("old", 1.0)))
    first, same, differs, old_differs = await asyncio.gather(
        store.ask_future(AppendTrade(trade("t1", 1.0))),
        store.ask_future(AppendTrade(trade("t1", 1.0))),
        store.ask_future(AppendTrade(trade("t1", 3.0))),
        store.ask_future(AppendTrade(trade("old", 4.0))),
        return_exceptions=True,
    )
    assert first == (False, 2) and same == (True, 2)
    assert isinstance(differs, Conflict)
    assert "pnl 1.0" in str(differs) and "pnl 3.0" in str(differs)
    assert isinstance(old_differs, Conflict)
    assert rows(db, "SELECT trade_id, pnl FROM trades ORDER BY seq") == [("old", 1.0), ("t1", 1.0)]
    assert store.conflicts == 2
    await supervisor.stop(1.0)


async def test_resends_of_a_recorded_trade_in_one_batch_are_each_answered_by_the_record(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    assert await store.ask(AppendTrade(trade("old", 1.0))) == (False, 1)
    differs, repeats, other = await asyncio.gather(
        store.ask_future(AppendTrade(trade("old", 2.0))),
        store.ask_future(AppendTrade(trade("old", 1.0))),
        store.ask_future(AppendTrade(trade("old", 3.0))),
        return_exceptions=True,
    )
    assert isinstance(differs, Conflict) and "pnl 1.0" in str(differs)
    assert repeats == (True, 1)
    # Refused against what is recorded (1.0), not against the other resend (2.0).
    assert isinstance(other, Conflict)
    assert "recorded with pnl 1.0; this one has pnl 3.0" in str(other)
    assert rows(db, "SELECT seq, trade_id, pnl FROM trades") == [(1, "old", 1.0)]
    assert store.conflicts == 2
    await supervisor.stop(1.0)


async def test_trades_arriving_together_commit_once_with_duplicates_resolved(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db)
    await store.ask(AppendTrade(trade("old")))
    futures = [store.ask_future(AppendTrade(trade(f"t{i % 5}"))) for i in range(10)]
    futures.append(store.ask_future(AppendTrade(trade("old"))))
    results = await asyncio.gather(*futures)
    new = [r for r in results if not r[0]]
    assert len(new) == 5
    assert results[-1] == (True, 1)
    for i in range(5, 10):
        assert results[i] == (True, results[i - 5][1])
    stored = rows(db, "SELECT trade_id, seq FROM trades ORDER BY seq")
    assert len(stored) == 6
    await asyncio.sleep(0.01)
    seqs = [t.seq for t in learner.seen]
    assert seqs == sorted(seqs) and len(seqs) == 6
    assert {t.trade_id for t in learner.seen} == {"old", "t0", "t1", "t2", "t3", "t4"}
    await supervisor.stop(1.0)


async def test_locked_database_refuses_instead_of_acknowledging_and_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db, busy_timeout_ms=50)
    await store.ask(AppendTrade(trade("before")))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StorageUnavailable):
        await store.ask(AppendTrade(trade("during")))
    assert not store.healthy
    blocker.execute("ROLLBACK")
    blocker.close()
    assert await store.ask(AppendTrade(trade("during"))) == (False, 2)
    assert store.healthy
    assert [r[0] for r in rows(db, "SELECT trade_id FROM trades ORDER BY seq")] == [
        "before",
        "during",
    ]
    await asyncio.sleep(0.01)
    assert [t.trade_id for t in learner.seen] == ["before", "during"]
    await supervisor.stop(1.0)


async def test_audit_entries_get_increasing_seqs_and_are_queryable(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    drafts = [
        AuditDraft(
            ts_ms=5,
            kind="status",
            strategy="ema",
            old="active",
            new="degraded",
            reason="expectancy < 0",
            actor="system",
            data={"expectancy": -1.0},
        ),
        AuditDraft(
            ts_ms=6,
            kind="weight",
            strategy="rsi",
            old=1.0,
            new=0.85,
            reason="cycle 1",
            actor="system",
        ),
    ]
    entries = await store.ask(Commit(audit=drafts))
    more = await store.ask(Commit(audit=drafts[:1]))
    assert [e.seq for e in entries] == [1, 2]
    assert [e.seq for e in more] == [3]
    since, more = await store.ask(QueryAudit(1, None, 100))
    assert [e.seq for e in since] == [2, 3] and more is False
    assert since[1].data == {"expectancy": -1.0}
    only_rsi, _ = await store.ask(QueryAudit(0, "rsi", 100))
    assert [(e.seq, e.old, e.new) for e in only_rsi] == [(2, 1.0, 0.85)]
    # Without a byte bound the answer is still a page that says whether entries are left.
    first, more = await store.ask(QueryAudit(0, None, 2))
    assert [e.seq for e in first] == [1, 2] and more is True
    rest, more = await store.ask(QueryAudit(2, None, 2))
    assert [e.seq for e in rest] == [3] and more is False
    await supervisor.stop(1.0)


async def test_recovery_gives_last_snapshot_and_the_tail_after_it(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    for i in range(5):
        await store.ask(AppendTrade(trade(f"t{i}", float(i))))
    await store.ask(AppendOutcome("sig-1", True, 7))
    await store.ask(
        Commit(snapshot=Snapshot(ts_ms=1, trade_seq=3, outcome_seq=0, state=[b"S", b"TA", b"TE"]))
    )
    await store.ask(AppendOutcome("sig-2", False, 8))
    await supervisor.stop(1.0)

    reopened = StoreActor(db)
    await reopened.on_start()
    recovery = await reopened.load_recovery()
    assert recovery.snapshot is not None and recovery.snapshot.encoded() == b"STATE"
    assert [t.trade_id for t in recovery.trades] == ["t3", "t4"]
    assert all(isinstance(t, ClosedTrade) for t in recovery.trades)
    assert [(o.signal_id, o.success) for o in recovery.outcomes] == [
        ("sig-1", True),
        ("sig-2", False),
    ]
    assert reopened.last_trade_seq == 5
    await reopened.on_stop()


async def test_database_from_a_newer_alphad_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=99")
    before = db.read_bytes()
    store = StoreActor(db)
    with pytest.raises(RuntimeError, match="newer"):
        await store.on_start()
    assert store.db is None  # closed, its thread gone: nothing outlives the refusal
    # Refused before anything is written: the journal mode once went to WAL first.
    assert db.read_bytes() == before


async def test_another_programs_database_and_an_empty_file_are_refused_untouched(
    tmp_path: Path,
) -> None:
    # Both were taken: the foreign file got alphad's tables beside its own (and passed
    # check-db from then on), the empty one started as a new daemon with every status
    # and weight at its default.
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('alice')")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    # A trading bot's own file, one table of which has a name of alphad's.
    bots = tmp_path / "bots.db"
    with sqlite3.connect(bots) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER)")
        conn.execute("CREATE TABLE orders (id INTEGER)")
    versioned = tmp_path / "versioned.db"
    with sqlite3.connect(versioned) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("PRAGMA user_version=3")
    for db, said in (
        (foreign, "is not an alphad database (it holds tables users of another program)"),
        (empty, "is an empty file, not an alphad database"),
        (bots, "is not an alphad database (it holds tables orders, trades of another"),
        (versioned, "is not an alphad database (it holds tables users of another program)"),
    ):
        before = db.read_bytes()
        store = StoreActor(db)
        with pytest.raises(Exception, match=re.escape(said)):
            await store.on_start()
        assert store.db is None
        assert db.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "bots.db",
            "empty.db",
            "foreign.db",
            "versioned.db",
        ]


async def test_a_new_database_takes_its_name_only_once_whole(tmp_path: Path) -> None:
    # Made beside itself and renamed: a start killed while making it leaves no empty
    # file under the database's name (which the next start would refuse).
    db = tmp_path / "alphad.db"
    (tmp_path / ".alphad.db.new").write_bytes(b"")  # left by a start killed before
    store = StoreActor(db)
    await store.on_start()
    await store.on_stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alphad.db"]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_schema_is_created_once_with_wal(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    for _ in range(2):
        store = StoreActor(db)
        await store.on_start()
        await store.on_stop()
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


async def test_resent_signal_outcome_is_a_duplicate_in_and_across_batches(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db)
    first = await store.ask(AppendOutcome("sig-1", True, 1))
    together = await asyncio.gather(
        store.ask_future(AppendOutcome("sig-1", True, 2)),
        store.ask_future(AppendOutcome("sig-2", False, 2)),
        store.ask_future(AppendOutcome("sig-2", False, 3)),
    )
    assert first == (False, 1)
    assert together[0] == (True, 1)
    assert together[1][0] is False and together[2] == (True, together[1][1])
    assert rows(db, "SELECT signal_id, success FROM signal_outcomes ORDER BY seq") == [
        ("sig-1", 1),
        ("sig-2", 0),
    ]
    await asyncio.sleep(0.01)
    assert [o.signal_id for o in learner.seen] == ["sig-1", "sig-2"]
    await supervisor.stop(1.0)


async def test_opposite_signal_outcome_is_a_conflict_in_and_across_batches(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    store, learner, supervisor = await start_store(db)
    await store.ask(AppendOutcome("sig-1", True, 1))
    across, new, within = await asyncio.gather(
        store.ask_future(AppendOutcome("sig-1", False, 2)),
        store.ask_future(AppendOutcome("sig-2", False, 2)),
        store.ask_future(AppendOutcome("sig-2", True, 3)),
        return_exceptions=True,
    )
    assert isinstance(across, Conflict)
    assert "success True" in str(across) and "success False" in str(across)
    assert isinstance(new, tuple) and new[0] is False
    assert isinstance(within, Conflict)
    assert rows(db, "SELECT signal_id, success FROM signal_outcomes ORDER BY seq") == [
        ("sig-1", 1),
        ("sig-2", 0),
    ]
    await asyncio.sleep(0.01)
    assert [(o.signal_id, o.success) for o in learner.seen] == [("sig-1", True), ("sig-2", False)]
    assert store.conflicts == 2
    await supervisor.stop(1.0)


async def test_an_outcome_opposite_to_its_signals_trade_is_a_conflict(tmp_path: Path) -> None:
    # A trade with a signal_id records that signal's outcome (pnl > 0), which the scorer
    # learns: the opposite outcome sent after it would leave the journal saying the other.
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    won = msgspec.structs.replace(trade("t1", 5.0), signal_id="sig-1")
    await store.ask(AppendTrade(won))
    with pytest.raises(Conflict) as caught:
        await store.ask(AppendOutcome("sig-1", False, 3))
    assert str(caught.value) == (
        "the outcome of signal_id 'sig-1' is already recorded with success true (trade 't1',"
        " pnl 5.0); this one has success false; nothing was recorded"
    )
    assert (await store.ask(AppendOutcome("sig-1", True, 4)))[0] is False  # the same: kept
    # In one batch: the scorer learns a batch's trades first, so the trade's counts.
    lost = msgspec.structs.replace(trade("t2", -1.0), signal_id="sig-2")
    _, within = await asyncio.gather(
        store.ask_future(AppendTrade(lost)),
        store.ask_future(AppendOutcome("sig-2", True, 5)),
        return_exceptions=True,
    )
    assert isinstance(within, Conflict)
    assert rows(db, "SELECT signal_id, success FROM signal_outcomes ORDER BY seq") == [("sig-1", 1)]
    assert store.conflicts == 2
    await supervisor.stop(1.0)


async def test_a_trade_refused_in_the_batch_of_an_outcome_does_not_refuse_it(
    tmp_path: Path,
) -> None:
    # A resend of a recorded trade naming a signal its record has not is a conflict and
    # records nothing: the outcome beside it, opposite to that resend, was refused as
    # "already recorded" and lost.
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    await store.ask(AppendTrade(trade("t1", -1.0)))
    resent = msgspec.structs.replace(trade("t1", -1.0), signal_id="sig-1")
    twin = msgspec.structs.replace(trade("t2", -2.0), signal_id="sig-2")
    refused, outcome, first, second, against = await asyncio.gather(
        store.ask_future(AppendTrade(resent)),
        store.ask_future(AppendOutcome("sig-1", True, 2)),
        store.ask_future(AppendTrade(twin)),
        # The second of two equal trades in one batch is a duplicate: its first counts.
        store.ask_future(AppendTrade(twin)),
        store.ask_future(AppendOutcome("sig-2", True, 3)),
        return_exceptions=True,
    )
    assert isinstance(refused, Conflict)
    assert isinstance(outcome, tuple) and outcome[0] is False
    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    assert isinstance(against, Conflict) and "trade 't2'" in str(against)
    assert rows(db, "SELECT signal_id, success FROM signal_outcomes ORDER BY seq") == [
        ("sig-1", 1)
    ]
    await supervisor.stop(1.0)


async def test_reads_queued_with_trades_wait_behind_the_writes_of_the_next_batch(
    tmp_path: Path,
) -> None:
    # Every read of a batch was answered before the store looked at its mailbox again:
    # dashboards paging the journal held every bot's record_trade for seconds.
    from alphad.actors.store import QUERIES_PER_BATCH

    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    done: list[str] = []
    reads = [store.ask_future(QueryAudit(0, None, 100)) for _ in range(5 * QUERIES_PER_BATCH)]
    for future in reads:
        future.add_done_callback(lambda _: done.append("read"))
    await asyncio.sleep(0)  # the store takes the reads as one batch
    written = store.ask_future(AppendTrade(trade("t1", 1.0)))
    written.add_done_callback(lambda _: done.append("trade"))
    await asyncio.gather(written, *reads)
    assert done.index("trade") <= 2 * QUERIES_PER_BATCH
    assert len(done) == 5 * QUERIES_PER_BATCH + 1
    # A read given up on before its turn is not run; the rest are still answered.
    late = [
        store.ask_future(QueryAudit(0, None, 100), skippable=True)
        for _ in range(3 * QUERIES_PER_BATCH)
    ]
    late[-1].cancel()
    await asyncio.gather(*late[:-1])
    await supervisor.stop(1.0)


def journaled(signal_id: str, ts_ms: int) -> AppendSignal:
    return AppendSignal(
        signal_id, ts_ms, "ema", "BTC/USDT", "buy", 0.7, 3, None, 0.6, True, 1.0, 1.0, "active", ""
    )


async def test_prune_deletes_old_signals_chunk_by_chunk_and_nothing_else(tmp_path: Path) -> None:
    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    try:
        store.prune_chunk = 3
        # Journaled in time order, one a bot stamped far ahead first (a clock in the wrong
        # century), and one stamped far in the past after recent ones.
        stamps = [4_000_000_000_000, 100, 200, 300, 400, 500, 5_000, 6_000, 6_500, 50]
        store.tell(AppendSignals([journaled(f"s{i}", ts) for i, ts in enumerate(stamps)]))
        await store.ask(AppendTrade(trade("kept", 1.0)))
        store.tell(PruneSignals(before_ms=1_000))
        # A chunk per batch: the store tells itself to go on behind what is queued, so
        # each query below lets one more chunk run first.
        for _ in range(3):
            # Nothing journaled in the history: an empty page with nothing left.
            assert await store.ask(QueryHistory(1)) == ([], False)
        left = rows(db, "SELECT signal_id, ts_ms FROM signals ORDER BY id")
        # The five old ones behind the one stamped ahead are gone (it once held back every
        # chunk behind it: each deleted one short of a chunk, and the prune stopped); s9
        # waits behind a chunk of rows too recent to delete.
        assert left == [("s0", stamps[0]), ("s6", 5_000), ("s7", 6_000), ("s8", 6_500), ("s9", 50)]
        assert store.signals_pruned == 5
        assert rows(db, "SELECT trade_id FROM trades") == [("kept",)]
        # With the rows before it old enough, a prune reaches s9.
        store.tell(PruneSignals(before_ms=10_000))
        for _ in range(2):
            await store.ask(QueryHistory(1))
        assert rows(db, "SELECT signal_id FROM signals ORDER BY id") == [("s0",)]
        assert store.signals_pruned == 9
        # More than a chunk stamped ahead of the clock, in front of old rows: the prune
        # walks past them (it stopped there for good: a chunk with nothing to delete).
        ahead = [journaled(f"a{i}", 4_000_000_000_000 + i) for i in range(5)]
        store.tell(AppendSignals([*ahead, *(journaled(f"o{i}", 100 + i) for i in range(4))]))
        await store.ask(AppendTrade(trade("kept-2", 1.0)))
        store.tell(PruneSignals(before_ms=1_000, now_ms=2_000))
        for _ in range(4):
            await store.ask(QueryHistory(1))
        left = [row[0] for row in rows(db, "SELECT signal_id FROM signals ORDER BY id")]
        assert left == ["s0", "a0", "a1", "a2", "a3", "a4"]
    finally:
        await supervisor.stop(1.0)


async def test_a_version_2_database_is_migrated_and_its_trades_keep_their_regime(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alphad.db"
    with sqlite3.connect(db) as conn:
        for version in (1, 2):
            conn.executescript(MIGRATIONS[version])
        conn.execute("PRAGMA user_version=2")
        conn.execute(
            "INSERT INTO trades (seq, trade_id, strategy, symbol, side, pnl, entry_ts_ms,"
            " exit_ts_ms, regime, size, signal_id, recorded_ms)"
            " VALUES (1, 'old', 'ema', 'BTC/USDT', 'buy', 1.0, 1000, 2000, 'trending', NULL,"
            " NULL, 3000)"
        )
        conn.execute(
            "INSERT INTO signals (signal_id, ts_ms, strategy, symbol, side, confidence,"
            " confluence, regime, quality, execute, size_multiplier, weight, status, reasons)"
            " VALUES ('s-old', 1000, 'ema', 'BTC/USDT', 'buy', 0.8, 3, NULL, 0.8, 1, 1.0,"
            " 1.0, 'active', '')"
        )
    store, learner, supervisor = await start_store(db)
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(7,)]
    # A signal journaled before its place in the scorer's count was kept is never taken
    # as scored after a snapshot: no start can tell when it was scored.
    assert await store.signals_after(0) == []
    assert [t.regime for t in await store.trades_after(0)] == ["trending"]
    # The bot's label is what a resend must repeat, whatever the trade counts under.
    new = msgspec.structs.replace(trade("new"), regime="trending")
    assert await store.ask(AppendTrade(new, "volatile", use_detected=True)) == (False, 2)
    assert await store.ask(AppendTrade(new, None, use_detected=True)) == (True, 2)
    with pytest.raises(Conflict, match="with regime 'trending'; this one has regime 'calm'"):
        await store.ask(AppendTrade(msgspec.structs.replace(new, regime="calm")))
    assert await store.ask(AppendTrade(trade("none"), None, use_detected=True)) == (False, 3)
    assert await store.ask(AppendTrade(trade("bot"), "ranging")) == (False, 4)
    assert rows(db, "SELECT trade_id, regime, detected_regime, regime_source FROM trades") == [
        ("old", "trending", None, None),
        ("new", "trending", "volatile", "detected"),
        ("none", "unknown", None, "detected"),
        ("bot", "unknown", "ranging", None),
    ]
    counted = [(t.trade_id, t.regime) for t in await store.trades_after(0)]
    expected = [("old", "trending"), ("new", "volatile"), ("none", "unknown"), ("bot", "unknown")]
    assert counted == expected
    await asyncio.sleep(0.05)
    assert [(t.trade_id, t.regime) for t in learner.seen] == expected[1:]
    # An old trade has no place among the signals (learned after them at a start).
    old = (await store.trades_after(0))[0]
    assert (old.signal_pending, old.signal_scored) == (None, None)
    await supervisor.stop(5.0)


async def test_a_new_database_behind_a_symbolic_link_is_made_where_it_points(
    tmp_path: Path,
) -> None:
    (tmp_path / "disk").mkdir()
    link = tmp_path / "alphad.db"
    link.symlink_to(tmp_path / "disk" / "alphad.db")
    store = StoreActor(link)
    await store.on_start()
    await store.on_stop()
    assert link.is_symlink()
    assert rows(tmp_path / "disk" / "alphad.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_commit_that_cannot_be_written_refuses_no_trade_beside_it(
    tmp_path: Path,
) -> None:
    # A snapshot of megabytes with room on disk for trades only (here: a file size limit
    # a little above the write-ahead log's size): written in the transaction of the trades
    # that arrived with it, it failed them too.
    import resource
    import signal

    db = tmp_path / "alphad.db"
    store, _, supervisor = await start_store(db)
    await store.ask(AppendTrade(trade("before")))
    wal = db.with_name("alphad.db-wal")
    snapshot = Snapshot(ts_ms=1, trade_seq=1, outcome_seq=0, state=[b"x" * 4_000_000])
    was_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(
        resource.RLIMIT_FSIZE, (max(wal.stat().st_size, db.stat().st_size) + 500_000, limit[1])
    )
    try:
        both = [
            store.ask_future(AppendTrade(trade("beside"))),
            store.ask_future(Commit(snapshot=snapshot)),
        ]
        recorded, committed = await asyncio.gather(*both, return_exceptions=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, was_signal)
    assert recorded == (False, 2)
    assert isinstance(committed, StorageUnavailable)
    assert [r[0] for r in rows(db, "SELECT trade_id FROM trades ORDER BY seq")] == [
        "before",
        "beside",
    ]
    assert rows(db, "SELECT COUNT(*) FROM snapshots") == [(0,)]
    # Trades go on being acknowledged: a snapshot alone refused is not failing storage.
    assert store.healthy and store.failed_batches == 1
    await supervisor.stop(1.0)


def test_old_history_goes_a_chunk_of_whole_keyframe_groups_a_commit() -> None:
    # history_keep lowered far: 200 000 rows deleted in one cycle's transaction held the
    # trades committed with it for seconds. A chunk of whole groups a commit now: no
    # delta is ever left without its keyframe, and the rest goes with later commits.
    from alphad.actors.store_schema import MIGRATIONS
    from alphad.actors.store_writes import HISTORY_DELETED_AT_ONCE, _delete_old_history

    db = sqlite3.connect(":memory:")
    for version in sorted(MIGRATIONS):
        db.executescript(MIGRATIONS[version])
    cycles = 3 * HISTORY_DELETED_AT_ONCE + 250
    db.executemany(
        "INSERT INTO history (cycle, ts_ms, state, keyframe) VALUES (?, 0, x'00', ?)",
        [(c, None if c % 100 == 1 else c - (c - 1) % 100) for c in range(1, cycles + 1)],
    )
    kept_from = cycles - 100  # the last 100 cycles, and the rest of their oldest's group
    sizes = []
    while True:
        before = db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        _delete_old_history(db, kept_from - 1)
        after = db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        if after == before:
            break
        sizes.append(before - after)
        orphans = db.execute(
            "SELECT COUNT(*) FROM history AS d WHERE keyframe IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM history AS k WHERE k.cycle = d.keyframe)"
        ).fetchone()[0]
        assert orphans == 0
    assert sizes == [1000, 1000, 1000, 100]
    group_start = kept_from - (kept_from - 1) % 100
    assert db.execute("SELECT MIN(cycle) FROM history").fetchone()[0] == group_start
