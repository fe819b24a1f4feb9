"""End to end: a suspension ends on the outcomes bots report for the signals refused while
it lasted (paper trades), and that record survives a kill -9."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from alphad.protocol.messages import (
    GetHealth,
    GetReport,
    Ok,
    OptimizationState,
    RecordSignalOutcome,
    RecordTrade,
    ScoreSignal,
    SignalScore,
    UpdateOptimization,
)
from tests.daemon_process import DaemonProcess, RawClient

# Cycles on request, no probation clock (only paper trades can end the suspension), and
# paper trades judged in batches of 12.
CONFIG = (
    "[engine]\nupdate_interval_s = 0\n[limits]\noptimization_interval_s = 0\n"
    "[lifecycle]\nprobation_after_trades = 0\npaper_trades = 12\n"
)
T0 = 1_732_000_000_000


def trades(client: RawClient, pnls: list[float], start: int) -> int:
    for i, pnl in enumerate(pnls, start=start):
        client.call(
            RecordTrade(
                trade_id=f"t{i}",
                strategy="revert",
                symbol="ETH/USDT",
                side="buy",
                pnl=pnl,
                entry_ts_ms=T0 + i * 1000,
                exit_ts_ms=T0 + i * 1000 + 500,
            )
        )
    return start + len(pnls)


def status(client: RawClient) -> tuple[str, str]:
    row = next(r for r in client.call(GetHealth()).rows if r.strategy == "revert")
    return row.status, row.reason


def refused_signals(client: RawClient, n: int, start: int) -> list[str]:
    ids = []
    for i in range(start, start + n):
        reply = client.call(
            ScoreSignal(
                strategy="revert",
                symbol="ETH/USDT",
                side="buy",
                confidence=0.8,
                confluence=3,
                signal_id=f"paper-{i}",
            )
        )
        assert isinstance(reply, SignalScore)
        assert not reply.execute and reply.status == "suspended"
        ids.append(f"paper-{i}")
    return ids


def suspend(rpc: RawClient) -> None:
    """Wins of 2 and losses of 1, then a run of losses: suspended on its drawdown or its
    edge. At these sizes it needs to win a third of its trades to break even."""
    n = trades(rpc, [2.0, -1.0, -1.0] * 10, 0)
    for _ in range(30):
        n = trades(rpc, [-1.0] * 5, n)
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        if state.statuses["revert"] == "suspended":
            break
    assert status(rpc)[0] == "suspended"


def test_paper_trades_that_win_end_a_suspension_and_survive_a_kill(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        suspend(rpc)

        # Refused signals that nobody paper-traded: no evidence, and no clock.
        ids = refused_signals(rpc, 12, 0)
        rpc.call(UpdateOptimization())
        assert status(rpc)[0] == "suspended"

        # Half the paper record, then a kill: the record must survive it. 2 wins of 6 at
        # the break-even third say nothing either way.
        for i, signal_id in enumerate(ids[:6]):
            rpc.call(RecordSignalOutcome(signal_id=signal_id, success=i < 2))
        rpc.call(UpdateOptimization())
        assert status(rpc)[0] == "suspended"
        rpc.close()
    except BaseException:
        daemon.close()
        raise
    try:
        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        assert status(rpc)[0] == "suspended"
        # 6 wins of 10: not yet a batch of 12 to judge.
        for signal_id in ids[6:10]:
            rpc.call(RecordSignalOutcome(signal_id=signal_id, success=True))
        rpc.call(UpdateOptimization())
        assert status(rpc)[0] == "suspended"
        for signal_id in ids[10:]:
            rpc.call(RecordSignalOutcome(signal_id=signal_id, success=True))
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        assert state.statuses["revert"] == "degraded"
        new_status, reason = status(rpc)
        assert new_status == "degraded"
        # 8 wins of 12 where it needs a third: P(X >= 8) = 0.0188 (a direct binomial sum).
        assert "8 of its last 12 paper trades won" in reason
        assert "above the 33% it needs to break even (p = 0.019)" in reason
        rpc.close()
    finally:
        daemon.close()


def test_each_batch_of_paper_trades_is_judged_alone_however_many_come_between_cycles(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        suspend(rpc)
        # Two batches of 12 before the next cycle: 8 wins, then none. The first alone
        # wins significantly (P(X >= 8) = 0.019 at a third); the 24 taken together, 8
        # wins, would say nothing (P(X >= 8 of 24) = 0.58).
        ids = refused_signals(rpc, 24, 0)
        for i, signal_id in enumerate(ids):
            rpc.call(RecordSignalOutcome(signal_id=signal_id, success=i < 8))
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        new_status, reason = status(rpc)
        assert new_status == "degraded", reason
        assert "8 of its last 12 paper trades won" in reason
        rpc.close()
    finally:
        daemon.close()


def journaled(database: Path, prefix: str) -> int:
    with sqlite3.connect(database) as db:
        query = "SELECT COUNT(*) FROM signals WHERE signal_id LIKE ?"
        return int(db.execute(query, (prefix + "%",)).fetchone()[0])


KEYS = ("scored", "outcomes", "pending", "evicted", "setups")


def score_as(rpc: RawClient, signal_id: str) -> None:
    signal = ScoreSignal(
        strategy="a", symbol="BTC", side="buy", confidence=0.6, signal_id=signal_id
    )
    assert isinstance(rpc.call(signal), SignalScore)


def trade_of(rpc: RawClient, trade_id: str, signal_id: str, pnl: float) -> None:
    trade = RecordTrade(
        trade_id=trade_id, strategy="a", symbol="BTC", side="buy", pnl=pnl,
        entry_ts_ms=T0, exit_ts_ms=T0 + 1000, signal_id=signal_id,
    )  # fmt: skip
    rpc.call(trade)


def signal_quality(rpc: RawClient) -> dict[str, int]:
    quality = rpc.call(GetReport()).signal_quality
    return {k: quality[k] for k in KEYS}


def test_signals_scored_after_the_snapshot_keep_their_outcomes_through_a_kill(
    tmp_path: Path,
) -> None:
    # The snapshot of the cycle that suspends holds none of the signals scored after it;
    # their outcomes, acknowledged and committed, must still count after a kill -9: the
    # start takes the journaled signals scored after the snapshot as pending again.
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        n = trades(rpc, [2.0, -1.0, -1.0] * 10, 0)
        for _ in range(30):
            n = trades(rpc, [-1.0] * 5, n)
            if rpc.call(UpdateOptimization()).statuses["revert"] == "suspended":
                break
        assert status(rpc)[0] == "suspended"
        ids = refused_signals(rpc, 12, 0)
        for signal_id in ids:
            assert isinstance(rpc.call(RecordSignalOutcome(signal_id=signal_id, success=True)), Ok)
        before = rpc.call(GetReport()).signal_quality
        deadline = time.monotonic() + 10.0
        while journaled(daemon.database, "paper-") < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert journaled(daemon.database, "paper-") == 12
        rpc.close()
        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        after = rpc.call(GetReport()).signal_quality
        assert (after["scored"], after["outcomes"]) == (before["scored"], before["outcomes"])
        assert after["scored"] == before["scored"] >= 12
        state = rpc.call(UpdateOptimization())
        assert state.statuses["revert"] == "degraded"
        assert "12 of its last 12 paper trades won" in status(rpc)[1]
        # A signal scored after the start is counted on from the restored count, and
        # journaled with the next place.
        signal = ScoreSignal(
            strategy="revert", symbol="ETH/USDT", side="buy", confidence=0.8, confluence=3
        )
        assert isinstance(rpc.call(signal), SignalScore)
        assert rpc.call(GetReport()).signal_quality["scored"] == after["scored"] + 1
        rpc.close()
        daemon.stop()
        with sqlite3.connect(daemon.database) as db:
            ordinals = [r[0] for r in db.execute("SELECT ordinal FROM signals ORDER BY id")]
        assert ordinals == list(range(1, after["scored"] + 2))
    finally:
        daemon.close()


def test_after_a_kill_a_start_learns_the_outcomes_live_learned_and_no_others(
    tmp_path: Path,
) -> None:
    # Two pending at most, four signals scored after the snapshot: s0 and s1 are
    # forgotten live. s0's outcome (record_signal_outcome) and s1's (a trade with its
    # signal_id) are recorded but teach nothing; s3's trade then its outcome: the trade
    # taught, the outcome after it did not. A start after a kill -9 holds all four
    # pending again before it replays what was committed: it must learn what live learned.
    config = "[scorer]\nmax_pending_signals = 2\n[store]\nsnapshot_interval_s = 600\n"
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        rpc = RawClient(daemon.rpc)
        for i in range(4):
            score_as(rpc, f"s{i}")
        deadline = time.monotonic() + 10.0
        while journaled(daemon.database, "s") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert isinstance(rpc.call(RecordSignalOutcome(signal_id="s0", success=True)), Ok)
        trade_of(rpc, "t1", "s1", 1.0)
        trade_of(rpc, "t3", "s3", 1.0)
        # The trade's outcome again (the opposite would be a conflict): recorded, no lesson.
        assert isinstance(rpc.call(RecordSignalOutcome(signal_id="s3", success=True)), Ok)
        before = signal_quality(rpc)
        assert (before["outcomes"], before["pending"], before["evicted"]) == (1, 1, 2)
        rpc.close()
        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        assert signal_quality(rpc) == before
        rpc.close()
    finally:
        daemon.close()


def test_an_outcome_acknowledged_at_once_after_its_signal_survives_a_kill(
    tmp_path: Path,
) -> None:
    # The scorer journals its signals in batches, a second or 1 024 signals apart. An
    # outcome or a trade for a signal scored a moment ago, acknowledged, then a kill -9
    # before the batch went out: the start must still learn both (they were on disk, but
    # their signals were not, and a start learns only outcomes of journaled signals).
    config = "[store]\nsnapshot_interval_s = 600\n"
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        rpc = RawClient(daemon.rpc)
        score_as(rpc, "fresh")
        score_as(rpc, "traded")
        assert isinstance(rpc.call(RecordSignalOutcome(signal_id="fresh", success=True)), Ok)
        trade_of(rpc, "t", "traded", -1.0)
        before = signal_quality(rpc)
        assert (before["scored"], before["outcomes"], before["pending"]) == (2, 2, 0)
        rpc.close()
        daemon.kill9()
        assert journaled(daemon.database, "") == 2
        daemon.start()
        rpc = RawClient(daemon.rpc)
        assert signal_quality(rpc) == before
        rpc.close()
    finally:
        daemon.close()
